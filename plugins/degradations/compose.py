"""Degradations made of other degradations: a random order, or one step picked per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.data.degrade import Degradation, build_steps
from sr_toolkit.data.sampling import categorical, permutation


@DEGRADATIONS.register("random_order")
class RandomOrder(Degradation):
    """Apply every step in `steps` (degradation specs), in a new random order on each call."""

    def __init__(self, steps: list[dict]) -> None:
        if not steps:
            raise ValueError("steps: expected at least one degradation spec")
        self.steps = build_steps(steps, "steps")

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        for index in permutation(len(self.steps), generator):
            x = self.steps[index](x, generator)
        return x


@DEGRADATIONS.register("one_of")
class OneOf(Degradation):
    """Apply one step of `steps` (degradation specs, or degradations already built) per image, picked at
    random (with `weights`, else equally likely).

    Every step must give images of the same size, since they share one output batch.
    """

    def __init__(self, steps: list[dict | Degradation], weights: list[float] | None = None) -> None:
        if not steps:
            raise ValueError("steps: expected at least one degradation spec")
        if weights is not None and (len(weights) != len(steps) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(
                f"weights: expected {len(steps)} non-negative numbers with a positive sum, got {weights!r}"
            )
        self.steps = build_steps(steps, "steps")
        self.weights = list(weights) if weights is not None else None

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        weights = self.weights or [1.0] * len(self.steps)
        picks = categorical(weights, x.shape[0], generator, x.device)
        branches = [lambda images, step=step: step(images, generator) for step in self.steps]
        return apply_by_pick(x, picks, branches, "one_of")


def apply_by_pick(x: Tensor, picks: Tensor, branches: Sequence[Callable[[Tensor], Tensor]], name: str) -> Tensor:
    """Each image of ``x`` (N, C, H, W) through the branch its ``picks[i]`` names, the branches called in
    order (one call each, on their images; none for a branch no image picked), the results put back in the
    batch's order. Every branch must give images of one size, or a ValueError naming ``name`` is raised."""
    result: Tensor | None = None
    for index, branch in enumerate(branches):
        chosen = (picks == index).nonzero().flatten()
        if chosen.numel() == 0:
            continue
        degraded = branch(x[chosen])
        if result is None:
            result = degraded.new_empty((x.shape[0], *degraded.shape[1:]))
        elif degraded.shape[1:] != result.shape[1:]:
            raise ValueError(
                f"{name}: steps give different sizes {tuple(result.shape[1:])} and "
                f"{tuple(degraded.shape[1:])}; every step must give the same size"
            )
        result[chosen] = degraded
    assert result is not None  # every image picked some branch
    return result
