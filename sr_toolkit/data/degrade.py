"""Degradations: the base every degradation plugin subclasses, and a recipe's ``degradation:`` list built
into one callable pipeline.

A degradation plugin subclasses :class:`Degradation`, registers with ``@DEGRADATIONS.register("name")``
and implements ``apply(x, generator)`` on a batch (N, C, H, W) in [0, 1] on any device. Every random
value comes from ``generator`` (draw it with :mod:`sr_toolkit.data.sampling`, one value per image):
the engine seeds it per step, so a resumed run degrades exactly as the uninterrupted one did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS

Degrade = Callable[[Tensor, Generator | None], Tensor]


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return repr(value[0])  # a range of one number
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)


def scale_factor(value: float) -> float:
    """``value`` as a shrink factor (a number >= 1, not a bool), or a ValueError naming ``scale``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise ValueError(f"scale: expected a number >= 1, got {value!r}")
    return value


class Degradation:
    """A callable ``deg(x, generator=None)`` that degrades a batch (N, C, H, W) of images in [0, 1].

    Subclasses implement :meth:`apply` and keep their arguments as public attributes (ranges as
    (low, high) tuples), which is what the repr shows.
    """

    def __call__(self, x: Tensor, generator: Generator | None = None) -> Tensor:
        if x.dim() != 4 or not torch.is_floating_point(x):
            raise ValueError(
                f"{type(self).__name__} expects a float batch (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        return self.apply(x, generator)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        arguments = ", ".join(
            f"{name}={_show(value)}" for name, value in vars(self).items() if not name.startswith("_")
        )
        return f"{type(self).__name__}({arguments})"


class Pipeline:
    """Degradations applied one after another, each drawing from the same generator."""

    def __init__(self, steps: Sequence[Degrade]) -> None:
        self.steps = list(steps)

    def __call__(self, x: Tensor, generator: Generator | None = None) -> Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r})"


def build_steps(specs: Sequence[Any], where: str = "degradation") -> list[Degrade]:
    """Build each ``{type: name, ...}`` mapping with the degradation registry; a :class:`Degradation`
    already built is taken as it is."""
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"{where}: expected a list of degradation specs, got {specs!r}")
    return [
        spec if isinstance(spec, Degradation) else DEGRADATIONS.build(spec, f"{where}.{index}")
        for index, spec in enumerate(specs)
    ]


def build_pipeline(specs: Sequence[Any]) -> Pipeline:
    """The recipe's degradation list as one callable ``pipeline(x, generator=None)``; [] is the identity."""
    return Pipeline(build_steps(specs))
