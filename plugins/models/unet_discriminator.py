"""Real-ESRGAN's U-Net discriminator with spectral normalisation: one realness logit per pixel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sr_toolkit.core.registry import MODELS

from .checks import require_positive

SIZE_MULTIPLE = 8
"""Input height and width must be multiples of this: three stride-2 convolutions, then three 2x upsamplings
whose outputs are added to the encoder's features of the same size."""


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


@MODELS.register("unet_discriminator_sn")
class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: a realness logit per pixel, shape (N, 1, H, W).

    Takes (N, 3, H, W) images in [0, 1], H and W multiples of 8 (ValueError otherwise). Encoder: a 3x3 conv to
    ``channels`` (``conv0``), then three 4x4 stride-2 convs to ``channels`` x 2, 4, 8 (``conv1``-``conv3``);
    decoder: three (bilinear 2x upsampling, 3x3 conv) stages back to ``channels`` x 4, 2, 1 (``conv4``-``conv6``),
    each added to the encoder's features of its size when ``skip_connection`` is true; then two 3x3 convs
    (``conv7``, ``conv8``) and a 3x3 conv to one channel (``conv9``). LeakyReLU 0.2 after every conv but the last;
    spectral normalisation (Miyato et al. 2018, one power iteration per training forward) on ``conv1``-``conv8``,
    which have no bias. Wang et al., "Real-ESRGAN", ICCVW 2021, Sec. 3.3; follows BasicSR's
    ``basicsr/archs/discriminator_arch.py`` ``UNetDiscriminatorSN`` (``num_feat`` = ``channels``, default 64).

    Its weights map one to one onto BasicSR's: the same layer names; a spectral-normed layer's
    ``weight_orig``, ``weight_u`` and ``weight_v`` are here ``parametrizations.weight.original``,
    ``parametrizations.weight.0._u`` and ``parametrizations.weight.0._v`` (torch's parametrization API). So
    renamed, BasicSR's class gives the same logits in eval mode (its training-mode power iteration updates
    v before u, torch's u before v).
    """

    is_discriminator = True  # not an image-to-image model: it has no model contract and is never tiled

    def __init__(self, channels: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        require_positive("channels", channels)
        self.skip_connection = skip_connection
        c = channels

        def normed(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=1, bias=False))

        self.conv0 = nn.Conv2d(3, c, 3, 1, 1)
        self.conv1 = normed(c, 2 * c, 4, 2)
        self.conv2 = normed(2 * c, 4 * c, 4, 2)
        self.conv3 = normed(4 * c, 8 * c, 4, 2)
        self.conv4 = normed(8 * c, 4 * c, 3, 1)
        self.conv5 = normed(4 * c, 2 * c, 3, 1)
        self.conv6 = normed(2 * c, c, 3, 1)
        self.conv7 = normed(c, c, 3, 1)
        self.conv8 = normed(c, c, 3, 1)
        self.conv9 = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(
                f"unet_discriminator_sn: image height and width must be multiples of {SIZE_MULTIPLE}, "
                f"got {height}x{width} (make data.train.patch_size a multiple of {SIZE_MULTIPLE})"
            )
        x0 = _leaky(self.conv0(images))
        x1 = _leaky(self.conv1(x0))
        x2 = _leaky(self.conv2(x1))
        x3 = _leaky(self.conv3(x2))
        x4 = _leaky(self.conv4(_up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = _leaky(self.conv5(_up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = _leaky(self.conv6(_up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        return self.conv9(_leaky(self.conv8(_leaky(self.conv7(x6)))))
