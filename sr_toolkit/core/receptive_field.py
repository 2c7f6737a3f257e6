"""A safe bound on a model's receptive-field radius in input pixels (the overlap tiled inference needs).

Positions are compared through the nominal mapping of a layer that zooms by ``z``: pixel ``o`` of its
output sits at ``(o + 0.5) / z - 0.5`` in its input. Each spatial layer adds the largest distance between
an output pixel's nominal position and the input pixels it reads; the radii of a chain of layers add up.
Pointwise layers add nothing (BatchNorm counts as pointwise: tiled inference runs in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from torch import nn

POINTWISE = (
    nn.BatchNorm2d,
    nn.ReLU,
    nn.PReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)
INTERPOLATION_RADIUS = {"nearest": 0.5, "bilinear": 1.0, "bicubic": 2.0}


def halo(*branches: Iterable[nn.Module]) -> int:
    """The receptive-field radius in input pixels, rounded up, of the widest of parallel ``branches``.

    Each branch lists modules in the order they run; their leaf layers, in registration order, form one
    chain. A residual skip inside a chain needs no branch of its own: it reads a subset of what the chain
    reads. Unknown leaf layers raise TypeError rather than give a bound that may be wrong.
    """
    chains = [list(_leaves(branch)) for branch in branches]
    return max(math.ceil(_chain_radius(chain, axis) - 1e-9) for chain in chains for axis in (0, 1))


def _leaves(modules: Iterable[nn.Module]) -> Iterator[nn.Module]:
    for module in modules:
        yield from (leaf for leaf in module.modules() if next(leaf.children(), None) is None)


def _chain_radius(layers: list[nn.Module], axis: int) -> float:
    radius = 0.0  # in input pixels
    zoom = 1.0  # pixels of the current feature map per input pixel
    for layer in layers:
        step, layer_zoom = _layer_radius(layer, axis)
        radius += step / zoom
        zoom *= layer_zoom
    return radius


def _layer_radius(layer: nn.Module, axis: int) -> tuple[float, float]:
    """(radius in the layer's input pixels, zoom factor) of one leaf layer along ``axis`` (0: rows)."""
    if isinstance(layer, POINTWISE):
        return 0.0, 1.0
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
        kernel, stride, padding, dilation = _geometry(layer, axis)
        offset = (stride - 1) / 2
        return max(padding + offset, dilation * (kernel - 1) - padding - offset), 1 / stride
    if isinstance(layer, nn.ConvTranspose2d):
        kernel, stride, padding, dilation = _geometry(layer, axis)
        span = dilation * (kernel - 1)
        return max(abs(padding - 0.5) / stride + 0.5, (span - padding + 0.5) / stride - 0.5), stride
    if isinstance(layer, nn.Upsample) and layer.scale_factor is not None:
        if layer.mode not in INTERPOLATION_RADIUS:
            raise TypeError(f"no receptive-field rule for Upsample mode '{layer.mode}'")
        drift = 0.5 if layer.align_corners else 0.0  # align_corners shifts positions by under half a pixel
        return INTERPOLATION_RADIUS[layer.mode] + drift, float(_pair(layer.scale_factor)[axis])
    if isinstance(layer, nn.PixelShuffle):
        return 0.5, layer.upscale_factor  # a sub-pixel sits under half an input pixel from its source
    raise TypeError(f"no receptive-field rule for layer {type(layer).__name__}")


def _pair(value: int | float | tuple) -> tuple:
    return value if isinstance(value, tuple) else (value, value)


def _geometry(layer: nn.Module, axis: int) -> tuple[int, int, int, int]:
    """(kernel size, stride, padding, dilation) of a convolution or pooling layer along ``axis``."""
    names = ("kernel_size", "stride", "padding", "dilation")
    return tuple(_pair(getattr(layer, name))[axis] for name in names)
