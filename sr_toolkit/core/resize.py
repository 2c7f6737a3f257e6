"""Image resizing that matches MATLAB's ``imresize``, as separable weight matrices.

The SR literature makes its low-resolution inputs with MATLAB's ``imresize(hr, 1/s, 'bicubic')``;
:func:`imresize` reproduces it (cubic kernel with a = -0.5, the kernel widened by ``1/scale`` when
shrinking so that it also antialiases, MATLAB's pixel-centre mapping, edge pixels repeated past the
borders, weights that sum to 1). Each axis is resized by one ``(out, in)`` matrix, so the result is
differentiable and runs on any device. :func:`imresize_uint8` also rounds to uint8 after each axis,
as MATLAB does on a uint8 image, and :func:`imresize_8bit` does that for float images in [0, 1].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sr_toolkit.core.imageio import to_uint8

Mode = Literal["bicubic", "bilinear", "nearest", "area"]
MODES: tuple[str, ...] = ("bicubic", "bilinear", "nearest", "area")


def _cubic(t: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
    a = t.abs()
    near = (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
    far = (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))
    return near + far


def _triangle(t: Tensor) -> Tensor:
    """The linear-interpolation kernel (MATLAB's 'bilinear'), support [-1, 1]."""
    return (1 - t.abs()).clamp(min=0)


def _box(t: Tensor) -> Tensor:
    """The nearest-neighbour kernel (MATLAB's 'nearest'): 1 on [-0.5, 0.5)."""
    return ((t >= -0.5) & (t < 0.5)).to(t.dtype)


_KERNELS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "bicubic": (_cubic, 4.0),
    "bilinear": (_triangle, 2.0),
    "nearest": (_box, 1.0),
}


