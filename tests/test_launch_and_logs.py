"""What the README's commands give a new user: all cores under the launcher, logs a batch job can
follow, the run folder untouched by a bad value, and every stop saying why."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data
from test_engine import ROOT, TINY_RECIPE, train

from sr_toolkit.core.errors import SrToolkitError
from sr_toolkit.core.threads import chosen_threads, configure_threads, usable_cores
from sr_toolkit.training.display import format_seconds, validation_line
from sr_toolkit.training.validation import ValidationResult, validation_metrics

LAUNCHER = {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO"}


@pytest.fixture
def restore_threads() -> None:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "env, cores, threads, says",
    [
        ({**LAUNCHER, "OMP_NUM_THREADS": "1"}, 8, 8, "accelerate launch's default OMP_NUM_THREADS=1 not applied"),
        ({**LAUNCHER, "OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, 8, 4, "8 usable cores / 2 processes"),
        ({**LAUNCHER, "OMP_NUM_THREADS": "3"}, 8, 3, "threads: 3 (OMP_NUM_THREADS)"),
        ({"OMP_NUM_THREADS": "1"}, 8, 1, "threads: 1 (OMP_NUM_THREADS)"),  # asked for outside a launcher
        ({}, 2, 2, "threads: 2 per process (2 usable cores / 1 process on this machine;"),
        ({"LOCAL_WORLD_SIZE": "4"}, 2, 1, "threads: 1 per process"),
    ],
)
def test_each_process_uses_its_share_of_the_cores(
    env: dict[str, str], cores: int, threads: int, says: str, restore_threads: None
) -> None:
    line = configure_threads(env, cores)
    assert torch.get_num_threads() == threads and says in line
    assert chosen_threads(env) == (threads if "(OMP_NUM_THREADS)" in line else None)


def write_photos(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True)
    for index, name in enumerate(("astronaut", "coffee", "chelsea")[:count]):
        Image.fromarray(getattr(data, name)()).resize((96, 80)).save(folder / f"photo_{index}.png")


def test_accelerate_launch_off_a_terminal_logs_lines_a_batch_job_can_follow(tmp_path: Path) -> None:
    """The headline command as a batch job runs it: through the launcher, output to a file."""
    deep = tmp_path / ("a_rather_long_folder_name_for_photos_" * 3) / "of_skin"
    write_photos(deep)
    (deep / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a bad file: its warning names it
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(ROOT / "tools" / "train.py"),
            str(recipe),
            f"data.train={{type: image_folder, root: {deep}, patch_size: 32}}",
            "train.max_steps=4",
            "train.val_every=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    said = {
        name: [line for line in lines if name in line]
        for name in (
            "threads:",
            "step 2/4",
            "validation at step 2:",
            "validation at step 4:",
            "cut.jpg",
            "training until step 4 (train.max_steps)",
            "reached train.max_steps (4): finishing",
        )
    }
    assert all(len(found) == 1 for found in said.values()), said
    assert f"threads: {usable_cores()} per process" in said["threads:"][0]
    assert str(deep / "cut.jpg") in said["cut.jpg"][0]  # the whole path, on one line
    assert " INFO validation at step 2: PSNR-Y (dB) " in said["validation at step 2:"][0]


def test_display_text() -> None:
    assert [format_seconds(s) for s in (5, 65, 3725, float("inf"))] == ["5s", "1m05s", "1h02m", "?"]
    for y_channel, suffix in ((True, "-Y"), (False, "")):
        result = ValidationResult("bicubic", validation_metrics(y_channel, crop_border=4))
        scores = {"psnr": 28.914, "ssim": 0.81234, "baseline_psnr": 28.4177, "baseline_ssim": 0.81008}
        for key, value in scores.items():
            result.add(key, value)
        assert validation_line(250, result) == (
            f"validation at step 250: PSNR{suffix} (dB) 28.91, SSIM{suffix} 0.8123 "
            f"(bicubic: PSNR{suffix} (dB) 28.42, SSIM{suffix} 0.8101)"
        )


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.max_time=5 minutes",
            "override train.max_time=5 minutes: train.max_time: expected a duration like "
            "10m, 90s or 1h, got '5 minutes'",
        ),
        ("data.batch_size=0", "override data.batch_size=0: data.batch_size: must be at least 1, got 0"),
        ("data.batch_size=-1", "override data.batch_size=-1: data.batch_size: must be at least 1, got -1"),
        ("train.max_time=0", "override train.max_time=0: train.max_time: must be more than 0 seconds, got 0"),
    ],
)
def test_a_bad_value_leaves_the_run_folder_untouched(tmp_path: Path, override: str, message: str) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    for extra in ([], ["--print-recipe"]):
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "train.py"), str(recipe), override, *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and result.stderr.strip() == f"error: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.yaml"]
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_tensorboard_without_its_package_is_refused_before_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sr_toolkit.training.engine.tensorboard_installed", lambda: False)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    with pytest.raises(
        SrToolkitError,
        match=r"train.tensorboard: true needs TensorBoard's writer: pip install "
        "tensorboard",
    ):
        train(recipe, "train.tensorboard=true")
    assert not (tmp_path / "run").exists()


def test_every_stop_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        train(recipe, "train.max_steps=2")
        train(
            recipe,
            "train.max_steps=100000",
            "train.max_time=2s",
            "train.val_every=100000",
            f"output_dir={tmp_path / 'budget'}",
        )
    said = caplog.messages
    assert "training until step 2 (train.max_steps)" in said
    assert "reached train.max_steps (2): finishing" in said
    assert (
        "training until step 100000 (train.max_steps) or 2s of training (train.max_time), whichever comes first" in said
    )
    assert any(m.startswith("time budget of 2s used at step ") for m in said)
