"""Additive Gaussian noise, per channel or on luminance only."""

from __future__ import annotations

from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, normal, per_image


@DEGRADATIONS.register("gaussian_noise")
class GaussianNoise(Degradation):
    """Additive Gaussian noise of standard deviation `sigma` (on [0, 1] intensities), clipped."""

    def __init__(self, sigma: Range = (0.0, 0.1), gray: bool = False) -> None:
        self.sigma = as_range("sigma", sigma, 0.0)
        self.gray = gray

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, channels, height, width = x.shape
        sigma = per_image(self.sigma, count, generator, x.device).to(x.dtype).view(-1, 1, 1, 1)
        shape = (count, 1 if self.gray else channels, height, width)
        return (x + sigma * normal(shape, generator, x.device, x.dtype)).clamp(0, 1)
