"""Resuming a run with a time budget: the budget counts across resumes, and a larger one extends
the run with the learning-rate schedule going on from where it was."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_engine import TINY_RECIPE, train

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.training import engine
from sr_toolkit.training.schedule import RunProgress


def test_run_progress_stretches_the_rest_of_the_schedule() -> None:
    plain = RunProgress(max_steps=100, budget=60.0)
    assert plain(10, 30.0) == 0.5 and plain(50, 6.0) == 0.5
    extended = RunProgress(max_steps=100, budget=120.0, anchor=(1.0, 40, 60.0))
    assert extended(40, 60.0) == 1.0 and extended(90, 100.0) == 1.0  # it had ended: it stays at the end
    halfway = RunProgress(max_steps=100, budget=120.0, anchor=(0.5, 20, 30.0))
    assert halfway(20, 30.0) == 0.5  # continuous where it resumed
    assert halfway(20, 75.0) == pytest.approx(0.75) and halfway(20, 120.0) == 1.0
    steps_only = RunProgress(max_steps=200, budget=None, anchor=(0.25, 50, 9.0))
    assert steps_only(125, 0.0) == pytest.approx(0.625)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


class FakeClock:
    """``time`` for the engine: ``perf_counter`` advances a fixed tick per call, so a time budget ends
    after the same steps on any machine, however loaded (a real 2 s budget gave a few slow steps under
    load, the last of them far from the schedule's end)."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_a_used_budget_trains_no_more_and_a_larger_one_goes_on_smoothly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "time", FakeClock(tick=0.02))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    budget = (
        "train.max_steps=100000",
        "train.val_every=100000",
        "train.log_every=1",
        "train.checkpoint_every=100000",
        "scheduler={type: cosine, min_lr_ratio: 0.1}",
    )
    first = train(recipe, *budget, "train.max_time=2s")
    run = tmp_path / "run"
    assert first.state.elapsed >= 2  # the saved time is where the budget ended it
    ended, before = first.state.step, records(run)
    saved = run / "recipe.yaml"

    again = train(saved, resume=True)  # the same budget: used up
    assert again.state.step == ended
    assert "nothing to train" in caplog.text and "--resume train.max_time=DURATION" in caplog.text
    assert records(run) == before  # no step, no second validation of the same step

    more = train(saved, "train.max_time=4s", resume=True)
    assert more.state.step > ended
    assert load_recipe(saved)["train"]["max_time"] == "4s"  # the saved recipe records the new budget
    lrs = [r["lr"] for r in records(run) if "lr" in r]
    floor = 1.0e-3 * 0.1
    assert lrs[ended - 1] == pytest.approx(floor, rel=0.02)  # the first run ended near its floor
    assert all(math.isclose(lr, floor, rel_tol=0.02) for lr in lrs[ended:])  # and stays there: no jump
    assert [r["step"] for r in records(run) if "loss" in r] == list(range(1, more.state.step + 1))
