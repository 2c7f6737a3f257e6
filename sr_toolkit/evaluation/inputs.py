"""Evaluation's images and inputs: clean images paired with LR files, or inputs made from them.

An input is read from an LR folder matched by name (:mod:`sr_toolkit.data.pairing`'s rule), made by
MATLAB's ``imresize(hr, 1/scale, 'bicubic')`` of the clean image cropped to a multiple of the scale
(bit-exact on its 8-bit values), or made by a degradation list with a generator seeded from the
image's name; made inputs are rounded to 8 bits, as a saved LR file would be.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sr_toolkit.core.errors import DataError, SrToolkitError
from sr_toolkit.core.imageio import match_channels, quantize, read_image
from sr_toolkit.core.resize import imresize_8bit, modcrop
from sr_toolkit.data import pairing
from sr_toolkit.data.degrade import build_pipeline


class EvaluationError(SrToolkitError):
    """Evaluation settings that contradict each other or the model files."""


def find_pairs(data: Path, scale: int, lr: Path | None = None) -> list[tuple[str, Path, Path | None]]:
    """(name, clean image, LR image or None) for every clean image under ``data``, sorted by name
    (its path under ``data``). LR files are matched by :mod:`sr_toolkit.data.pairing`'s rule; LR files
    that match no image are ignored. Raises DataError for an empty ``data``, an ambiguous name or an
    image without an LR file."""
    targets = pairing.images(data, "target")
    if not targets:
        raise DataError(f"{data}: no images found (png, jpg, bmp, tif or webp files)")
    if lr is None:
        return [(name, path, None) for name, path in targets.items()]
    found = pairing.pair(pairing.images(lr, "input"), targets, scale)
    if found.ambiguous:
        raise DataError(str(found.ambiguous[0]))
    if found.lone_targets:
        path = found.lone_targets[0]
        key = pairing.match_key(path.relative_to(data).as_posix())
        raise DataError(f"{path}: no input image named like '{key}' in {lr}")
    return list(found.pairs)


def matlab_bicubic_input(target: Tensor, scale: int) -> Tensor:
    """MATLAB's ``imresize(im2uint8(target), 1/scale, 'bicubic')`` as floats in [0, 1], (C, h, w)."""
    return imresize_8bit(target, scale=1 / scale)


def image_seed(seed: int, name: str) -> int:
    """The generator seed of one image's degradation, ``crc32("<seed>/<name>")``: the image gets the
    same input whatever else the folder holds (32 bits: CPU generators ignore higher ones)."""
    return zlib.crc32(f"{seed}/{name}".encode())


def load_pair(
    name: str, path: Path, lr_path: Path | None, scale: int, degradation: list[Any] | None, seed: int
) -> tuple[Tensor, Tensor]:
    """The (clean target, input) of one image, (C, H, W) and (C, h, w) in [0, 1]: the LR file when
    ``lr_path`` is given (the target cropped to scale times its size), else the input made by the
    ``degradation`` specs (None: MATLAB bicubic) from the target cropped to a multiple of ``scale``.
    Raises DataError for an LR file that does not fit, EvaluationError for a degradation that makes an
    input of the wrong size."""
    target = read_image(path, mode="keep")
    if lr_path is not None:
        inputs = read_image(lr_path, mode="keep")
        height, width = (side * scale for side in inputs.shape[-2:])
        extra_h, extra_w = target.shape[-2] - height, target.shape[-1] - width
        if not (0 <= extra_h < scale and 0 <= extra_w < scale):
            raise DataError(
                f"{lr_path}: {inputs.shape[-2]}x{inputs.shape[-1]} does not fit {path.name} "
                f"({target.shape[-2]}x{target.shape[-1]}) at scale {scale}"
            )
        return target[..., :height, :width], inputs
    target = modcrop(target, scale)
    if degradation is None:
        return target, matlab_bicubic_input(target, scale)
    generator = torch.Generator().manual_seed(image_seed(seed, name))
    degraded = build_pipeline(degradation)(match_channels(target, 3)[None], generator)[0]
    expected = tuple(side // scale for side in target.shape[-2:])
    if tuple(degraded.shape[-2:]) != expected:
        raise EvaluationError(
            f"the degradation makes a {degraded.shape[-2]}x{degraded.shape[-1]} input from {name} "
            f"({target.shape[-2]}x{target.shape[-1]}); at scale {scale} it should be "
            f"{expected[0]}x{expected[1]}"
        )
    return target, quantize(degraded)
