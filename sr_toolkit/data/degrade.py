"""Degradation pipelines: a recipe's ``degradation:`` list built into one callable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS

Degrade = Callable[[Tensor, Optional[Generator]], Tensor]


class Pipeline:
    """Degradations applied one after another, each drawing from the same generator."""

    def __init__(self, steps: Sequence[Degrade]) -> None:
        self.steps = list(steps)

    def __call__(self, x: Tensor, generator: Optional[Generator] = None) -> Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r})"


def build_steps(specs: Sequence[Any], where: str = "degradation") -> list[Degrade]:
    """Build each ``{type: name, ...}`` mapping with the degradation registry."""
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"{where}: expected a list of degradation specs, got {specs!r}")
    return [DEGRADATIONS.build(spec, f"{where}.{index}") for index, spec in enumerate(specs)]


def build_pipeline(specs: Sequence[Any]) -> Pipeline:
    """The recipe's degradation list as one callable ``pipeline(x, generator=None)``; [] is the identity."""
    return Pipeline(build_steps(specs))
