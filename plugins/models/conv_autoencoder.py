"""The report's convolutional denoising autoencoder (restoration: the output has the input's size)."""

from __future__ import annotations

import torch
from torch import nn

from sr_toolkit.core.receptive_field import halo
from sr_toolkit.core.registry import MODELS

from .checks import require_positive


@MODELS.register("conv_autoencoder")
class ConvAutoencoder(nn.Module):
    """Convolutional denoising autoencoder from the report: 3x32x32 in and out, 8x2x2 bottleneck.

    Encoder: conv k4 s2 (``widths[0]``), max-pool 2, conv k4 s2 (``widths[1]``), conv k4 s2 (``bottleneck``),
    each followed by ReLU; the decoder mirrors it with transposed convs and a nearest x2 upsample, ending
    in a sigmoid. The defaults are the report's (23,659 parameters). Height and width must be multiples
    of 16 (the bottleneck is 1/16 of the input). The network downsamples by 16, so it is shift-equivariant
    only by multiples of 16: tiles cut for tiled inference must start at multiples of 16 for ``halo`` to
    guarantee a seamless result.
    """

    scale = 1
    size_multiple = 16

    def __init__(self, widths: tuple[int, int] = (32, 16), bottleneck: int = 8) -> None:
        super().__init__()
        for index, width in enumerate(widths):
            require_positive(f"widths[{index}]", width)
        require_positive("bottleneck", bottleneck)
        wide, narrow = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, wide, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(wide, narrow, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(narrow, bottleneck, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, narrow, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ConvTranspose2d(narrow, wide, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(wide, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )
        self.halo = halo([self.encoder, self.decoder])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"conv_autoencoder needs height and width that are multiples of {self.size_multiple}, "
                f"got {height}x{width}"
            )
        return self.decoder(self.encoder(image))
