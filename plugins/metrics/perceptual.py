"""LPIPS: learned perceptual distance on a pretrained torchvision backbone."""

from __future__ import annotations

import torch

from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.metrics import LpipsNet
from sr_toolkit.core.registry import METRICS
from sr_toolkit.core.weights import WeightsChoice


@METRICS.register("lpips")
class Lpips:
    """LPIPS perceptual distance (Zhang et al. 2018), lower is better; needs ImageNet backbone weights."""

    higher_is_better = False

    def __init__(
        self, net: LpipsNet = "alex", weights: WeightsChoice = "pretrained", weights_path: str | None = None
    ) -> None:
        self.name = "lpips" if net == "alex" else f"lpips_{net}"
        self.model = metrics.build_lpips(net, weights, weights_path)

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One distance per image of the batch, shape (N,); the model follows the inputs' device."""
        self.model.to(output.device)
        return metrics.lpips_distance(output, target, self.model)
