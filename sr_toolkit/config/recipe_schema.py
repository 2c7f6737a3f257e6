"""The recipe schema: every key a recipe may hold, its type, default and description.

:data:`RECIPE_SCHEMA` is built from a few node types: plain :class:`Field` values, :class:`Section`
mappings with a fixed set of keys, and registry-built :class:`Component` mappings
(``{type: NAME, **arguments}``, checked against the registered component's own signature). Each node
``resolve``\\s the value found at a key path and returns it with defaults filled in, so the resolved
recipe saved with a run lists every value the run used. The same objects generate the JSON Schema
that ``sr-toolkit schema`` prints (:mod:`sr_toolkit.config.json_schema`). Rules between keys run
after these checks (:mod:`sr_toolkit.config.rules`).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.model_file import INIT_KEY
from sr_toolkit.core.registry import DATASETS, DEGRADATIONS, LOSSES, MODELS, Registry, closest, parameters
from sr_toolkit.core.typecheck import describe, matches
from sr_toolkit.evaluation.scoring import validation_metrics_problem
from sr_toolkit.training.losses import TARGETS
from sr_toolkit.training.optimizers import OPTIMIZERS, optimizers_reading
from sr_toolkit.training.schedule import duration_problem

_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)

ComponentAt = tuple[str, Registry, Any]
"""A component mapping found in a recipe: its key path, the registry that builds it, the mapping."""


def child_path(where: str, key: str | int) -> str:
    """The key path of ``key`` under ``where`` (``train`` + ``max_steps`` -> ``train.max_steps``)."""
    return f"{where}.{key}" if where else str(key)


class Node:
    """A schema node: ``resolve`` checks a value at ``where`` and fills in defaults."""

    doc: str = ""

    def resolve(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def default(self) -> Any:
        raise NotImplementedError

    def components(self, value: Any, where: str) -> Iterator[ComponentAt]:
        """The component mappings in ``value`` (a raw or resolved recipe part) at or below this node."""
        return iter(())


_MISSING = object()


@dataclass(frozen=True)
class Field(Node):
    """A plain value with a type hint and a default (``required=True`` for none); ``check``, if
    given, returns what is wrong with a value of the right type (e.g. "must be at least 1"), or None."""

    hint: Any
    value: Any = None
    required: bool = False
    check: Callable[[Any], str | None] | None = None
    doc: str = ""

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            if self.required:
                raise RecipeError(f"{where}: required key is missing ({describe(self.hint)})")
            return self.default()
        if not matches(value, self.hint):
            raise RecipeError(f"{where}: expected {describe(self.hint)}, got {value!r} ({type(value).__name__})")
        problem = self.check(value) if self.check is not None else None
        if problem:
            raise RecipeError(f"{where}: {problem}, got {value!r}")
        return value

    def default(self) -> Any:
        return copy.deepcopy(self.value)


@dataclass(frozen=True)
class Section(Node):
    """A mapping with a fixed set of keys; an unknown key is an error with a suggestion."""

    fields: dict[str, Node]
    doc: str = ""

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {value!r}")
        for key in value:
            if key not in self.fields:
                hints = closest(str(key), list(self.fields))
                guess = f" (did you mean '{hints[0]}'?)" if hints else ""
                raise RecipeError(
                    f"{child_path(where, key)}: unknown key{guess}; valid keys here: {', '.join(self.fields)}"
                )
        return {
            key: node.resolve(value.get(key, _MISSING), child_path(where, key)) for key, node in self.fields.items()
        }

    def default(self) -> Any:
        return {key: node.default() for key, node in self.fields.items()}

    def components(self, value: Any, where: str) -> Iterator[ComponentAt]:
        if isinstance(value, Mapping):
            for key, node in self.fields.items():
                if key in value:
                    yield from node.components(value[key], child_path(where, key))


@dataclass(frozen=True)
class AtLeast:
    """A :class:`Field` check: numbers below ``minimum`` are refused (None passes)."""

    minimum: int

    def __call__(self, value: Any) -> str | None:
        return f"must be at least {self.minimum}" if value is not None and value < self.minimum else None


def at_least(minimum: int) -> AtLeast:
    """The :class:`Field` check that refuses numbers below ``minimum``."""
    return AtLeast(minimum)


def component_defaults(registry: Registry, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the defaults of the component's plain-valued arguments filled in."""
    entry = registry.get(spec["type"])
    filled = dict(spec)
    signature = inspect.signature(entry.factory)
    for name, param in (parameters(entry.factory) or {}).items():
        default = signature.parameters[name].default
        if name not in filled and not param.required and isinstance(default, _PLAIN):
            filled[name] = copy.deepcopy(list(default) if isinstance(default, tuple) else default)
    return filled


