"""Resizing with a random interpolation mode: by a random factor (up, down or keep), or to the size a
batch came in with divided by a scale, as in Real-ESRGAN's degradation (Wang et al., ICCVW 2021;
``realesrgan/models/realesrgan_model.py``, ``RealESRGANModel.feed_data``, with ``resize_prob`` and
``resize_range`` from ``options/train_realesrgan_x4plus.yml``).

The images of a batch share one size, so the factor is drawn once per batch, as Real-ESRGAN does; so
is the mode (Real-ESRGAN draws it per batch too). Resizing is PyTorch's ``F.interpolate`` as in
Real-ESRGAN (``align_corners=False``, no antialiasing, so shrinking aliases: that is part of the
degradation), followed by clipping to [0, 1] (bicubic overshoots; Real-ESRGAN clips at its next
noise or JPEG step, which gives the same values there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation, build_steps, scale_factor
from sr_toolkit.data.sampling import as_range, categorical, uniform

Interpolation = Literal["area", "bilinear", "bicubic", "nearest"]
REAL_ESRGAN_MODES: tuple[Interpolation, ...] = ("area", "bilinear", "bicubic")
"""The modes Real-ESRGAN draws from, each equally likely."""


def interpolate(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """``x`` (N, C, H, W) resized to ``size`` (h, w) by ``F.interpolate`` in ``mode``, clipped to [0, 1].

    A batch already of that size comes back as it is (every mode is then the identity).
    """
    if tuple(x.shape[-2:]) == size:
        return x
    corners = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(x, size=size, mode=mode, **corners).clamp(0, 1)


class RandomModeResize(Degradation):
    """A degradation that resizes with a mode drawn (once per call) from ``modes``."""

    def __init__(self, modes: Sequence[Interpolation]) -> None:
        if not modes:
            raise ValueError("modes: expected at least one of area, bilinear, bicubic, nearest")
        self.modes = tuple(modes)

    def resize_to_size(self, x: Tensor, size: tuple[int, int], generator: Generator | None) -> Tensor:
        """``x`` resized to ``size`` (h, w; each at least 1) in a mode drawn from ``modes`` (one draw)."""
        mode = self.modes[int(categorical([1.0] * len(self.modes), 1, generator, x.device))]
        return interpolate(x, (max(1, size[0]), max(1, size[1])), mode)


@DEGRADATIONS.register("random_resize")
class RandomResize(RandomModeResize):
    """Resize a batch (N, C, H, W) by a random factor: up, down or kept, in a random mode; the output is
    (N, C, floor(H f), floor(W f)) (each at least 1) in [0, 1], in the input's dtype.

    ``up_down_keep``: the relative weights of enlarging (factor uniform in [1, high]), shrinking
    (uniform in [low, 1]) and keeping the size (factor 1), where ``factor`` is [low, high] with
    low <= 1 <= high. ``modes``: the interpolation modes, one drawn with equal weights.

    The direction, the factor and the mode are drawn once per batch (its images share one size; so
    does Real-ESRGAN, which also draws the mode per batch). Defaults are Real-ESRGAN x4plus's first
    stage (``resize_prob: [0.2, 0.7, 0.1]``, ``resize_range: [0.15, 1.5]``); its second stage is
    ``up_down_keep: [0.3, 0.4, 0.3]``, ``factor: [0.3, 1.2]``, relative to the final low-resolution
    size, which :meth:`resize` takes as ``base``. Draws, in order: the direction, a uniform number,
    the mode (three draws per batch, whatever the direction).
    """

    def __init__(
        self,
        up_down_keep: tuple[float, float, float] = (0.2, 0.7, 0.1),
        factor: Range = (0.15, 1.5),
        modes: Sequence[Interpolation] = REAL_ESRGAN_MODES,
    ) -> None:
        super().__init__(modes)
        if min(up_down_keep) < 0 or sum(up_down_keep) <= 0:
            raise ValueError(
                f"up_down_keep: expected 3 non-negative weights with a positive sum, got {list(up_down_keep)!r}"
            )
        self.up_down_keep = tuple(float(weight) for weight in up_down_keep)
        self.factor = as_range("factor", factor, 0.0)
        if not 0 < self.factor[0] <= 1 <= self.factor[1]:
            raise ValueError(f"factor: expected [low, high] with 0 < low <= 1 <= high, got {factor!r}")

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        return self.resize(x, generator, (x.shape[-2], x.shape[-1]))

    def resize(self, x: Tensor, generator: Generator | None, base: tuple[float, float]) -> Tensor:
        """``x`` resized to ``floor(base * f)`` for a drawn factor ``f``: ``base`` is (h, w), possibly
        fractional; Real-ESRGAN's second stage passes the target size, (H / scale, W / scale)."""
        direction = int(categorical(list(self.up_down_keep), 1, generator, x.device))
        spread = float(uniform((1,), generator, x.device))
        low, high = self.factor
        factor = (1 + (high - 1) * spread, low + (1 - low) * spread, 1.0)[direction]
        return self.resize_to_size(x, (math.floor(base[0] * factor), math.floor(base[1] * factor)), generator)


@DEGRADATIONS.register("resize_to")
class ResizeTo(RandomModeResize):
    """Apply ``steps`` (degradation specs, none by default), then resize the result to the size the
    batch came in with divided by ``scale``, in a mode drawn from ``modes`` (once per batch).

    (N, C, H, W) in, (N, C, floor(H / scale), floor(W / scale)) out (each at least 1), in [0, 1], in
    the input's dtype: whatever sizes ``steps`` go through, the output has the low-resolution size,
    as Real-ESRGAN's final "resize back" (``ori_h // scale``, mode drawn from area, bilinear and
    bicubic). Without ``steps`` it is a downscale in a random mode. Draws: those of ``steps``, then
    the mode.
    """

    def __init__(
        self, scale: float, steps: list[dict] | None = None, modes: Sequence[Interpolation] = REAL_ESRGAN_MODES
    ) -> None:
        super().__init__(modes)
        self.scale = scale_factor(scale)
        self.steps = build_steps(steps or [], "steps")

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        height, width = x.shape[-2:]
        for step in self.steps:
            x = step(x, generator)
        target = (math.floor(height / self.scale), math.floor(width / self.scale))
        return self.resize_to_size(x, target, generator)
