"""Lossy compression artefacts: JPEG, WebP and AVIF at a quality drawn per image, and chroma subsampling.

Every codec sees the images as 8-bit (rounded as :func:`sr_toolkit.core.imageio.to_uint8` does) and
gives back 8-bit levels as floats in [0, 1], in the input's dtype and on its device. JPEG runs through
torchvision's ``encode_jpeg``/``decode_jpeg`` (libjpeg-turbo on the CPU; nvJPEG on a CUDA device,
which encodes a whole list of images in one call); WebP and AVIF through Pillow on the CPU, one image
at a time. A codec's output depends on its library's version (and, for JPEG, on CPU against CUDA),
never on anything else: a seeded generator gives the same images again on the same set-up.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, features
from torch import Generator, Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from sr_toolkit.core.imageio import pil_image, to_uint8
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, per_image


def check_channels(name: str, x: Tensor) -> None:
    """A ValueError naming the step unless ``x`` has 1 or 3 channels (gray or RGB)."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} needs 1 or 3 channels, got {x.shape[1]}")


# JPEG's (JFIF's) full-range BT.601 YCbCr: rows give Y, Cb, Cr from R, G, B (Cb, Cr centred on 0).
RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
BLOCKS = {"4:2:0": (2, 2), "4:2:2": (1, 2)}  # (rows, columns) of chroma samples averaged together


def subsample_chroma(x: Tensor, rows: int = 2, columns: int = 2) -> Tensor:
    """RGB images (N, 3, H, W) in [0, 1] with their Cb and Cr (JPEG's full-range BT.601 YCbCr) averaged
    over blocks of ``rows`` x ``columns`` pixels and repeated back over each block, clipped to [0, 1];
    luma is kept. A partial block at an odd edge averages the pixels it has."""
    height, width = x.shape[-2:]
    forward = torch.tensor(RGB_TO_YCBCR, dtype=torch.float64)
    to_ycbcr, to_rgb = forward.to(x.device, x.dtype), torch.linalg.inv(forward).to(x.device, x.dtype)
    ycbcr = torch.einsum("oc,nchw->nohw", to_ycbcr, x)
    chroma = F.avg_pool2d(ycbcr[:, 1:], (rows, columns), ceil_mode=True)
    chroma = chroma.repeat_interleave(rows, dim=2).repeat_interleave(columns, dim=3)[..., :height, :width]
    ycbcr = torch.cat([ycbcr[:, :1], chroma], dim=1)
    return torch.einsum("oc,nchw->nohw", to_rgb, ycbcr).clamp(0, 1)


def torchvision_jpeg(images: Tensor, qualities: list[int]) -> Tensor:
    """JPEG round trip of uint8 images (N, C, H, W), C = 1 or 3, each at its own quality (1-100).

    Colour is stored with 4:2:0 chroma subsampling. On the CPU, and for gray images anywhere (which
    torchvision's CUDA encoder does not take), libjpeg-turbo encodes and decodes (4:2:0 is its default
    for colour). On a CUDA device RGB images are encoded and decoded with nvJPEG, one call per distinct
    quality; torchvision drives nvJPEG's encoder at 4:4:4, so the chroma is first averaged over 2 x 2
    blocks there (:func:`subsample_chroma`, as Real-ESRGAN's differentiable JPEG does), which makes the
    4:4:4 file carry 4:2:0 colour. CPU and CUDA results are close, not identical.
    """
    device = images.device if images.shape[1] == 3 else torch.device("cpu")
    work = images.to(device)
    if work.is_cuda:
        work = to_uint8(subsample_chroma(work.float() / 255))
    work = work.contiguous()
    decoded: dict[int, Tensor] = {}
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs in favour of TorchCodec
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        for quality in sorted(set(qualities)):
            chosen = [index for index, q in enumerate(qualities) if q == quality]
            encoded = encode_jpeg([work[index] for index in chosen], quality=quality)
            images_back = decode_jpeg([data.cpu() for data in encoded], device=device)
            decoded.update(zip(chosen, images_back))
    return torch.stack([decoded[index] for index in range(len(qualities))]).to(images.device)


def pillow_round_trip(images: Tensor, qualities: list[int], codec: str, **options: object) -> Tensor:
    """Round trip of uint8 images (N, C, H, W), C = 1 or 3, through Pillow's ``codec`` (e.g. "WEBP")
    at a quality per image, on the CPU; gray images come back gray. Returns uint8 on the input's device."""
    decoded = []
    for pixels, quality in zip(images.permute(0, 2, 3, 1).cpu().numpy(), qualities):
        buffer = io.BytesIO()
        pil_image(pixels).save(buffer, codec, quality=quality, **options)
        image = Image.open(buffer).convert("L" if pixels.shape[2] == 1 else "RGB")
        decoded.append(np.asarray(image).reshape(pixels.shape))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(images.device)


