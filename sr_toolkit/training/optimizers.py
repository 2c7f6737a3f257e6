"""Optimizers by recipe name: the one table of the names an ``optimizer:`` section may give.

The recipe schema reads :data:`OPTIMIZERS` for the names ``optimizer.type`` (and
``gan.optimizer.type``) accept, and for the keys only some types use (``betas``, ``momentum``);
:func:`build_optimizer` reads it to build one. A new optimizer is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class OptimizerType:
    """A torch optimizer class and the recipe keys it takes besides ``lr``, ``weight_decay`` and ``fused``."""

    cls: type[torch.optim.Optimizer]
    reads: tuple[str, ...]


OPTIMIZERS: dict[str, OptimizerType] = {
    "adam": OptimizerType(torch.optim.Adam, ("betas",)),
    "adamw": OptimizerType(torch.optim.AdamW, ("betas",)),
    "sgd": OptimizerType(torch.optim.SGD, ("momentum",)),
}


def optimizers_reading(key: str) -> tuple[str, ...]:
    """The optimizer names whose type reads the recipe key ``key`` (``"betas"`` -> adam, adamw)."""
    return tuple(name for name, kind in OPTIMIZERS.items() if key in kind.reads)


def build_optimizer(cfg: dict[str, Any], model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer an ``optimizer:`` (or ``gan.optimizer:``) section describes, over ``model``'s parameters.

    ``fused`` picks torch's fused implementation (the same update, computed for all parameters in one
    kernel instead of several small operations per tensor: a few percent of a small network's step).
    """
    kind = OPTIMIZERS[cfg["type"]]
    kwargs: dict[str, Any] = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"], "fused": cfg["fused"]}
    for key in kind.reads:
        kwargs[key] = tuple(cfg[key]) if isinstance(cfg[key], (list, tuple)) else cfg[key]
    return kind.cls(model.parameters(), **kwargs)
