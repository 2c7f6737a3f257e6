"""Shared by every degradation: checking Range arguments and drawing random values per image.

Random values are drawn on the generator's device (the default generator's when none is given)
and then moved to the images' device, so a seeded generator reproduces a result exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Generator, Tensor

from sr_toolkit.core.typecheck import Range


def as_range(name: str, value: Range, low: float = 0.0, high: float | None = None) -> tuple[float, float]:
    """A number or [low, high] as a (low, high) tuple, checked to lie within [low, high]."""
    bounds = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if len(bounds) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bounds):
        raise ValueError(f"{name}: expected a number or a [low, high] pair, got {value!r}")
    first, last = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(first) and math.isfinite(last)) or first > last:
        raise ValueError(f"{name}: expected low <= high, got {value!r}")
    if first < low or (high is not None and last > high):
        raise ValueError(f"{name}: must lie in {allowed}, got {value!r}")
    return first, last


def probability(name: str, value: float) -> float:
    """``value`` as a float in [0, 1], or a ValueError naming ``name``."""
    if not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def _source(generator: Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def uniform(
    shape: tuple[int, ...], generator: Generator | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Uniform values in [0, 1) of ``shape`` on ``device``."""
    return torch.rand(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def normal(
    shape: tuple[int, ...], generator: Generator | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Standard normal values of ``shape`` on ``device``."""
    return torch.randn(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def poisson(rates: Tensor, generator: Generator | None) -> Tensor:
    """Poisson counts with the given non-negative ``rates`` (any shape), as floats on ``rates``' device."""
    source = _source(generator, rates.device)
    return torch.poisson(rates.to(source), generator=generator).to(rates.device)


def per_image(bounds: tuple[float, float], count: int, generator: Generator | None, device: torch.device) -> Tensor:
    """One value per image, uniform in [low, high] (exactly ``low`` when the range is one number)."""
    low, high = bounds
    return low + (high - low) * uniform((count,), generator, device)


def choose_pixels(fractions: Tensor, height: int, width: int, generator: Generator | None) -> Tensor:
    """A (N, 1, H, W) mask selecting exactly ``round(fraction * H * W)`` random pixels per image."""
    count, pixels = fractions.numel(), height * width
    order = uniform((count, pixels), generator, fractions.device).argsort(dim=1)
    positions = torch.arange(pixels, device=fractions.device).expand(count, pixels)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    chosen = ranks < torch.round(fractions * pixels)[:, None]
    return chosen.view(count, 1, height, width)


def permutation(count: int, generator: Generator | None) -> list[int]:
    """A random order of ``range(count)``."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(count, generator=generator, device=device).tolist()


def categorical(weights: list[float], count: int, generator: Generator | None, device: torch.device) -> Tensor:
    """``count`` indices drawn with probabilities proportional to ``weights``."""
    probabilities = torch.tensor(weights, dtype=torch.float64, device=_source(generator, device))
    return torch.multinomial(probabilities, count, replacement=True, generator=generator).to(device)
