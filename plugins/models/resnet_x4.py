"""The report's best model: interpolate up, then a small ResNet with BatchNorm, PReLU and dropout."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sr_toolkit.core.receptive_field import halo
from sr_toolkit.core.registry import MODELS

from .checks import require_at_least, require_choice, require_positive

# upsample switch -> (interpolation mode, align_corners)
INTERPOLATIONS = {"bilinear_ac": ("bilinear", True), "bicubic": ("bicubic", False)}
SCALES = (2, 3, 4)


class ResidualBlock(nn.Module):
    """out = B2(B1(x)) + x, B1 = [BN, PReLU, conv, dropout, conv, PReLU], B2 = B1 without the PReLUs."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.first = nn.Sequential(*self._half(channels, dropout, activation=True))
        self.second = nn.Sequential(*self._half(channels, dropout, activation=False))

    @staticmethod
    def _half(channels: int, dropout: float, activation: bool) -> list[nn.Module]:
        """BN, [PReLU], conv k3, dropout, conv k3, [PReLU]."""

        def prelu() -> list[nn.Module]:
            return [nn.PReLU()] if activation else []

        return [
            nn.BatchNorm2d(channels),
            *prelu(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Dropout(dropout),
            nn.Conv2d(channels, channels, 3, padding=1),
            *prelu(),
        ]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(features)) + features


@MODELS.register("resnet_x4")
class ResNetX4(nn.Module):
    """The report's best upscaler: interpolate to full size, conv, residual blocks with BN/PReLU, conv.

    Defaults are the report's (bilinear with align_corners, 2 blocks of 64 channels, dropout 0.1, x4:
    299,463 parameters; each PReLU has one shared slope). ``upsample: bicubic`` interpolates the way SR
    benchmarks make their inputs; ``global_skip`` adds the interpolated input to the output and zeroes the
    last conv, so the untrained network returns exactly the interpolation and learns only the residual.
    """

    def __init__(
        self,
        blocks: int = 2,
        channels: int = 64,
        dropout: float = 0.1,
        scale: int = 4,
        upsample: Literal["bilinear_ac", "bicubic"] = "bilinear_ac",
        global_skip: bool = False,
    ) -> None:
        super().__init__()
        require_at_least("blocks", blocks, 0)
        require_positive("channels", channels)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        require_choice("scale", scale, SCALES)
        require_choice("upsample", upsample, INTERPOLATIONS)
        self.scale = scale
        self.global_skip = global_skip
        mode, align_corners = INTERPOLATIONS[upsample]
        self.upsample = nn.Upsample(scale_factor=scale, mode=mode, align_corners=align_corners)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels, dropout) for _ in range(blocks)))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        if global_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]  # Conv2d's bias=True: never None
        self.halo = halo([self.upsample, self.head, self.blocks, self.tail])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        upsampled = self.upsample(image)
        residual = self.tail(self.blocks(self.head(upsampled)))
        return upsampled + residual if self.global_skip else residual
