"""SRGAN's VGG-style discriminator (Ledig et al. 2017), for any patch size."""

from __future__ import annotations

import torch
from torch import nn

from sr_toolkit.core.registry import MODELS

from .checks import require_positive


@MODELS.register("vgg_discriminator")
class VggDiscriminator(nn.Module):
    """SRGAN discriminator: 8 convs (LeakyReLU, BatchNorm, strided), adaptive pooling, dense layers.

    Conv k3 pairs at ``channels`` x 1, 2, 4, 8, the second of each pair with stride 2; BatchNorm on
    all but the first (``batch_norm: false`` drops them); LeakyReLU 0.2. Adaptive average pooling to
    ``pool`` x ``pool`` makes it work for any patch size; then dense ``hidden`` + LeakyReLU + dense 1.
    Returns one logit per image, shape (N, 1).
    """

    is_discriminator = True  # not an image-to-image model: it has no model contract and is never tiled

    def __init__(self, channels: int = 64, hidden: int = 1024, pool: int = 4, batch_norm: bool = True) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("hidden", hidden), ("pool", pool)):
            require_positive(name, value)
        layers: list[nn.Module] = []
        in_channels = 3
        for index in range(8):
            out_channels = channels * 2 ** (index // 2)
            layers.append(nn.Conv2d(in_channels, out_channels, 3, stride=1 + index % 2, padding=1))
            if batch_norm and index > 0:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * pool * pool, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(images)))
