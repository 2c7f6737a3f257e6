"""JPEG compression artefacts, at a quality drawn per image."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import Generator, Tensor

from sr_toolkit.core.imageio import pil_image, to_uint8
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, per_image


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H, W, C) uint8 array as JPEG in memory (Pillow, libjpeg) and decode it again."""
    buffer = io.BytesIO()
    pil_image(image).save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer))
    return decoded[:, :, None] if decoded.ndim == 2 else decoded


@DEGRADATIONS.register("jpeg")
class Jpeg(Degradation):
    """JPEG compression at `quality` (1-100, lower is worse); images pass through 8-bit on the CPU."""

    def __init__(self, quality: Range = (30, 95)) -> None:
        self.quality = as_range("quality", quality, 1, 100)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        if x.shape[1] not in (1, 3):
            raise ValueError(f"jpeg needs 1 or 3 channels, got {x.shape[1]}")
        qualities = torch.round(per_image(self.quality, x.shape[0], generator, x.device)).int().tolist()
        images = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()
        decoded = np.stack([jpeg_round_trip(image, q) for image, q in zip(images, qualities)])
        return torch.from_numpy(decoded).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255
