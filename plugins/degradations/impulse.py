"""Impulse noise: pixels replaced outright, by black or white (salt & pepper) or a random colour."""

from __future__ import annotations

import torch
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, choose_pixels, per_image, uniform


class ImpulseNoise(Degradation):
    """Replaces exactly ``round(amount * H * W)`` random pixels per image (all channels)."""

    def __init__(self, amount: Range = (0.3, 0.6)) -> None:
        self.amount = as_range("amount", amount, 0.0, 1.0)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, _, height, width = x.shape
        chosen = choose_pixels(per_image(self.amount, count, generator, x.device), height, width, generator)
        return torch.where(chosen, self.replacement(x, generator), x)

    def replacement(self, x: Tensor, generator: Generator | None) -> Tensor:
        raise NotImplementedError


@DEGRADATIONS.register("salt_pepper")
class SaltPepper(ImpulseNoise):
    """Salt & pepper noise: a fraction `amount` of the pixels set to black or white (half each)."""

    def replacement(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, _, height, width = x.shape
        return (uniform((count, 1, height, width), generator, x.device) < 0.5).to(x.dtype)


@DEGRADATIONS.register("color_noise")
class ColorNoise(ImpulseNoise):
    """Random coloured pixels: a fraction `amount` of the pixels set to uniformly random colours."""

    def replacement(self, x: Tensor, generator: Generator | None) -> Tensor:
        return uniform(tuple(x.shape), generator, x.device, x.dtype)
