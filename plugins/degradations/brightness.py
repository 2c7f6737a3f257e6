"""Exposure errors: the whole image darker or brighter by a factor."""

from __future__ import annotations

from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, per_image


@DEGRADATIONS.register("darken")
class Darken(Degradation):
    """Underexposure: intensities multiplied by 1 - `amount`."""

    def __init__(self, amount: Range = (0.3, 0.6)) -> None:
        self.amount = as_range("amount", amount, 0.0, 1.0)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        amount = per_image(self.amount, x.shape[0], generator, x.device).to(x.dtype)
        return x * (1 - amount).view(-1, 1, 1, 1)


@DEGRADATIONS.register("brighten")
class Brighten(Degradation):
    """Overexposure: intensities multiplied by 1 + `amount`, clipped at white."""

    def __init__(self, amount: Range = (0.3, 0.6)) -> None:
        self.amount = as_range("amount", amount, 0.0)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        amount = per_image(self.amount, x.shape[0], generator, x.device).to(x.dtype)
        return (x * (1 + amount).view(-1, 1, 1, 1)).clamp(0, 1)
