"""Tiled inference: run a model on overlapping tiles, so that memory grows with the tile, not the image.

The input is cut into a grid of ``tile`` x ``tile`` cores; the model reads each core widened by
``overlap`` pixels on every side (less at the image border), and only the core's part of its output is
kept. When the overlap covers the model's receptive field (the ``halo`` of its contract,
:func:`sr_toolkit.core.model_contract.contract_of`, the default) every kept output
pixel saw exactly what it would have seen in one pass over the whole image, so the tiled result equals
the untiled one (to float rounding, about 1e-6) for any model that treats pixels the same everywhere.

Two things break that equality: batch statistics (BatchNorm in training mode; run in eval mode, where
BatchNorm is a fixed affine map) and sampling grids that depend on the input size (the contract's
``exact_tiling`` is then False).
``resnet_x4`` with ``upsample: bilinear_ac`` (the report's model) is the shipped case: ``align_corners=True``
places its interpolation samples by the size of what it is given, so a tile's samples drift by up to
half an input pixel from the whole image's, which shows at sharp edges and tile borders (up to 100 of
255 levels for the report's trained model). Its ``upsample: bicubic`` variant tiles exactly.

Models with a ``size_multiple`` (the autoencoder needs multiples of 16) get tiles and overlaps rounded up
to that multiple, and the crops at the bottom and right edges padded by repeating the edge pixels (also up
to the contract's ``minimum_size``); the padded part of the output is dropped. The untiled pass
(``tile=None``) is padded the same way. A model that declares inexact tiling with a ``halo`` is tiled with
that overlap all the same, when asked to.

:func:`auto_tile` decides when to tile without being asked (``tools/upscale.py`` by the memory available,
evaluation above 2048x2048 output pixels): only where the result does not change, that is for models
that tile exactly and declare their ``halo``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_toolkit.core.imageio import round_levels
from sr_toolkit.core.model_contract import ModelContract, contract_of

FALLBACK_OVERLAP = 32
"""Overlap for models that do not declare a ``halo`` (third-party plugins); a warning says it is a guess."""
MIN_AUTO_TILE = 16
"""The smallest tile :func:`auto_tile` picks, however little memory there is: a smaller one is mostly overlap."""


class Span(NamedTuple):
    """One tile along one axis: it writes ``[start, stop)``; the model reads ``[read_start, read_stop)``."""

    start: int
    stop: int
    read_start: int
    read_stop: int


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return math.ceil(value / multiple) * multiple


def guessed_overlap(contract: ModelContract) -> int:
    """The overlap for a model that declares no ``halo``: :data:`FALLBACK_OVERLAP` rounded up to its size
    multiple."""
    return round_up(FALLBACK_OVERLAP, contract.size_multiple)


def default_overlap(model: nn.Module) -> int:
    """The overlap tiles read by default: the contract's ``halo`` rounded up to the model's size multiple
    (for a model that tiles exactly, the overlap that makes tiling exact), else :func:`guessed_overlap`
    with a warning."""
    contract = contract_of(model)
    if contract.halo is None:
        warnings.warn(
            f"model '{contract.architecture}' declares no 'halo' (receptive-field radius); tiling with an overlap "
            f"of {FALLBACK_OVERLAP} pixels, which may leave seams: pass an overlap to be sure",
            stacklevel=3,
        )
        return guessed_overlap(contract)
    return round_up(contract.halo, contract.size_multiple)


def tiles_exactly(model: nn.Module) -> bool:
    """Whether tiles read with the default overlap give exactly the whole-image result (the contract's
    ``exact_tiling``): False for a model without a ``halo``, and for one whose sampling grid depends on the
    input size (``align_corners=True``) or that declares inexact tiling."""
    return contract_of(model).exact_tiling


def auto_tile(
    model: nn.Module,
    height: int,
    width: int,
    *,
    scale: int,
    max_pixels: int,
    tile: int | None = None,
    overlap: int | None = None,
) -> int | None:
    """The tile side (input pixels) to run a ``height`` x ``width`` input in when nobody chose one;
    None: one pass over the whole input.

    None when one pass makes at most ``max_pixels`` output pixels (``height * width * scale**2``), and
    when tiling could change the result (:func:`tiles_exactly` is False: the model samples with
    ``align_corners``, declares inexact tiling, or has no ``halo``, so its overlap would be a guess).
    Otherwise ``tile`` when given, else :func:`fitting_tile`.
    """
    if height * width * scale**2 <= max_pixels or not tiles_exactly(model):
        return None
    return fitting_tile(model, scale=scale, max_pixels=max_pixels, overlap=overlap) if tile is None else tile


def fitting_tile(model: nn.Module, *, scale: int, max_pixels: int, overlap: int | None = None) -> int:
    """The largest tile (input pixels a side) whose pass, the tile and ``overlap`` pixels on each side
    (default :func:`default_overlap`), makes at most ``max_pixels`` output pixels; in multiples of the
    model's size multiple, and at least :data:`MIN_AUTO_TILE` however small ``max_pixels`` is."""
    multiple = contract_of(model).size_multiple
    overlap = default_overlap(model) if overlap is None else round_up(overlap, multiple)
    side = math.isqrt(max(max_pixels, 0)) // scale - 2 * overlap
    return max(side // multiple * multiple, round_up(MIN_AUTO_TILE, multiple))


def spans(size: int, tile: int | None, overlap: int) -> list[Span]:
    """The tiles along an axis of ``size`` pixels: cores of ``tile`` pixels (None: one core for all)."""
    if tile is None or tile >= size:
        return [Span(0, size, 0, size)]
    return [
        Span(start, min(start + tile, size), max(0, start - overlap), min(size, start + tile + overlap))
        for start in range(0, size, tile)
    ]


def tile_count(model: nn.Module, height: int, width: int, tile: int | None) -> int:
    """How many tiles :func:`forward_tiled` runs for an image of ``height`` x ``width`` pixels."""
    if tile is None:
        return 1
    tile = round_up(tile, contract_of(model).size_multiple)
    return math.ceil(height / tile) * math.ceil(width / tile)


def forward_tiled(
    model: nn.Module,
    x: Tensor,
    *,
    scale: int,
    tile: int | None,
    overlap: int | None = None,
    on_tile: Callable[[], None] | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Run ``model`` on ``x`` (N, C, H, W) tile by tile, under ``torch.no_grad()``.

    ``scale``: the output is ``scale`` times the input's height and width. ``tile``: the core size in
    input pixels (None: the whole image in one pass). ``overlap``: context read around each core
    (None: :func:`default_overlap`). ``on_tile`` is called after each tile (for progress bars).

    Tiles are moved to the device and floating dtype of the model's parameters; the result is written
    into ``out`` when given (any shape-compatible tensor; integer dtypes receive the values clamped to
    [0, 1], scaled to the dtype's maximum and rounded, as a saved image would), otherwise into a new
    tensor with ``x``'s device and dtype. Keeping ``x`` and ``out`` on the CPU bounds GPU memory by the tile.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float (N, C, H, W) tensor, got {x.dtype} of shape {tuple(x.shape)}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    if tile is not None and tile < 1:
        raise ValueError(f"tile: expected a positive number of pixels or None, got {tile!r}")
    if overlap is not None and overlap < 0:
        raise ValueError(f"overlap: expected a number of pixels >= 0 or None, got {overlap!r}")
    contract = contract_of(model)
    multiple = contract.size_multiple
    if tile is None:
        overlap = 0  # one tile: no context to add (and no guess to warn about)
    else:
        tile = round_up(tile, multiple)
        overlap = default_overlap(model) if overlap is None else round_up(overlap, multiple)
    height, width = x.shape[-2:]
    if out is not None and tuple(out.shape[-2:]) != (height * scale, width * scale):
        raise ValueError(f"out: expected {height * scale}x{width * scale} pixels, got {tuple(out.shape)}")
    device, dtype = _placement(model, x)
    with torch.no_grad():
        for rows, cols in itertools.product(spans(height, tile, overlap), spans(width, tile, overlap)):
            crop = x[..., rows.read_start : rows.read_stop, cols.read_start : cols.read_stop]
            result = _run(model, crop.to(device, dtype), scale, contract)
            if out is None:
                shape = (x.shape[0], result.shape[1], height * scale, width * scale)
                out = torch.empty(shape, dtype=x.dtype, device=x.device)
            top, left = (rows.start - rows.read_start) * scale, (cols.start - cols.read_start) * scale
            kept = result[
                ..., top : top + (rows.stop - rows.start) * scale, left : left + (cols.stop - cols.start) * scale
            ]
            target = out[..., rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale]
            target.copy_(cast_pixels(kept, out.dtype))
            if on_tile is not None:
                on_tile()
    assert out is not None  # the grid always has at least one tile
    return out


def _placement(model: nn.Module, x: Tensor) -> tuple[torch.device, torch.dtype]:
    """Where tiles run: the device and floating dtype of the model's first parameter (else ``x``'s)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return x.device, x.dtype


def padded_size(size: int, contract: ModelContract) -> int:
    """``size`` pixels padded to what the model takes: at least its minimum, in multiples of its multiple."""
    return round_up(max(size, contract.minimum_size), contract.size_multiple)


def _run(model: nn.Module, crop: Tensor, scale: int, contract: ModelContract) -> Tensor:
    """The model's output for one crop, padded at the bottom and right as :func:`padded_size` says and cut back."""
    height, width = crop.shape[-2:]
    pad_h, pad_w = padded_size(height, contract) - height, padded_size(width, contract) - width
    if pad_h or pad_w:
        crop = F.pad(crop, (0, pad_w, 0, pad_h), mode="replicate")
    result = model(crop)
    expected = (crop.shape[-2] * scale, crop.shape[-1] * scale)
    if tuple(result.shape[-2:]) != expected:
        raise ValueError(
            f"the model turned a {crop.shape[-2]}x{crop.shape[-1]} input into "
            f"{result.shape[-2]}x{result.shape[-1]}, not {expected[0]}x{expected[1]} (scale {scale}): "
            "is the scale right?"
        )
    return result[..., : height * scale, : width * scale]


def cast_pixels(values: Tensor, dtype: torch.dtype) -> Tensor:
    """``values`` as ``dtype``; integer dtypes get [0, 1] mapped to 0..max by
    :func:`sr_toolkit.core.imageio.round_levels` (for uint8 exactly :func:`sr_toolkit.core.imageio.to_uint8`)."""
    if dtype.is_floating_point:
        return values.to(dtype)
    return round_levels(values.float(), torch.iinfo(dtype).max).to(dtype)
