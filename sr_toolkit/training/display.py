"""What a training run shows while it runs: a progress bar on a terminal, plain log lines elsewhere.

On a terminal: rich's progress bar (steps, steps/s, loss, time left) with the last validation on a
line under it. Off a terminal (``nohup``, SLURM, ``> log``): a bar would print nothing until the end,
so one plain log line at the first logged step and then at most every ``every`` seconds (step, loss,
learning rate, steps/s, time left) and one line per validation, each message on one line.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sr_toolkit.evaluation.report import format_value
from sr_toolkit.training.validation import ValidationResult

log = logging.getLogger("sr_toolkit")

PLAIN_EVERY_SECONDS = 30.0
"""Off a terminal: the least time between two plain progress lines."""


class _BarWithNote(Progress):
    """A progress bar with one line of text under it (the last validation)."""

    note = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.note:
            yield self.note


def format_seconds(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``; ``?`` for an unknown time."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def validation_line(step: int, result: ValidationResult) -> str:
    """``validation at step 250: PSNR-Y (dB) 28.91, SSIM-Y 0.8123 (bicubic: PSNR-Y (dB) 28.42, SSIM-Y
    0.8101)``: the means, named as the validation table and evaluation name them."""
    record = result.record()

    def scores(prefix: str) -> str:
        return ", ".join(
            f"{metric.label} {format_value(metric, record[f'val/{prefix}{metric.name}'])}" for metric in result.metrics
        )

    return f"validation at step {step}: {scores('')} ({result.baseline}: {scores('baseline_')})"


class TrainingDisplay:
    """The progress of one run, for the main process (``enabled``); other processes show nothing."""

    def __init__(
        self, console: Console, enabled: bool, max_steps: int, step: int, every: float = PLAIN_EVERY_SECONDS
    ) -> None:
        self.console = console
        self.plain = enabled and not console.is_terminal
        self.every = every
        self.last_line = -math.inf
        self.bar = _BarWithNote(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} steps/s"),
            TextColumn("loss {task.fields[loss]:.4g}"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled or self.plain,
            refresh_per_second=2,
        )
        self.task = self.bar.add_task("training", total=max_steps, completed=step, loss=math.nan, rate=0.0)

    def __enter__(self) -> TrainingDisplay:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def advance(self) -> None:
        self.bar.advance(self.task)

    def logged(self, record: dict[str, Any], rate: float, total: int, seconds_left: float) -> None:
        """A logged training record (step, loss, lr); ``total``: the steps the run is expected to end at."""
        self.bar.update(self.task, loss=record["loss"], rate=rate, total=total)
        now = time.monotonic()
        if self.plain and now - self.last_line >= self.every:
            self.last_line = now
            log.info(
                "step %d/%d  loss %.4g  lr %.3g  %.2f steps/s  %s left",
                record["step"],
                total,
                record["loss"],
                record["lr"],
                rate,
                format_seconds(seconds_left),
            )

    def validated(self, line: str) -> None:
        """One validation's line: logged off a terminal, shown under the bar on one."""
        if self.plain:
            log.info("%s", line)
        else:
            self.bar.note = line

    def finish(self, step: int) -> None:
        """Mark the bar complete at ``step`` (where a time budget or a signal ended the run)."""
        self.bar.update(self.task, total=step, completed=step)
