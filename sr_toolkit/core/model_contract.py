"""The model contract: what tiling, inference, evaluation, export and the upscale command may rely on about
an image-to-image model, in one typed, documented object (after spandrel's ``ImageModelDescriptor``).

Every model loader attaches one: :meth:`sr_toolkit.core.registry.ModelRegistry.build` (``MODELS.build``,
as the engine builds its network) and :func:`sr_toolkit.core.model_file.load_model`. Consumers read it with
:func:`contract_of`, which also derives one on the spot for a module no loader built.

What a model plugin declares, as class or instance attributes, all optional (:data:`DECLARABLE`):

- ``scale`` (default: the ``scale`` argument it was built with, else 1), ``task`` (``upscale`` or
  ``restore``; default: ``restore`` at scale 1), ``input_channels`` and ``output_channels`` (default 3);
- ``size_multiple`` and ``minimum_size``: what its input height and width must be (default 1: anything);
  tiling pads each crop at the bottom and right by repeating edge pixels and drops what that adds;
- ``halo``: its receptive-field radius in input pixels, the context each tile reads on each side.
  Compute it with :func:`sr_toolkit.core.receptive_field.halo` from the layers in the order they run.
  Without one, tiling guesses an overlap (with a warning) and never tiles on its own;
- ``exact_tiling = False`` with a ``tiling_caveat`` (one clause: why) when tiles read with ``halo`` around
  them only approximate the whole-image result (window attention, say); ``halo`` is then just an overlap;
- ``supports_half = False`` / ``supports_bfloat16 = False`` when float16 / bfloat16 breaks it;
- ``is_discriminator = True`` for a GAN discriminator: it is no image model and gets no contract.

What is derived: ``exact_tiling`` is False when the model upsamples with ``align_corners=True`` (its
sampling grid depends on the input size) or has no ``halo``; ``architecture`` is the registry name (else the
class name), ``spec`` the mapping it was built from, ``recipe`` the resolved recipe of its model file.

A wrapper that learns these values when it is built (e.g. from a spandrel descriptor) states them in its
``__init__`` with :func:`declare`, which refuses a name that is not declarable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from torch import nn

from sr_toolkit.core.errors import SrToolkitError

Task = Literal["upscale", "restore"]

CONTRACT_ATTRIBUTE = "sr_contract"
"""The module attribute a loader stores the contract under (read it with :func:`contract_of`)."""

DECLARABLE = (
    "scale",
    "task",
    "input_channels",
    "output_channels",
    "size_multiple",
    "minimum_size",
    "halo",
    "exact_tiling",
    "tiling_caveat",
    "supports_half",
    "supports_bfloat16",
)
"""The attributes a model plugin may declare; everything else in the contract is derived."""

ALIGN_CORNERS_CAVEAT = "upsamples with align_corners=True, whose sampling grid depends on the input size"


class ModelContractError(SrToolkitError):
    """A model whose declarations make no valid contract, or a discriminator where an image model is needed."""


@dataclass(frozen=True)
class ModelContract:
    """What an image-to-image model takes and gives: (N, ``input_channels``, H, W) in [0, 1] to
    (N, ``output_channels``, ``scale`` H, ``scale`` W).

    ``architecture``: its registry name. ``task``: ``upscale`` or ``restore``. ``size_multiple`` and
    ``minimum_size``: what the input's height and width must be (consumers pad to them). ``halo``: the
    context in input pixels each tile reads on each side (None: unknown). ``exact_tiling``: tiles read with
    ``halo`` around them give exactly the whole-image result (to float rounding); when False and a ``halo``
    is known, ``tiling_caveat`` says why (a clause after "this model"). ``supports_half`` (float16) and
    ``supports_bfloat16``: whether it runs correctly in those. ``spec``: the mapping it was built from
    (``{"type": ..., **arguments}``); ``recipe``: the resolved recipe of the run that trained it, when it
    came from a model file. Raises :class:`ModelContractError` for values that cannot hold.
    """

    architecture: str
    scale: int
    task: Task
    input_channels: int = 3
    output_channels: int = 3
    size_multiple: int = 1
    minimum_size: int = 1
    halo: int | None = None
    exact_tiling: bool = False
    tiling_caveat: str = ""
    supports_half: bool = True
    supports_bfloat16: bool = True
    spec: Mapping[str, Any] | None = None
    recipe: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        def refuse(name: str, expected: str) -> None:
            raise ModelContractError(
                f"model '{self.architecture}': {name}: expected {expected}, got {getattr(self, name)!r}"
            )

        for name in ("scale", "input_channels", "output_channels", "size_multiple", "minimum_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                refuse(name, "a positive integer")
        if self.task not in get_args(Task):
            refuse("task", " or ".join(get_args(Task)))
        if self.halo is not None and (not _is_int(self.halo) or self.halo < 0):
            refuse("halo", "a number of pixels >= 0 or None")
        for name in ("exact_tiling", "supports_half", "supports_bfloat16"):
            if not isinstance(getattr(self, name), bool):
                refuse(name, "true or false")
        if self.exact_tiling and self.halo is None:
            refuse("exact_tiling", "false for a model without a halo (tiles need to know their overlap)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def default_task(scale: int) -> Task:
    """``restore`` for a model that keeps the size, else ``upscale``."""
    return "restore" if scale == 1 else "upscale"


def is_discriminator(model: Any) -> bool:
    """Whether a model (or its class) declares itself a GAN discriminator (``is_discriminator = True``)."""
    return bool(getattr(model, "is_discriminator", False))


def uses_align_corners(model: nn.Module) -> bool:
    """Whether the model upsamples with ``align_corners=True`` anywhere (tiles then differ from the whole)."""
    return any(isinstance(module, nn.Upsample) and module.align_corners for module in model.modules())


def declare(model: nn.Module, **values: Any) -> None:
    """Set declarations on ``model`` (e.g. ``declare(self, scale=4, halo=16, exact_tiling=False)`` in a
    wrapper's ``__init__``); raises :class:`ModelContractError` for a name not in :data:`DECLARABLE`."""
    unknown = sorted(set(values) - set(DECLARABLE))
    if unknown:
        raise ModelContractError(
            f"{type(model).__name__}: cannot declare {', '.join(unknown)}; declarable: {', '.join(DECLARABLE)}"
        )
    for key, value in values.items():
        setattr(model, key, value)


def derive_contract(
    model: nn.Module,
    *,
    architecture: str | None = None,
    spec: Mapping[str, Any] | None = None,
    scale: int | None = None,
    task: Task | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> ModelContract:
    """The contract of ``model`` from what it declares (:data:`DECLARABLE`), else from what a loader knows.

    ``scale`` and ``task`` count where the model declares none; ``architecture`` defaults to the class name.
    Raises :class:`ModelContractError` for a discriminator or for declarations that make no valid contract.
    """
    name = architecture or type(model).__name__
    if is_discriminator(model):
        raise ModelContractError(
            f"model '{name}' is a discriminator, not an image-to-image model; it belongs under gan.discriminator"
        )
    declared = {key: getattr(model, key) for key in DECLARABLE if getattr(model, key, None) is not None}
    scale = declared.pop("scale", scale or 1)
    exact = declared.pop("exact_tiling", True)
    caveat = declared.pop("tiling_caveat", "")
    if exact is False:
        caveat = caveat or "declares that its tiles only approximate its whole-image result"
    elif exact is True and uses_align_corners(model):
        exact, caveat = False, ALIGN_CORNERS_CAVEAT
    if exact is True and declared.get("halo") is None:
        exact = False  # without a halo the overlap is a guess
    return ModelContract(
        architecture=name,
        scale=scale,
        task=declared.pop("task", task or default_task(scale)),
        exact_tiling=exact,
        tiling_caveat=caveat,
        spec=spec,
        recipe=recipe,
        **declared,
    )


def attach(model: nn.Module, contract: ModelContract) -> nn.Module:
    """Store ``contract`` on ``model`` (where :func:`contract_of` finds it); returns ``model``."""
    setattr(model, CONTRACT_ATTRIBUTE, contract)
    return model


def contract_of(model: nn.Module) -> ModelContract:
    """The contract a loader attached to ``model``, else the one :func:`derive_contract` gives it alone."""
    attached = getattr(model, CONTRACT_ATTRIBUTE, None)
    return attached if attached is not None else derive_contract(model)