@functools.lru_cache(maxsize=128)
def _cached_weights(in_size: int, out_size: int, scale: float, mode: str, antialias: bool) -> Tensor:
    """The weight matrix of :func:`resize_weights`, computed once per set of arguments."""
    kernel, width = _KERNELS[mode]
    # Shrinking with antialiasing stretches the kernel by 1/scale, so that it low-passes.
    stretch = scale if (scale < 1 and antialias and mode != "nearest") else 1.0
    width = width / stretch
    out_pos = torch.arange(1, out_size + 1, dtype=torch.float64)
    centre = out_pos / scale + 0.5 * (1 - 1 / scale)  # in 1-based input coordinates
    first = torch.floor(centre - width / 2)
    taps = first[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
    weights = kernel(stretch * (centre[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Taps past a border read the edge pixel (MATLAB clamps the indices: replicate padding).
    source = (taps.long() - 1).clamp(0, in_size - 1)
    rows = torch.arange(out_size)[:, None].expand_as(source)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    return matrix.index_put_((rows.reshape(-1), source.reshape(-1)), weights.reshape(-1), accumulate=True)


def resize_weights(in_size: int, out_size: int, scale: float, mode: str = "bicubic", antialias: bool = True) -> Tensor:
    """The float64 ``(out_size, in_size)`` matrix that resizes one axis the way MATLAB does.

    ``scale`` is MATLAB's scale factor (``out / in`` for an exact fit, ``1/4`` for x4 shrinking);
    it sets both the kernel's width and where each output pixel samples the input.
    Modes: ``bicubic``, ``bilinear`` and ``nearest`` (which never antialiases).
    """
    if mode not in _KERNELS:
        raise ValueError(f"mode: expected one of {', '.join(_KERNELS)}, got {mode!r}")
    if in_size < 1 or out_size < 1 or not scale > 0:
        raise ValueError(f"sizes and scale must be positive, got {in_size} -> {out_size}, scale {scale}")
    return _cached_weights(int(in_size), int(out_size), float(scale), mode, bool(antialias)).clone()


def output_sizes(
    in_sizes: tuple[int, int], scale: float | None, size: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """MATLAB's rule: a scale gives ``ceil(scale * in)``; a size gives the scale ``out / in``."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if size is not None:
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"size: expected two positive integers (height, width), got {size!r}")
        out = (int(size[0]), int(size[1]))
        return out, (out[0] / in_sizes[0], out[1] / in_sizes[1])
    assert scale is not None  # exactly one of the two was given
    if not scale > 0:
        raise ValueError(f"scale: expected a positive number, got {scale!r}")
    # The small tolerance keeps 3n * (1/3) from rounding up to n + 1.
    height, width = (max(1, math.ceil(n * scale - 1e-9)) for n in in_sizes)
    return (height, width), (float(scale), float(scale))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")


def imresize(
    x: Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    mode: Mode = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """Resize the last two axes (H, W) of a float tensor by ``scale`` or to ``size = (h, w)``.

    ``bicubic`` (default), ``bilinear`` and ``nearest`` follow MATLAB's ``imresize`` with the same
    method name: when shrinking, ``bicubic`` and ``bilinear`` widen their kernel by ``1/scale``
    (antialiasing, unless ``antialias=False``; ``nearest`` never does), and the edge pixels are
    repeated past the borders.
    ``area`` averages the input pixels each output pixel covers
    (``torch.nn.functional.interpolate(mode="area")``, i.e. adaptive average pooling).
    The result is not clamped: bicubic over- and undershoots near edges, as MATLAB's does.
    """
    if not torch.is_floating_point(x) or x.dim() < 2:
        raise ValueError(f"imresize expects a float tensor (..., H, W), got {x.dtype} {tuple(x.shape)}")
    _check_mode(mode)
    height, width = x.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = output_sizes((height, width), scale, size)
    if mode == "area":
        flat = x.reshape(-1, 1, height, width)
        return F.interpolate(flat, size=(out_h, out_w), mode="area").reshape(*x.shape[:-2], out_h, out_w)
    rows = _cached_weights(height, out_h, scale_h, mode, antialias).to(x.device, x.dtype)
    cols = _cached_weights(width, out_w, scale_w, mode, antialias).to(x.device, x.dtype)
    return rows @ x @ cols.T


def matlab_uint8(x: Tensor) -> Tensor:
    """MATLAB's conversion of non-negative doubles to uint8, as floats: round half away from zero,
    saturate at 0 and 255. Only for reproducing MATLAB's own arithmetic (``imresize`` between passes,
    ``rgb2ycbcr``); images are rounded to 8 bits by :func:`sr_toolkit.core.imageio.round_levels`."""
    return torch.floor(x + 0.5).clamp(0, 255)


def imresize_uint8(
    x: Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    mode: Mode = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """Resize a uint8 tensor (..., H, W) exactly as MATLAB's ``imresize`` resizes a uint8 image.

    Same arguments as :func:`imresize`. MATLAB resizes one axis at a time, the one with the smaller
    scale factor first (rows, i.e. the height, on a tie: ``sort(scale)`` in ``imresize.m``), and
    rounds to uint8 after each (half away from zero, saturating); upscaling uses the kernel as it is
    (no widening). This does the same in float64, so the result equals MATLAB's bit for bit (the SR
    benchmarks' LR images were made this way). Devices without float64 (Apple MPS) compute on the CPU.
    """
    if x.dtype != torch.uint8:
        raise ValueError(f"imresize_uint8 expects a uint8 tensor, got {x.dtype}")
    _check_mode(mode)
    device = x.device
    values = (x.cpu() if device.type == "mps" else x).double()
    height, width = x.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = output_sizes((height, width), scale, size)
    if mode == "area":
        return matlab_uint8(imresize(values, size=(out_h, out_w), mode="area")).to(device, torch.uint8)
    rows = _cached_weights(height, out_h, scale_h, mode, antialias).to(values.device)
    cols = _cached_weights(width, out_w, scale_w, mode, antialias).to(values.device)
    if scale_h <= scale_w:
        values = matlab_uint8(matlab_uint8(rows @ values) @ cols.T)
    else:
        values = matlab_uint8(rows @ matlab_uint8(values @ cols.T))
    return values.to(device, torch.uint8)


def imresize_8bit(
    x: Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    mode: Mode = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """Float images (..., H, W) in [0, 1] resized as MATLAB resizes their 8-bit version.

    ``x`` is first rounded to the 256 levels of a uint8 image as a saved image is
    (:func:`sr_toolkit.core.imageio.to_uint8`; MATLAB's ``im2uint8`` gives the same for values already
    on that grid, such as a decoded 8-bit file), then resized by :func:`imresize_uint8`. Returns floats
    in [0, 1] on the 8-bit grid, in ``x``'s dtype: ``imresize(im2uint8(x), ...)`` divided by 255.
    The interpolation baselines of evaluation and validation, evaluation's LR inputs, and the
    ``downscale`` degradation with ``quantize``.
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"imresize_8bit expects a float tensor in [0, 1], got {x.dtype}")
    levels = to_uint8(x)
    return imresize_uint8(levels, scale=scale, size=size, mode=mode, antialias=antialias).to(x.dtype) / 255


def modcrop(x: Tensor, scale: int) -> Tensor:
    """Crop the last two axes (H, W) at the bottom and right down to multiples of ``scale``."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    scale = int(scale)
    height, width = x.shape[-2:]
    return x[..., : height - height % scale, : width - width % scale]