class LossyCodec(Degradation):
    """Compression of each image at a quality drawn per image (uniform in ``quality``, rounded)."""

    name = ""

    def __init__(self, quality: Range) -> None:
        self.quality = as_range("quality", quality, 1, 100)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        check_channels(self.name, x)
        qualities = torch.round(per_image(self.quality, x.shape[0], generator, x.device)).int().tolist()
        return self.round_trip(to_uint8(x), qualities).to(x.dtype) / 255

    def round_trip(self, images: Tensor, qualities: list[int]) -> Tensor:
        raise NotImplementedError


@DEGRADATIONS.register("jpeg")
class Jpeg(LossyCodec):
    """JPEG compression at `quality` (1-100, lower is worse), drawn per image; (N, C, H, W) with C = 1
    or 3 in [0, 1], the same shape, dtype and device out, on 8-bit levels.

    torchvision's ``encode_jpeg``/``decode_jpeg`` (see :func:`torchvision_jpeg`); on the CPU this gives
    exactly what Pillow's JPEG writer and reader give at the same quality, which this step used
    before. Real-ESRGAN x4plus uses ``jpeg_range: [30, 95]`` in both stages (through its
    differentiable JPEG simulation, which takes fractional qualities; here the quality is rounded).
    Draws: the quality per image.
    """

    name = "jpeg"

    def __init__(self, quality: Range = (30, 95)) -> None:
        super().__init__(quality)

    def round_trip(self, images: Tensor, qualities: list[int]) -> Tensor:
        return torchvision_jpeg(images, qualities)


@DEGRADATIONS.register("webp")
class WebP(LossyCodec):
    """Lossy WebP compression at `quality` (1-100, lower is worse), drawn per image, through Pillow
    (libwebp) on the CPU; (N, C, H, W) with C = 1 or 3 in [0, 1], the same shape, dtype and device out.

    WebP codes colour as 4:2:0 YUV even at quality 100, so colour edges soften at every quality.
    Draws: the quality per image.
    """

    name = "webp"

    def __init__(self, quality: Range = (30, 95)) -> None:
        super().__init__(quality)

    def round_trip(self, images: Tensor, qualities: list[int]) -> Tensor:
        return pillow_round_trip(images, qualities, "WEBP")


@DEGRADATIONS.register("avif")
class Avif(LossyCodec):
    """AVIF (AV1 intra) compression at `quality` (1-100, lower is worse), drawn per image, through
    Pillow's AVIF plugin (libavif; in Pillow's wheels from 11.3) on the CPU, 4:2:0 colour; (N, C, H, W)
    with C = 1 or 3 in [0, 1], the same shape, dtype and device out.

    ``speed``: the encoder's speed, 0 (slowest, best) to 10 (fastest); Pillow's default is 6.
    Building it without AVIF support in Pillow raises ValueError. Draws: the quality per image.
    """

    name = "avif"

    def __init__(self, quality: Range = (30, 95), speed: int = 6) -> None:
        if not features.check("avif"):
            raise ValueError("this Pillow has no AVIF support (PIL.features.check('avif') is False); Pillow >= 11.3")
        if not 0 <= speed <= 10:
            raise ValueError(f"speed: expected 0 (slowest) to 10 (fastest), got {speed!r}")
        super().__init__(quality)
        self.speed = speed

    def round_trip(self, images: Tensor, qualities: list[int]) -> Tensor:
        return pillow_round_trip(images, qualities, "AVIF", speed=self.speed)


@DEGRADATIONS.register("chroma_subsample")
class ChromaSubsample(Degradation):
    """Chroma subsampling: RGB to YCbCr (JPEG's full-range BT.601), Cb and Cr averaged over blocks of
    2 x 2 pixels (``4:2:0``) or 1 x 2 (``4:2:2``) and repeated back over each block, back to RGB,
    clipped to [0, 1]. Luma is kept, so a gray image comes back unchanged.

    (N, 3, H, W) in [0, 1] in, the same shape and dtype out; any H and W (a partial block at an odd
    edge averages the pixels it has). A gray batch (C = 1) has no chroma and comes back as it is;
    other channel counts raise ValueError. No random draws.
    """

    def __init__(self, subsampling: Literal["4:2:0", "4:2:2"] = "4:2:0") -> None:
        if subsampling not in BLOCKS:
            raise ValueError(f"subsampling: expected 4:2:0 or 4:2:2, got {subsampling!r}")
        self.subsampling = subsampling

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        check_channels("chroma_subsample", x)
        return x if x.shape[1] == 1 else subsample_chroma(x, *BLOCKS[self.subsampling])
