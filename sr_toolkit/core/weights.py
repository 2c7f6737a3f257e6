"""Pretrained torchvision backbones for perceptual metrics and losses (LPIPS, VGG content loss).

The ImageNet weights come from ``weights_path`` when given, else from the torch hub cache, else
from a download. When none works the error says in one line what to do; random weights are used
only when asked for explicitly (``weights="random"``), never as a silent fallback.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torchvision.models import (
    AlexNet_Weights,
    SqueezeNet1_1_Weights,
    VGG16_Weights,
    VGG19_Weights,
    WeightsEnum,
)

from sr_toolkit.core.errors import SrToolkitError, first_line

WeightsChoice = Literal["pretrained", "random"]

DOWNLOAD_TIMEOUT_S = 30
"""Seconds a download may wait on the network before it counts as failed."""

_BACKBONES: dict[str, tuple[str, WeightsEnum]] = {
    "alexnet": ("AlexNet", AlexNet_Weights.IMAGENET1K_V1),
    "vgg16": ("VGG16", VGG16_Weights.IMAGENET1K_V1),
    "vgg19": ("VGG19", VGG19_Weights.IMAGENET1K_V1),
    "squeezenet1_1": ("SqueezeNet 1.1", SqueezeNet1_1_Weights.IMAGENET1K_V1),
}


class WeightsUnavailableError(SrToolkitError):
    """Pretrained weights that could not be found, downloaded or read."""


def backbone_state_dict(
    arch: str,
    *,
    weights: WeightsChoice = "pretrained",
    weights_path: str | Path | None = None,
    purpose: str,
) -> dict[str, torch.Tensor] | None:
    """The ImageNet state dict of the torchvision model ``arch``, or None for ``weights="random"``.

    ``purpose`` names what needs the weights ("LPIPS") in the error raised when they are
    unavailable. The state dict is checked to fit ``torchvision.models.<arch>``.
    """
    if arch not in _BACKBONES:
        raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(_BACKBONES)}")
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    if weights == "random":
        if weights_path is not None:
            raise ValueError(f"weights='random' contradicts weights_path={str(weights_path)!r}; drop one")
        return None
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        state = _read_file(path)
        source = f"weights_path {path}"
    else:
        state = _from_hub(arch, purpose)
        source = f"the torch hub file for {arch}"
    _check_fits(arch, state, source)
    return state


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsUnavailableError(f"weights_path {path} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise WeightsUnavailableError(
            f"weights_path {path} is not a readable PyTorch state dict: {first_line(exc)}"
        ) from exc


def _from_hub(arch: str, purpose: str) -> dict[str, torch.Tensor]:
    """Load from the torch hub cache, downloading first when needed, within a network timeout."""
    label, enum = _BACKBONES[arch]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(enum.url, map_location="cpu", check_hash=True, weights_only=True)
    except Exception as exc:  # offline, timed out, bad hash or a corrupt cached file
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsUnavailableError(
            f"{purpose} needs the {label} backbone weights from torchvision, which could not be "
            f"loaded ({first_line(exc)}): connect to the internet once, or download {enum.url} "
            f"and pass weights_path=FILE (or place it in {checkpoints}/)"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _check_fits(arch: str, state: object, source: str) -> None:
    """Raise unless ``state`` has every tensor of ``torchvision.models.<arch>`` with its shape."""
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{source} holds a {type(state).__name__}, not a state dict")
    with torch.device("meta"):
        reference = getattr(torchvision.models, arch)().state_dict()
    for key, tensor in reference.items():
        found = state.get(key)
        if not isinstance(found, torch.Tensor) or found.shape != tensor.shape:
            problem = "is missing" if found is None else f"has shape {tuple(getattr(found, 'shape', ()))}"
            raise WeightsUnavailableError(
                f"{source} does not hold torchvision {arch} weights: '{key}' {problem}, "
                f"expected shape {tuple(tensor.shape)}"
            )
