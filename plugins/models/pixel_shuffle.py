"""Sub-pixel (pixel-shuffle) upsamplers: SRResNet's and EDSR's x2 stages (one x3 stage for 3), or one direct stage."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .checks import require_choice

STAGES = {2: [2], 3: [3], 4: [2, 2]}


def pixel_shuffle_upsampler(
    channels: int, scale: int, activation: Callable[[], nn.Module] | None = None, out_channels: int | None = None
) -> nn.Sequential:
    """Per stage of factor r: conv k3 to ``channels * r * r``, PixelShuffle(r), then ``activation()``.

    With ``out_channels``, one stage instead: conv k3 to ``out_channels * scale**2``, PixelShuffle(scale).
    """
    require_choice("scale", scale, STAGES)
    if out_channels is not None:
        return nn.Sequential(nn.Conv2d(channels, out_channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))
    layers: list[nn.Module] = []
    for factor in STAGES[scale]:
        layers += [nn.Conv2d(channels, channels * factor**2, 3, padding=1), nn.PixelShuffle(factor)]
        if activation is not None:
            layers.append(activation())
    return nn.Sequential(*layers)
