"""Learning-rate schedules as a factor of the base rate, from the step and the budget used."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sr_toolkit.errors import RecipeError

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | float | None) -> float | None:
    """Seconds in ``10m``, ``90s``, ``1.5h`` or a plain number of seconds; None stays None."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", value)
    if not match:
        raise RecipeError(f"train.max_time: expected a duration like 10m, 90s or 1h, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def lr_factor(scheduler: Mapping[str, Any], step: int, progress: float) -> float:
    """The multiplier of the base learning rate at ``step``.

    ``progress`` in [0, 1] is the fraction of the run done: of ``max_steps``, or of the wall-clock
    budget when that runs out first, so a cosine schedule reaches its end when the time does.
    """
    warmup = scheduler["warmup_steps"]
    if warmup and step < warmup:
        return (step + 1) / warmup
    kind = scheduler["type"]
    if kind == "constant":
        return 1.0
    if kind == "step":
        return scheduler["gamma"] ** (step // scheduler["step_size"])
    floor = scheduler["min_lr_ratio"]
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
