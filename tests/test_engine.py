"""The training engine: run folder, metadata, bit-exact resume, NaN stop, budget and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import machine_numerics
from PIL import Image
from safetensors.torch import load_file
from skimage import data

from sr_toolkit.commands import train as train_command
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core import checkpoint
from sr_toolkit.core.errors import TrainingDiverged
from sr_toolkit.core.model_file import load_model
from sr_toolkit.training.engine import Trainer

ROOT = Path(__file__).resolve().parents[1]

TINY_RECIPE = """
task: upscale
scale: 4
model: {type: resnet_x4, channels: 8, blocks: 1, upsample: bicubic, global_skip: true}
degradation: [{type: downscale}]
data:
  train: {type: builtin, split: train, patch_size: 32}
  val: {type: builtin, split: val}
  batch_size: 4
loss: [{type: mse}, {type: l1, weight: 2}]
optimizer: {type: adam, lr: 1.0e-3}
train: {max_steps: 6, log_every: 2, val_every: 4, checkpoint_every: 2, keep_checkpoints: 2,
        mixed_precision: "no"}
validation: {max_images: 1, samples: 1}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    return path


def train(recipe_path: Path, *overrides: str, resume: str | bool = False) -> Trainer:
    trainer = Trainer(load_recipe(recipe_path, overrides), resume=resume)
    trainer.fit()
    return trainer


def test_run_folder_layout_and_model_metadata(tiny: Path, tmp_path: Path) -> None:
    trainer = train(tiny)
    run = tmp_path / "run"
    assert (run / "recipe.yaml").is_file() and (run / "curves.png").stat().st_size > 1000
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.safetensors", "step_0000004.safetensors", "step_0000006.safetensors"]
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples and all(name.endswith(".png") for name in samples)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert {"loss/mse", "loss/l1", "lr"} <= set(records[0])
    validations = [r for r in records if "val/psnr" in r]
    assert [r["step"] for r in validations] == [4, 6]
    assert validations[-1]["baseline"] == "bicubic" and validations[-1]["val/baseline_psnr"] > 15
    _, info = checkpoint.read(run / "model.safetensors")
    assert info["model"] == trainer.recipe["model"] and info["scale"] == 4 and info["task"] == "upscale"
    assert info["recipe"]["train"]["max_steps"] == 6
    model = load_model(run / "model.safetensors")
    reference = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("numerics", machine_numerics())
