"""LPIPS: learned perceptual distance on a pretrained torchvision backbone."""

from __future__ import annotations

import torch

from sr_toolkit.core.registry import METRICS
from sr_toolkit.core.weights import WeightsChoice
from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.metrics import LpipsNet
from sr_toolkit.evaluation.scoring import Metric


@METRICS.register("lpips")
class Lpips(Metric):
    """LPIPS perceptual distance (Zhang et al. 2018), lower is better; needs ImageNet backbone weights."""

    label = "LPIPS"  # with another backbone than AlexNet: LPIPS-vgg, LPIPS-squeeze
    higher_is_better = False
    luma = False
    needs_weights = True

    def __init__(
        self,
        net: LpipsNet = "alex",
        weights: WeightsChoice = "pretrained",
        weights_path: str | None = None,
        crop_border: int = 0,
    ) -> None:
        super().__init__(crop_border=crop_border)
        self.name = "lpips" if net == "alex" else f"lpips_{net}"
        if net != "alex":
            self.label = f"LPIPS-{net}"
        self.model = metrics.build_lpips(net, weights, weights_path)
        self.follow_inputs = True

    def to(self, device: torch.device) -> Lpips:
        """Run the network on ``device`` whatever device the images are on."""
        self.model.to(device)
        self.follow_inputs = False
        return self

    @torch.no_grad()
    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One distance per image of the batch on RGB after the border crop, shape (N,); the model
        follows the inputs' device unless :meth:`to` placed it."""
        if self.follow_inputs:
            self.model.to(output.device)
        output, target = (metrics.shave(x, self.crop_border) for x in (output, target))
        return metrics.lpips_distance(output, target, self.model)
