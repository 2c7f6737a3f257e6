"""A training objective made of weighted loss terms, each built from the LOSSES registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sr_toolkit.core.registry import LOSSES
from sr_toolkit.data.sharpen import unsharp_mask

TARGETS = ("plain", "sharpened")
"""What a loss term's ``target`` key may name: the ground truth as it is, or unsharp-masked
(:func:`~sr_toolkit.data.sharpen.unsharp_mask`, as Real-ESRGAN trains its pixel and perceptual terms)."""


class WeightedLoss(nn.Module):
    """The weighted sum of loss terms, each a spec like ``{"type": "l1", "weight": 100}``.

    ``weight`` defaults to 1: ``[{"type": "mse"}, {"type": "l1", "weight": 100}]`` is mse + 100 l1.
    ``target`` (one of :data:`TARGETS`, default ``plain``) is what a term compares the output with:
    ``sharpened`` gives it the unsharp-masked target, computed once per call on the target's device and
    only when some term asks. Terms are named by type, with ``_2``, ``_3``... for repeats. ``forward``
    returns the total and each term's unweighted value, detached, for logging. A bad ``weight`` or
    ``target`` raises ValueError naming ``where.<index>.<key>``.
    """

    def __init__(self, specs: Sequence[Mapping[str, Any]], where: str = "loss") -> None:
        super().__init__()
        if isinstance(specs, Mapping) or not specs:
            raise ValueError(f"{where}: expected a non-empty list of loss specs, got {specs!r}")
        self.names: list[str] = []
        self.weights: list[float] = []
        self.targets: list[str] = []
        terms = []
        for index, spec in enumerate(specs):
            here = f"{where}.{index}"
            spec = dict(spec)
            weight = spec.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"{here}.weight: expected a number, got {weight!r}")
            target = spec.pop("target", "plain")
            if target not in TARGETS:
                raise ValueError(f"{here}.target: expected one of {'|'.join(TARGETS)}, got {target!r}")
            terms.append(LOSSES.build(spec, here))
            self.names.append(self._unique_name(str(spec["type"])))
            self.weights.append(float(weight))
            self.targets.append(target)
        self.terms = nn.ModuleList(terms)

    def _unique_name(self, base: str) -> str:
        name, count = base, 1
        while name in self.names:
            count += 1
            name = f"{base}_{count}"
        return name

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = output.new_zeros(())
        parts = {}
        targets = {"plain": target}
        if "sharpened" in self.targets:
            targets["sharpened"] = unsharp_mask(target)
        for name, weight, kind, term in zip(self.names, self.weights, self.targets, self.terms):
            value = term(output, targets[kind])
            total = total + weight * value
            parts[name] = value.detach().float()
        return total, parts
