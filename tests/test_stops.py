"""How a run stops: signals at any moment, and NaN or inf values named at their source."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_engine import ROOT, TINY_RECIPE, train

from sr_toolkit.core import checkpoint
from sr_toolkit.core.errors import TrainingDiverged
from sr_toolkit.training.stop import StopRequested, StopSignal

SLOW_EVAL_PLUGIN = '''
import os, time
from pathlib import Path
import torch
from sr_toolkit.core.registry import MODELS


@MODELS.register("slow_eval_net")
class SlowEvalNet(torch.nn.Module):
    """x4 nearest upscale plus a conv; in eval mode it marks a file and sleeps (a long validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        if not self.training:
            Path(os.environ["SLOW_EVAL_MARKER"]).touch()
            time.sleep(60)
        return torch.nn.functional.interpolate(self.conv(x), scale_factor=4)
'''


def test_a_signal_at_each_moment_keeps_the_trained_state(tmp_path: Path) -> None:
    """SIGTERM during the final validation: the state after the last step is already on disk, the
    validation is dropped, and the process exits cleanly (before, it died and lost every step since
    the last checkpoint)."""
    plugin = tmp_path / "slow_eval.py"
    plugin.write_text(SLOW_EVAL_PLUGIN)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    marker = tmp_path / "validating"
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tools" / "train.py"),
            str(recipe),
            f"plugins=[{plugin}]",
            "model={type: slow_eval_net}",
            "train.max_steps=3",
            "train.checkpoint_every=2",
            "train.val_every=100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SLOW_EVAL_MARKER": str(marker), "COLUMNS": "200"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and not marker.exists() and process.poll() is None:
        time.sleep(0.1)
    run = tmp_path / "run"
    assert marker.exists(), process.communicate()[0]
    # the validation has started: everything trained is written already
    assert (run / "model.safetensors").is_file()
    assert checkpoint.read(run / "checkpoints" / "step_0000003.safetensors")[1]["step"] == 3
    started = time.time()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert time.time() - started < 30  # the 60 s validation was dropped, not waited for
    said = " ".join(output.split())
    assert "received SIGTERM during validation at step 3: validation dropped" in said
    assert "Traceback" not in output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records and not any("val/psnr" in r for r in records)


def test_first_signal_asks_second_stops_at_once() -> None:
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with StopSignal() as stop, pytest.raises(StopRequested, match="SIGTERM"), stop.abortable():  # noqa: PT012
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached: the signal drops the abortable work


def test_the_final_validation_is_logged_once(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    train(recipe, "train.max_steps=4")  # the last step is also a val_every step
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val/psnr" in r] == [4]


NAN_PLUGIN = '''
import torch
from sr_toolkit.core.registry import LOSSES


@LOSSES.register("nan_at")
class NanAt(torch.nn.Module):
    """L1 that is NaN at the given calls (1-based), or from call ``after`` on."""

    def __init__(self, calls: list = [], after: int = 0) -> None:
        super().__init__()
        self.calls, self.after, self.count = set(calls), after, 0

    def forward(self, output, target):
        self.count += 1
        loss = (output - target).abs().mean()
        bad = self.count in self.calls or (self.after and self.count >= self.after)
        return loss * float("nan") if bad else loss


@LOSSES.register("nan_gradient")
class NanGradient(torch.nn.Module):
    """Finite value (0) whose gradient is NaN: sqrt at 0 times 0."""

    def forward(self, output, target):
        return torch.sqrt((output - target).pow(2).sum() * 0.0)
'''


@pytest.fixture
def nan_recipe(tmp_path: Path, clean_registries: None) -> Path:
    plugin = tmp_path / "nan_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    path = tmp_path / "tiny.yaml"
    path.write_text(
        TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\nplugins: [{plugin}]\nscheduler: {{type: constant}}\n"
    )
    return path


@pytest.mark.parametrize(
    "losses, message",
    [
        ("[{type: l1}, {type: nan_at, calls: [3]}]", "loss term 'nan_at' became NaN or inf at step 3"),
        ("[{type: nan_at, after: 2}, {type: nan_at, calls: [1]}]", "loss term 'nan_at_2' became NaN or inf at step 1"),
        ("[{type: l1}, {type: nan_gradient}]", "the gradients became NaN or inf at step 1"),
    ],
)
def test_nonfinite_stop_names_the_first_source_and_step(nan_recipe: Path, losses: str, message: str) -> None:
    with pytest.raises(TrainingDiverged, match=message.replace("(", r"\(")):
        train(nan_recipe, f"loss={losses}", "train.on_nonfinite=stop")


def test_skip_drops_exactly_the_bad_update(nan_recipe: Path, tmp_path: Path) -> None:
    skipped = train(
        nan_recipe,
        "loss=[{type: nan_at, calls: [3]}]",
        "train.on_nonfinite=skip",
        "train.log_every=1",
        "train.max_steps=3",
        f"output_dir={tmp_path / 'skip'}",
    )
    two_steps = train(nan_recipe, "loss=[{type: l1}]", "train.max_steps=2", f"output_dir={tmp_path / 'two'}")
    # step 3 changed no weight and no Adam moment (batch-norm statistics, not trained, did move)
    a = dict(skipped.accelerator.unwrap_model(skipped.model).named_parameters())
    b = dict(two_steps.accelerator.unwrap_model(two_steps.model).named_parameters())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    moments = [
        [state["exp_avg"] for state in trainer.optimizer.state_dict()["state"].values()]
        for trainer in (skipped, two_steps)
    ]
    assert all(torch.equal(x, y) for x, y in zip(*moments, strict=True))
    records = [json.loads(line) for line in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records if "loss" in r] == [0, 0, 1]
    assert skipped.state.skipped == 1 and (tmp_path / "skip" / "model.safetensors").is_file()


def test_skip_stops_after_too_many_in_a_row_naming_the_term(nan_recipe: Path) -> None:
    message = r"loss term 'nan_at' was NaN or inf in 3 steps in a row \(from step 2"
    with pytest.raises(TrainingDiverged, match=message):
        train(
            nan_recipe,
            "loss=[{type: nan_at, after: 2}]",
            "train.on_nonfinite=skip",
            "train.max_consecutive_skips=3",
            "train.max_steps=20",
        )


def test_skips_that_recover_reset_the_count(nan_recipe: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = train(
        nan_recipe,
        "loss=[{type: nan_at, calls: [2, 3, 5, 6]}]",
        "train.on_nonfinite=skip",
        "train.max_consecutive_skips=3",
        "train.max_steps=7",
    )
    assert trainer.state.step == 7 and trainer.state.skipped == 4
    skipped = [m for m in caplog.messages if "update skipped" in m]
    assert skipped[0] == "step 2: loss term 'nan_at' was NaN or inf: update skipped (1 skipped in all)"
    assert [m.split(":")[0] for m in skipped] == ["step 2", "step 3", "step 5", "step 6"]


def test_the_last_checkpoint_records_the_final_validations_best(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    trainer = train(recipe, "train.max_steps=3", "train.val_every=100")  # validated only at the end
    _, meta = checkpoint.read(tmp_path / "run" / "checkpoints" / "step_0000003.safetensors")
    assert meta["best_psnr"] == trainer.state.best_psnr > 0
