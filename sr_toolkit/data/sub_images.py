"""Where a photo is cut into overlapping sub-images, and the cutting itself.

The convention is BasicSR's ``scripts/data_preparation/extract_subimages.py``: squares of ``size``
pixels (480) every ``step`` pixels (240) along each axis; the strip left at the right or bottom edge
gets one more square, aligned to the edge, when it is at least ``min_leftover`` pixels wide (48), and
is dropped when narrower. An image smaller than ``size`` along an axis is kept whole along it.

Paired images are cut on the input's grid (``size`` and ``step`` divided by the scale), so each
target sub-image is exactly its input sub-image's area at ``scale`` times the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sr_toolkit.core.resize import modcrop


@dataclass(frozen=True)
class Window:
    """A sub-image's place in its photo, in pixels: top row, left column, height, width."""

    top: int
    left: int
    height: int
    width: int

    def scaled(self, factor: int) -> Window:
        return Window(self.top * factor, self.left * factor, self.height * factor, self.width * factor)

    def key(self) -> str:
        """``y0240_x0480``: the sub-image's part of its key."""
        return f"y{self.top:04d}_x{self.left:04d}"


def starts(length: int, size: int, step: int, min_leftover: int) -> list[int]:
    """The first pixel of each sub-image along an axis of ``length`` pixels (see the module's rule);
    ``[0]`` when ``length`` is at most ``size`` (the axis kept whole)."""
    if length <= size:
        return [0]
    found = list(range(0, length - size + 1, step))
    if length - (found[-1] + size) >= min_leftover:
        found.append(length - size)
    return found


def windows(height: int, width: int, size: int, step: int, min_leftover: int) -> list[Window]:
    """The sub-images of a ``height`` x ``width`` image, row by row (see :func:`starts`)."""
    rows, cols = min(size, height), min(size, width)
    return [
        Window(top, left, rows, cols)
        for top in starts(height, size, step, min_leftover)
        for left in starts(width, size, step, min_leftover)
    ]


def check_cut(size: int, step: int, min_leftover: int, scale: int) -> None:
    """Raise ValueError unless ``size`` and ``step`` are positive multiples of ``scale`` (paired data
    is cut on the input's grid) and ``min_leftover`` is at least 1."""
    for option, value in (("size", size), ("step", step)):
        if value < 1 or value % scale:
            raise ValueError(f"--{option}: must be a positive multiple of the scale ({scale}), got {value}")
    if min_leftover < 1:
        raise ValueError(f"--min-leftover: must be at least 1, got {min_leftover}")


def cut(
    images: dict[str, torch.Tensor], size: int, step: int, min_leftover: int, scale: int = 1
) -> list[tuple[Window, dict[str, torch.Tensor]]]:
    """The sub-images of one photo's uint8 (3, H, W) ``images`` by role, each with its target window.

    With an ``"input"`` role the target is first cut to a multiple of ``scale`` (it must then be the
    input's size times ``scale``) and the windows are placed on the input's grid; ``min_leftover`` is
    counted in target pixels. The crops are contiguous copies.
    """
    grid = scale if "input" in images else 1
    images = {**images, "target": modcrop(images["target"], grid)}
    height, width = images["target"].shape[-2:]
    leftover = -(-min_leftover // grid)
    cuts = []
    for window in windows(height // grid, width // grid, size // grid, step // grid, leftover):
        crops = {}
        for role, image in images.items():
            place = window.scaled(grid) if role == "target" else window
            crops[role] = image[:, place.top : place.top + place.height, place.left : place.left + place.width]
        cuts.append((window.scaled(grid), {role: crop.contiguous() for role, crop in crops.items()}))
    return cuts
