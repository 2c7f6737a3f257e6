"""The sub-pixel (pixel-shuffle) upsampler of SRResNet and EDSR: x2 stages for 2 and 4, one x3 stage for 3."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .checks import require_choice

STAGES = {2: [2], 3: [3], 4: [2, 2]}


def pixel_shuffle_upsampler(
    channels: int, scale: int, activation: Callable[[], nn.Module] | None = None
) -> nn.Sequential:
    """Per stage of factor r: conv k3 to ``channels * r * r``, PixelShuffle(r), then ``activation()``."""
    require_choice("scale", scale, STAGES)
    layers: list[nn.Module] = []
    for factor in STAGES[scale]:
        layers += [nn.Conv2d(channels, channels * factor**2, 3, padding=1), nn.PixelShuffle(factor)]
        if activation is not None:
            layers.append(activation())
    return nn.Sequential(*layers)