@pytest.mark.parametrize("ema", [None, 0.9])
def test_resume_is_bit_exact(tmp_path: Path, tiny: Path, numerics: str, ema: float | None) -> None:
    # a step schedule depends on the step alone, so a 3-step run is the first half of a 6-step one
    schedule = (
        "scheduler.type=step",
        "scheduler.step_size=2",
        "scheduler.warmup_steps=1",
        f"train.mixed_precision={numerics}",
        f"train.ema={'null' if ema is None else ema}",
    )
    full = train(tiny, f"output_dir={tmp_path / 'full'}", "train.max_steps=6", *schedule)
    train(tiny, f"output_dir={tmp_path / 'half'}", "train.max_steps=3", "train.checkpoint_every=3", *schedule)
    resumed = train(
        tiny, f"output_dir={tmp_path / 'half'}", "train.max_steps=6", "train.checkpoint_every=3", *schedule, resume=True
    )
    assert resumed.state.step == 6
    a = full.accelerator.unwrap_model(full.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if ema is not None:
        a, b = full.ema.state_dict(), resumed.ema.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads(line) for line in (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "loss" in r] == [2, 3, 4, 6]  # 3 ended the first run; none twice


@pytest.mark.parametrize("numerics", machine_numerics())
def test_workers_decoding_files_resume_to_the_cached_run(tmp_path: Path, tiny: Path, numerics: str) -> None:
    # the uninterrupted run cuts crops from images held in memory; the interrupted one has two
    # DataLoader workers decode every draw's file: both streams are the pure function of the draw
    common = ("data.train.type=image_folder", "scheduler.type=constant", f"train.mixed_precision={numerics}")
    workers = ("data.train.cache=false", "data.num_workers=2", "train.checkpoint_every=3")
    full = train(tiny, f"output_dir={tmp_path / 'full'}", *common)
    assert full.train_set.in_memory
    half = train(tiny, f"output_dir={tmp_path / 'half'}", "train.max_steps=3", *common, *workers)
    assert not half.train_set.in_memory
    resumed = train(tiny, f"output_dir={tmp_path / 'half'}", *common, *workers, resume=True)
    assert resumed.state.step == 6
    a = full.accelerator.unwrap_model(full.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, tiny: Path, clean_registries: None) -> None:
    plugin = tmp_path / "nan_loss.py"
    plugin.write_text(
        textwrap.dedent('''
        import torch
        from sr_toolkit.core.registry import LOSSES

        @LOSSES.register("nan_after_3")
        class NanAfter3(torch.nn.Module):
            """Mean squared error that turns NaN at the fourth call."""
            def __init__(self) -> None:
                super().__init__()
                self.calls = 0
            def forward(self, output, target):
                self.calls += 1
                loss = torch.mean((output - target) ** 2)
                return loss * float("nan") if self.calls > 3 else loss
    ''')
    )
    message = "loss term .nan_after_3. became NaN or inf at step 4.*last good checkpoint is .*step_0000002"
    with pytest.raises(TrainingDiverged, match=message):
        train(tiny, f"plugins=[{plugin}]", "loss=[{type: nan_after_3}]")
    run = tmp_path / "run"
    assert not (run / "model.safetensors").exists()
    tensors, meta = checkpoint.read(run / "checkpoints" / "step_0000002.safetensors")
    assert meta["step"] == 2 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_interrupted_write_leaves_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.safetensors"
    checkpoint.atomic_save({"w": torch.ones(3)}, path, {"step": 1})

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({"w": torch.zeros(3)}, path, {"step": 2})
    tensors, meta = checkpoint.read(path)
    assert meta == {"step": 1} and torch.equal(tensors["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
    assert load_file(str(path))["w"].sum() == 3


def test_time_budget_ends_cleanly(tiny: Path, tmp_path: Path) -> None:
    trainer = train(tiny, "train.max_steps=100000", "train.max_time=3s", "train.val_every=100000")
    assert 0 < trainer.state.step < 100000
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert any("val/psnr" in line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())


def test_sigterm_saves_and_exits_cleanly(tiny: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "train.py"), str(tiny), "train.max_steps=100000", "train.log_every=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output  # saved, but stopped: as a killed process says
    assert "received SIGTERM" in output
    saved = sorted((tmp_path / "run" / "checkpoints").glob("step_*.safetensors"))
    assert saved and (tmp_path / "run" / "model.safetensors").is_file()
    _, meta = checkpoint.read(saved[-1])
    assert meta["step"] >= 2


DDP_SCRIPT = """
import hashlib, json, sys
import torch
from sr_toolkit.training.engine import Trainer
from sr_toolkit.config.recipe import load_recipe

trainer = Trainer(load_recipe(sys.argv[1], sys.argv[3:]))
first = next(trainer._batches())["target"]
trainer.fit()
# parameters, not BN running stats: DDP broadcasts rank 0's buffers before each forward, so each
# rank's buffers hold its own last batch's statistics until the next step
weights = trainer.accelerator.unwrap_model(trainer.model).named_parameters()
digest = hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes() for _, v in weights)).hexdigest()
record = {"rank": trainer.accelerator.process_index, "world": trainer.accelerator.num_processes,
          "step": trainer.state.step, "digest": digest, "first_batch": first.sum().item()}
with open(f"{sys.argv[2]}/rank{record['rank']}.json", "w") as handle:
    json.dump(record, handle)
"""


def test_two_process_ddp_on_cpu(tiny: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29517",
            str(script),
            str(tiny),
            str(reports),
            "train.max_steps=4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["step"] == 4 for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]  # gradients were averaged: weights agree
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"]  # each rank drew its own data
    run = tmp_path / "run"
    assert (run / "model.safetensors").is_file()
    assert sorted(p.name for p in run.parent.iterdir() if p.name.startswith("run")) == ["run"]
    assert len(list((run / "checkpoints").glob("step_*"))) == 2


def test_gradient_accumulation_matches_the_large_batch(tiny: Path, tmp_path: Path) -> None:
    # a BN-free model: two micro-batches of 2 must step like one batch of the same 4 draws
    model = "model={type: edsr, channels: 8, blocks: 1}"
    large = train(tiny, model, f"output_dir={tmp_path / 'a'}", "train.max_steps=3", "data.batch_size=4")
    accumulated = train(
        tiny, model, f"output_dir={tmp_path / 'b'}", "train.max_steps=3", "data.batch_size=2", "train.grad_accum=2"
    )
    a = large.accelerator.unwrap_model(large.model).state_dict()
    b = accumulated.accelerator.unwrap_model(accumulated.model).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    moved = dict(Trainer(load_recipe(tiny, [model])).model.state_dict())
    assert any(not torch.allclose(a[k], moved[k], atol=1e-4) for k in a)  # training did change them


def test_ema_weights_are_the_deployed_ones(tiny: Path, tmp_path: Path) -> None:
    trainer = train(tiny, "train.ema=0.5", "train.max_steps=4")
    deployed = load_model(tmp_path / "run" / "model.safetensors").state_dict()
    ema = trainer.ema.module.state_dict()
    raw = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    assert all(torch.equal(deployed[k], ema[k]) for k in deployed)
    assert any(not torch.equal(deployed[k], raw[k]) for k in deployed if deployed[k].is_floating_point())
    tensors, _ = checkpoint.read(tmp_path / "run" / "checkpoints" / "step_0000004.safetensors")
    assert any(key.startswith("ema.") for key in tensors)


def test_the_saved_recipe_resumes_the_run(tiny: Path, tmp_path: Path) -> None:
    train(tiny, "train.max_steps=2", "model.channels=4")  # an override the resume must keep
    saved = tmp_path / "run" / "recipe.yaml"
    assert load_recipe(saved)["model"]["channels"] == 4
    resumed = train(saved, "train.max_steps=4", resume=True)
    assert resumed.state.step == 4 and resumed.recipe["model"]["channels"] == 4


def test_edsr_recipe_trains_on_a_folder_of_photos(tmp_path: Path) -> None:
    """The issue's command shape: the shipped recipe, the user's folder, a time budget."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).resize((120, 100)).save(photos / f"{name}.jpg")
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "train.py"),
            str(ROOT / "recipes" / "edsr_x4.yaml"),
            f"data.train.root={photos}",
            "train.max_time=2m",
            "train.max_steps=4",
            "model.channels=8",
            "model.blocks=1",
            "data.batch_size=2",
            "train.val_every=2",
            "validation.max_images=1",
            f"output_dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    said = " ".join((result.stdout + result.stderr).split())
    assert "data: decoded images held on cpu; crops cut in the training step" in said
    saved = load_recipe(run / "recipe.yaml")
    assert saved["data"]["train"]["root"] == str(photos) and saved["train"]["ema"] == 0.999
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4
    with torch.no_grad():
        assert load_model(run / "model.safetensors")(torch.rand(1, 3, 10, 12)).shape == (1, 3, 40, 48)


def test_resume_refuses_another_scale_or_model_before_writing(tiny: Path, tmp_path: Path) -> None:
    edsr = ("model={type: edsr, channels: 8, blocks: 1}", "train.max_steps=2")
    train(tiny, *edsr)
    run = tmp_path / "run"
    saved = run / "recipe.yaml"
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    for override, message in (
        ("scale=2", "was trained with scale = 4, this recipe has 2"),
        ("model.channels=16", "was trained with model.channels = 8, this recipe has 16"),
    ):
        with pytest.raises(checkpoint.CheckpointError, match=f"--resume: .*step_0000002.safetensors {message}"):
            Trainer(load_recipe(saved, [override, "train.max_steps=4"]), resume=True)
    after = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    assert after == before  # nothing written, nothing added


def test_a_checkpoint_that_does_not_fit_names_every_difference(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 3, 1))
    tensors = {"0.weight": torch.zeros(4, 3, 3, 3), "0.bias": torch.zeros(8), "2.weight": torch.zeros(1)}
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load_weights(model, tensors, "w.safetensors")
    assert str(info.value) == (
        "w.safetensors: does not fit the model: shapes differ (1): 0.weight (4, 3, 3, 3) in the file, "
        "(8, 3, 3, 3) in the model | missing from the file (2): 1.weight; 1.bias | not in the model (1): 2.weight"
    )


@pytest.mark.parametrize(
    "argv, resume, overrides",
    [
        (["r.yaml", "--resume", "train.max_steps=6", "x=1"], True, ["train.max_steps=6", "x=1"]),
        (["r.yaml", "a=1", "--resume", "b=2"], True, ["a=1", "b=2"]),
        (["r.yaml", "a=1", "--resume"], True, ["a=1"]),
        (["r.yaml", "--resume", "ckpt.safetensors", "a=2"], "ckpt.safetensors", ["a=2"]),
    ],
)
def test_overrides_may_follow_resume(argv: list[str], resume: str | bool, overrides: list[str]) -> None:
    args = train_command.parse_args(argv)
    assert (args.recipe, args.resume, args.overrides) == ("r.yaml", resume, overrides)
