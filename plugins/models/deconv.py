"""The report's deconvolution upscaler: three transposed convolutions with 10, 20 and 3 channels."""

from __future__ import annotations

import torch
from torch import nn

from sr_toolkit.core.receptive_field import halo
from sr_toolkit.core.registry import MODELS

from .checks import require_choice

# (in, out, kernel, stride, padding) per transposed conv. x2: H -> H -> 2H-1 -> 2H; x4: H -> 2H -> 4H -> 4H.
LAYERS = {
    2: [(3, 10, 3, 1, 1), (10, 20, 3, 2, 1), (20, 3, 4, 1, 1)],
    4: [(3, 10, 4, 2, 1), (10, 20, 4, 2, 1), (20, 3, 3, 1, 1)],
}


@MODELS.register("deconv")
class Deconv(nn.Module):
    """Deconvolution upscaler from the report: three transposed convs (10, 20, 3 channels), x2 or x4.

    ReLU after the first two layers and a sigmoid at the end; 3,063 parameters at x2 (the report's
    180 -> 360 net) and 4,253 at x4 (90 -> 360). Any input size works: the output is scale*H x scale*W.
    """

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        require_choice("scale", scale, LAYERS)
        self.scale = scale
        layers: list[nn.Module] = []
        for in_channels, out_channels, kernel, stride, padding in LAYERS[scale]:
            layers += [nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU()]
        layers[-1] = nn.Sigmoid()
        self.layers = nn.Sequential(*layers)
        self.halo = halo([self.layers])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)
