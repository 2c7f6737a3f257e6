"""Perceptual losses: VGG19 feature distance (SRGAN/ESRGAN content loss) and LPIPS.

Both need ImageNet backbone weights: from ``weights_path``, the torch hub cache or a download
(see :mod:`sr_toolkit.core.weights`). Offline with none of these, building the loss stops with one line
saying how to supply them; ``weights: random`` exists for tests and must be asked for.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sr_toolkit.core.registry import LOSSES
from sr_toolkit.core.weights import WeightsChoice, backbone_state_dict
from sr_toolkit.evaluation.metrics import build_lpips

VGG19_BLOCKS = (2, 2, 4, 4, 4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_indices() -> dict[str, int]:
    """Names ``conv{block}_{i}`` / ``relu{block}_{i}`` -> index in torchvision's ``vgg19().features``."""
    names, index = {}, 0
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
        index += 1  # max pooling
    return names


@LOSSES.register("vgg_perceptual")
class VggPerceptualLoss(nn.Module):
    """Content loss: distance of VGG19 features (SRGAN: relu5_4; ESRGAN: conv5_4, before activation)."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        layers: list[str] = ["relu5_4"],  # noqa: B006 - recipes give lists; never mutated
        layer_weights: list[float] | None = None,
        criterion: Literal["l1", "mse"] = "mse",
        weights: WeightsChoice = "pretrained",
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        known = vgg19_layer_indices()
        unknown = [name for name in layers if name not in known]
        if not layers or unknown:
            raise ValueError(f"layers: unknown VGG19 layer(s) {unknown or layers}; use e.g. conv5_4, relu2_2")
        if layer_weights is not None and len(layer_weights) != len(layers):
            raise ValueError(f"layer_weights: expected {len(layers)} numbers, got {len(layer_weights)}")
        state = backbone_state_dict(
            "vgg19", weights=weights, weights_path=weights_path, purpose="the vgg_perceptual loss"
        )
        vgg = torchvision.models.vgg19(weights=None)
        if state is not None:
            vgg.load_state_dict(state)
        self.indices = [known[name] for name in layers]
        self.layer_weights = layer_weights or [1.0] * len(layers)
        self.features = vgg.features[: max(self.indices) + 1].eval().requires_grad_(False)
        self.distance = F.l1_loss if criterion == "l1" else F.mse_loss
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VggPerceptualLoss:
        super().train(mode)
        self.features.eval()  # the feature extractor is fixed
        return self

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        found = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.indices:
                found.append(x)
        return found

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self._features(target)
        produced = self._features(output)
        terms = [w * self.distance(a, b) for w, a, b in zip(self.layer_weights, produced, wanted)]
        return sum(terms[1:], terms[0])  # at least one layer: a tensor, never sum()'s start value 0


@LOSSES.register("lpips")
class LpipsLoss(nn.Module):
    """Perceptual loss: the LPIPS distance (Zhang et al. 2018) on an AlexNet/VGG/SqueezeNet backbone."""

    def __init__(
        self,
        net: Literal["alex", "vgg", "squeeze"] = "vgg",
        weights: WeightsChoice = "pretrained",
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        self.model = build_lpips(net, weights, weights_path)

    def train(self, mode: bool = True) -> LpipsLoss:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model(output * 2 - 1, target * 2 - 1).mean()