@dataclass(frozen=True)
class Component(Node):
    """A mapping ``{type: name, **kwargs}`` built by a registry; None when ``optional``. It may also carry
    the plain keys in ``item_fields``, which are no arguments (``model.init_from``): they are checked
    apart and kept in the resolved mapping only when set, so whoever builds it leaves them out."""

    registry: Registry
    value: Mapping[str, Any] | None = None
    optional: bool = False
    item_fields: dict[str, Field] = field(default_factory=dict)
    doc: str = ""

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            value = copy.deepcopy(self.value)
        if value is None:
            if self.optional:
                return None
            raise RecipeError(f"{where}: required; give a mapping with 'type: <{self.registry.kind}>'")
        extras: dict[str, Any] = {}
        if isinstance(value, Mapping) and self.item_fields:
            extras = {k: f.resolve(value.get(k, _MISSING), child_path(where, k)) for k, f in self.item_fields.items()}
            value = {k: v for k, v in value.items() if k not in self.item_fields}
        try:
            self.registry.check(value, where)
        except Exception as exc:
            raise RecipeError(str(exc)) from exc
        return {**component_defaults(self.registry, value), **{k: v for k, v in extras.items() if v is not None}}

    def default(self) -> Any:
        return copy.deepcopy(self.value)

    def components(self, value: Any, where: str) -> Iterator[ComponentAt]:
        if value is not None:
            yield where, self.registry, value


@dataclass(frozen=True)
class ComponentList(Node):
    """A list of components (a single mapping is taken as a list of one); each item may carry the
    extra plain keys in ``item_fields`` (a loss term's ``weight``); ``non_empty`` refuses an empty list."""

    registry: Registry
    value: list[Mapping[str, Any]] = field(default_factory=list)
    item_fields: dict[str, Field] = field(default_factory=dict)
    non_empty: bool = False
    doc: str = ""

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            value = copy.deepcopy(self.value)
        items = [] if value is None else [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list):
            raise RecipeError(f"{where}: expected a list of mappings with 'type', got {value!r}")
        if self.non_empty and not items:
            raise RecipeError(f"{where}: expected a non-empty list of {self.registry.kind} specs, got {value!r}")
        resolved = []
        for index, item in enumerate(items):
            here = f"{where}.{index}"
            if not isinstance(item, Mapping):
                raise RecipeError(f"{here}: expected a mapping with 'type', got {item!r}")
            extras = {k: f.resolve(item.get(k, _MISSING), f"{here}.{k}") for k, f in self.item_fields.items()}
            spec = {k: v for k, v in item.items() if k not in self.item_fields}
            resolved.append({**Component(self.registry).resolve(spec, here), **extras})
        return resolved

    def default(self) -> Any:
        return copy.deepcopy(self.value)

    def components(self, value: Any, where: str) -> Iterator[ComponentAt]:
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield f"{where}.{index}", self.registry, item
        elif value is not None:
            yield where, self.registry, value


OPTIMIZER = Section(
    {
        "type": Field(Literal[tuple(OPTIMIZERS)], "adam"),  # names: the one table
        "lr": Field(float, 1e-3, doc="base learning rate"),
        "weight_decay": Field(float, 0.0),
        "betas": Field(tuple[float, float], [0.9, 0.999], doc=", ".join(optimizers_reading("betas"))),
        "momentum": Field(float, 0.9, doc=", ".join(optimizers_reading("momentum"))),
        "fused": Field(bool, True, doc="torch's fused kernel: one pass over all parameters per step"),
    }
)

