"""SRResNet, the SRGAN generator (Ledig et al. 2017): residual blocks, then sub-pixel upsampling."""

from __future__ import annotations

import torch
from torch import nn

from sr_toolkit.core.receptive_field import halo
from sr_toolkit.core.registry import MODELS

from .checks import require_at_least, require_positive
from .pixel_shuffle import pixel_shuffle_upsampler


def _norm(channels: int, batch_norm: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] if batch_norm else []


class ResidualBlock(nn.Module):
    """x + [conv k3, BN, PReLU, conv k3, BN](x) (without the BNs when ``batch_norm`` is off)."""

    def __init__(self, channels: int, batch_norm: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            *_norm(channels, batch_norm),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            *_norm(channels, batch_norm),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


@MODELS.register("srresnet")
class SRResNet(nn.Module):
    """SRResNet / SRGAN generator (Ledig et al. 2017): 16 residual blocks, pixel-shuffle x2, x3 or x4.

    Head conv k9 + PReLU; residual blocks [conv, BN, PReLU, conv, BN] + skip; conv + BN plus a long skip
    from the head; per x2 stage (one x3 stage) conv to 4x (9x) channels, PixelShuffle, PReLU; tail conv
    k9 to RGB with a linear output. ``batch_norm: false`` drops every BN (the ESRGAN-style recipe).
    1,549,462 parameters at x4 with the defaults.
    """

    def __init__(self, scale: int = 4, blocks: int = 16, channels: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        require_at_least("blocks", blocks, 0)
        require_positive("channels", channels)
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(
            *(ResidualBlock(channels, batch_norm) for _ in range(blocks)),
            nn.Conv2d(channels, channels, 3, padding=1),
            *_norm(channels, batch_norm),
        )
        self.upsampler = pixel_shuffle_upsampler(channels, scale, activation=nn.PReLU)
        self.tail = nn.Conv2d(channels, 3, 9, padding=4)
        self.halo = halo([self.head, self.body, self.upsampler, self.tail])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.head(image)
        return self.tail(self.upsampler(features + self.body(features)))
