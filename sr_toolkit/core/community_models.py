"""Community model files (OpenModelDB, chaiNNer, Real-ESRGAN releases...) through spandrel.

A ``.pth``, ``.pt``, ``.ckpt`` or ``.safetensors`` file whose state dict spandrel's main registry recognises
loads as the bare network (``descriptor.model``) carrying a
:class:`~sr_toolkit.core.model_contract.ModelContract` made from spandrel's descriptor: scale, channels,
size requirements, tiling advice, half/bfloat16 support, task and architecture name.

No pickled code runs: pickles are read with ``torch.load(weights_only=True)`` (torch's restricted
unpickler: tensors, containers and plain values only; TorchScript archives are refused), safetensors with
safetensors. spandrel's own ``load_from_file`` is not used, since it hands ``.pt`` files to
``torch.jit.load``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from spandrel import MAIN_REGISTRY, ImageModelDescriptor, UnsupportedModelError, canonicalize_state_dict
from torch import nn

from sr_toolkit.core.checkpoint import METADATA_KEY, CheckpointError
from sr_toolkit.core.errors import first_line
from sr_toolkit.core.model_contract import ModelContract, attach, default_task, uses_align_corners

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
"""The file types a community model may come in."""

TILING_CAVEATS = {
    "DISCOURAGED": "is one spandrel advises against tiling (tiles change its result)",
    "INTERNAL": "tiles its input itself (spandrel: ModelTiling.INTERNAL)",
}
"""What a contract says about spandrel's tiling advice (``ModelTiling`` names); SUPPORTED needs none."""


class CommunityModelError(CheckpointError):
    """A file that is no model spandrel recognises, or one that is no image-to-image model."""


def is_community_file(path: Path) -> bool:
    """Whether ``path`` is for spandrel: one of :data:`SUFFIXES`, except a readable safetensors file with
    sr_toolkit metadata (our own ``model.safetensors``, or a training checkpoint)."""
    if path.suffix.lower() not in SUFFIXES:
        return False
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return path.is_file()
    try:
        with safe_open(str(path), framework="pt") as handle:
            return METADATA_KEY not in (handle.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return False  # our loader names the unreadable file


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a community file, on the CPU, unwrapped as spandrel does (``params_ema``,
    ``params``, ``state_dict``... and ``module.`` prefixes). Raises :class:`CommunityModelError` for a
    file that cannot be read without running pickled code."""

    try:
        if path.suffix.lower() == ".safetensors":
            state: Any = load_file(str(path))
        else:
            with warnings.catch_warnings():  # it refuses TorchScript; its warning says it would run it
                warnings.filterwarnings(
                    "ignore", message="'torch.load' received a zip file that looks like a TorchScript"
                )
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises UnpicklingError, RuntimeError, EOFError... for a bad file
        raise CommunityModelError(f"{path}: {why_unreadable(exc)}") from exc
    if not isinstance(state, dict):
        raise CommunityModelError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return canonicalize_state_dict(state)


def why_unreadable(exc: Exception) -> str:
    """One clause for what ``torch.load(weights_only=True)`` or safetensors refused (torch's own message
    is many lines, mostly advice to load unsafely)."""
    text = str(exc)
    refused = re.search(r"GLOBAL (\S+)", text)
    if refused:
        return f"refused: its pickle calls {refused.group(1)}, and loading never runs pickled code"
    if "TorchScript" in text:
        return "refused: a TorchScript archive runs its own code when loaded; give its state dict (.pth, .safetensors)"
    detail = next((line.strip() for line in text.splitlines() if line.strip().startswith("Unsupported")), None)
    return f"not a PyTorch state dict or safetensors file ({detail or first_line(exc)})"


def describe(path: Path) -> ImageModelDescriptor:
    """spandrel's descriptor of the image-to-image model in ``path``. Raises :class:`CommunityModelError`
    naming the file for one spandrel cannot identify, an inpainting model or a face restoration model."""

    state = read_state_dict(path)
    try:
        descriptor = MAIN_REGISTRY.load(state)
    except UnsupportedModelError as exc:
        raise CommunityModelError(f"{path}: spandrel does not recognise this model's architecture") from exc
    except Exception as exc:  # an architecture's detection or loading failing on an odd state dict
        raise CommunityModelError(f"{path}: spandrel cannot load it: {first_line(exc)}") from exc
    name = descriptor.architecture.name
    if not isinstance(descriptor, ImageModelDescriptor):
        raise CommunityModelError(
            f"{path}: a {name} {descriptor.purpose.lower()} model (image and mask in), not an image-to-image model"
        )
    if descriptor.purpose == "FaceSR":
        raise CommunityModelError(f"{path}: a {name} face restoration model, not a whole-image one")
    return descriptor


class DescriptorCall(nn.Module):
    """A network spandrel calls in a way of its own (its output's first item, a rescaled range...)."""

    def __init__(self, network: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.network = network
        self.call = call

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.call(self.network, image)


def module_of(descriptor: ImageModelDescriptor) -> nn.Module:
    """``descriptor.model``, wrapped in :class:`DescriptorCall` when spandrel calls it other than plainly."""
    call = getattr(descriptor, "_call_fn", None)
    if call is None or getattr(call, "__module__", "").startswith("spandrel.__helpers"):
        return descriptor.model
    return DescriptorCall(descriptor.model, call)


# Architectures whose spandrel descriptor claims bfloat16 but whose forward fails with bfloat16 weights:
# SwinIR adds its attention mask in float32 at any size but its training one.
FLOAT32_ONLY = frozenset({"SwinIR"})


def contract_from(descriptor: ImageModelDescriptor, module: nn.Module) -> ModelContract:
    """Our contract for a spandrel descriptor: it knows no halo, so tiling always overlaps by a guess."""
    requirements = descriptor.size_requirements
    caveat = TILING_CAVEATS.get(descriptor.tiling.name, "")
    if uses_align_corners(module):
        caveat = caveat or "upsamples with align_corners=True, whose sampling grid depends on the input size"
    return ModelContract(
        architecture=descriptor.architecture.name,
        scale=descriptor.scale,
        task="restore" if descriptor.purpose == "Restoration" else default_task(descriptor.scale),
        input_channels=descriptor.input_channels,
        output_channels=descriptor.output_channels,
        size_multiple=max(1, requirements.multiple_of),
        minimum_size=max(1, requirements.minimum),
        exact_tiling=False,
        tiling_caveat=caveat,
        supports_half=descriptor.supports_half,
        supports_bfloat16=descriptor.supports_bfloat16 and descriptor.architecture.id not in FLOAT32_ONLY,
    )


def load_community_model(path: str | Path) -> nn.Module:
    """The network in a community file, in eval mode on the CPU, carrying its contract (see
    :func:`contract_from`). Raises :class:`CommunityModelError` naming the file when it cannot be used."""
    path = Path(path)
    descriptor = describe(path)
    module = module_of(descriptor)
    return attach(module, contract_from(descriptor, module)).eval()


def community_state_dict(path: str | Path) -> tuple[str, dict[str, torch.Tensor]]:
    """The architecture name and the network's state dict in spandrel's canonical key layout (what a
    network built from spandrel's class loads), for starting training from a community file."""
    descriptor = describe(Path(path))
    return descriptor.architecture.name, descriptor.model.state_dict()