RECIPE_SCHEMA = Section(
    {
        "name": Field(str | None, None, doc="run name; default: the recipe file's stem"),
        "plugins": Field(list[str], [], doc="extra plugin modules or .py files to import"),
        "task": Field(Literal["upscale", "restore"], "upscale"),
        "scale": Field(int, 1, check=at_least(1), doc="upscaling factor (1 for restoration)"),
        "seed": Field(int, 0),
        "output_dir": Field(str | None, None, doc="default: runs/<name>"),
        "model": Component(
            MODELS,
            item_fields={
                INIT_KEY: Field(
                    str | None,
                    None,
                    doc="a model file to start from (ours or a community .pth/.pt/.ckpt/.safetensors); not on --resume",
                )
            },
            doc="the network trained",
        ),
        "degradation": ComponentList(
            DEGRADATIONS, doc="turns a clean target batch into the network input, on the training device"
        ),
        "loss": ComponentList(
            LOSSES,
            [{"type": "l1"}],
            {
                "weight": Field(float, 1.0),
                "target": Field(
                    Literal[TARGETS],  # names: the one table
                    "plain",
                    doc="the ground truth the term sees: plain, or sharpened (unsharp-masked, as Real-ESRGAN's "
                    "pixel and perceptual terms); the discriminator always sees the plain one",
                ),
            },
            non_empty=True,
            doc="weighted sum of loss terms, each logged",
        ),
        "optimizer": OPTIMIZER,
        "scheduler": Section(
            {
                "type": Field(Literal["constant", "cosine", "step"], "cosine"),
                "warmup_steps": Field(int, 0, check=at_least(0)),
                "min_lr_ratio": Field(float, 0.01, doc="cosine: final lr / lr"),
                "step_size": Field(int, 1000, check=at_least(1), doc="step: decay every step_size steps"),
                "gamma": Field(float, 0.5, doc="step: decay factor"),
            }
        ),
        "data": Section(
            {
                "train": Component(DATASETS, {"type": "builtin", "split": "train", "patch_size": 96}),
                "val": Component(DATASETS, {"type": "builtin", "split": "val"}, optional=True),
                "batch_size": Field(int, 16, check=at_least(1), doc="per process"),
                "num_workers": Field(int, 0, check=at_least(0)),
            }
        ),
        "train": Section(
            {
                "max_steps": Field(int, 1000, check=at_least(1), doc="the run ends at max_steps or max_time"),
                "max_time": Field(
                    str | float | None,
                    None,
                    check=duration_problem,
                    doc="training-time budget across resumes: 10m, 90s, 1h",
                ),
                "mixed_precision": Field(Literal["auto", "no", "fp16", "bf16"], "auto"),
                "grad_accum": Field(int, 1, check=at_least(1), doc="batches per update (1 for a GAN)"),
                "grad_clip": Field(float | None, None),
                "ema": Field(float | None, None, doc="EMA decay of the weights, e.g. 0.999"),
                "log_every": Field(int, 10, check=at_least(1)),
                "val_every": Field(int, 250, check=at_least(1)),
                "checkpoint_every": Field(int, 500, check=at_least(1)),
                "keep_checkpoints": Field(int, 2, check=at_least(0), doc="0: keep every one"),
                "tensorboard": Field(bool, False),
                "on_nonfinite": Field(
                    Literal["stop", "skip"],
                    "stop",
                    doc="a NaN/inf loss term or gradient: stop (naming it), or skip that step's updates",
                ),
                "max_consecutive_skips": Field(int, 10, check=at_least(1), doc="skip: stop after so many in a row"),
            }
        ),
        "gan": Section(
            {
                "discriminator": Component(
                    MODELS,
                    optional=True,
                    doc="set to train the model as a GAN generator, e.g. {type: vgg_discriminator}",
                ),
                "adversarial": Component(LOSSES, {"type": "vanilla"}, doc="vanilla | lsgan | hinge | ragan"),
                "weight": Field(float, 1e-3, doc="of the adversarial term in the generator's loss"),
                "d_steps": Field(int, 1, check=at_least(1), doc="discriminator updates per generator update"),
                "warmup_steps": Field(int, 0, check=at_least(0), doc="generator-only steps on the loss list"),
                "r1_weight": Field(float, 0.0, doc="R1 gradient penalty on real images"),
                "init_from": Field(
                    str | None, None, doc="a model file to start the generator from, as model.init_from"
                ),
                "optimizer": OPTIMIZER,  # the discriminator's
            },
            doc="adversarial training",
        ),
        "validation": Section(
            {
                "metrics": Field(
                    list[str],
                    ["psnr", "ssim"],
                    check=validation_metrics_problem,
                    doc="registered metric names (sr-toolkit list metrics); psnr picks the best model",
                ),
                "y_channel": Field(bool, True, doc="PSNR/SSIM on BT.601 Y, as SR papers report"),
                "crop_border": Field(int | None, None, check=at_least(0), doc="default: the scale"),
                "max_images": Field(int | None, None, check=at_least(1)),
                "samples": Field(int, 4, check=at_least(0), doc="images shown in each sample grid"),
            }
        ),
    }
)
"""Every key a recipe may hold (``base:`` aside, which :mod:`sr_toolkit.config.recipe` reads)."""

INHERITED_KEYS = ("scale", "seed")
"""Top-level keys passed to every component that takes an argument of that name and omits it.
A component's own ``scale`` must equal the top level's (see :func:`sr_toolkit.config.rules.check_scales`)."""

SPLITS = ("train", "val")
"""``data.train`` and ``data.val``: a dataset there that takes a ``split`` and omits it gets its key,
so ``data.val: {type: image_folder, root: DIR}`` scores whole validation images."""

APPLIES_TO = {
    "betas": optimizers_reading("betas"),
    "momentum": optimizers_reading("momentum"),
    "min_lr_ratio": ("cosine",),
    "step_size": ("step",),
    "gamma": ("step",),
}
"""Optimizer and scheduler keys that only some types read; the resolved recipe leaves them out for
the others, so a printed or saved recipe shows only what the run uses."""


def component_specs(recipe: Mapping[str, Any]) -> list[ComponentAt]:
    """The component mappings of a recipe (raw or resolved), each with its key path and the registry
    that builds it: ``model``, ``degradation.0``, ``loss.1``, ``data.train``, ``gan.discriminator``..."""
    return list(RECIPE_SCHEMA.components(recipe, ""))
