"""Learning-rate schedules as a factor of the base rate, from the step and the budget used."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | float | None) -> float | None:
    """Seconds in ``10m``, ``90s``, ``1.5h`` or a plain number of seconds; None stays None.
    Raises ValueError for anything else (the recipe schema checks ``train.max_time`` with
    :func:`duration_problem` before a run starts)."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", value)
    if not match:
        raise ValueError(f"expected a duration like 10m, 90s or 1h, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def duration_problem(value: str | float | None) -> str | None:
    """What is wrong with ``value`` as a time budget (a recipe Field check), or None."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        return "expected a duration like 10m, 90s or 1h"
    return "must be more than 0 seconds" if seconds is not None and seconds <= 0 else None


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


@dataclass
class RunProgress:
    """The fraction of a run done, in [0, 1], that :func:`lr_factor` takes as ``progress``.

    Normally the larger of ``step / max_steps`` and ``elapsed / budget``. A run resumed with other
    limits (``train.max_time=20m`` to give a finished run more time) is given an ``anchor``: the
    progress, step and elapsed seconds where it resumed; the rest of the schedule is then stretched
    from there over the new limits, so the learning rate goes on from where it was instead of
    jumping back up.
    """

    max_steps: int
    budget: float | None
    anchor: tuple[float, int, float] | None = None  # (progress, step, elapsed) at the resume

    def __call__(self, step: int, elapsed: float) -> float:
        if self.anchor is None:
            return max(step / self.max_steps, elapsed / self.budget if self.budget else 0.0)
        done, first_step, first_elapsed = self.anchor
        parts = [(step - first_step) / max(self.max_steps - first_step, 1)]
        if self.budget:
            parts.append((elapsed - first_elapsed) / max(self.budget - first_elapsed, 1e-9))
        return min(1.0, done + (1.0 - done) * max(parts))
