"""Gaussian blur with a different width per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, per_image


@DEGRADATIONS.register("gaussian_blur")
class GaussianBlur(Degradation):
    """Isotropic Gaussian blur of standard deviation `sigma` pixels (kernel radius 3 x the largest)."""

    def __init__(self, sigma: Range = (0.2, 3.0)) -> None:
        self.sigma = as_range("sigma", sigma, 0.0)
        self._radius = max(1, math.ceil(3 * self.sigma[1]))

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, channels, height, width = x.shape
        sigma = per_image(self.sigma, count, generator, x.device).to(x.dtype).clamp(min=1e-6)
        offsets = torch.arange(-self._radius, self._radius + 1, device=x.device, dtype=x.dtype)
        kernels = torch.exp(-(offsets**2) / (2 * sigma[:, None] ** 2))
        kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
        size = 2 * self._radius + 1
        planes = F.pad(x.reshape(1, count * channels, height, width), [self._radius] * 4, mode="replicate")
        planes = F.conv2d(planes, kernels.view(-1, 1, size, 1), groups=count * channels)
        planes = F.conv2d(planes, kernels.view(-1, 1, 1, size), groups=count * channels)
        return planes.view(count, channels, height, width)
