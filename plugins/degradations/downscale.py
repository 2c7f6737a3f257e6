"""Shrinking: how super-resolution inputs are made."""

from __future__ import annotations

from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.resize import MODES, Mode, imresize, imresize_8bit
from sr_toolkit.data.degrade import Degradation, scale_factor


@DEGRADATIONS.register("downscale")
class Downscale(Degradation):
    """Shrink by `scale` (MATLAB-exact bicubic by default), the standard SR low-resolution input.

    Output size is ``ceil(size / scale)`` as in MATLAB. ``mode``: ``bicubic``, ``bilinear`` and
    ``nearest`` as in MATLAB's ``imresize``, ``area`` for averaging. ``quantize`` takes the image
    to 8 bits and resizes it the way MATLAB resizes a uint8 image (rounding after each axis), as
    the SR benchmarks' saved LR images were made.
    """

    def __init__(self, scale: float, mode: Mode = "bicubic", antialias: bool = True, quantize: bool = False) -> None:
        self.scale = scale_factor(scale)
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.antialias = antialias
        self.quantize = quantize

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        factor = 1 / self.scale
        if self.quantize:
            return imresize_8bit(x, scale=factor, mode=self.mode, antialias=self.antialias)
        return imresize(x, scale=factor, mode=self.mode, antialias=self.antialias).clamp(0, 1)
