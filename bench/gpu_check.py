"""GPU check: measure and check, on one CUDA GPU, everything that differs there from a CPU, in one table.

    python bench/gpu_check.py --set5 DIR --out gpu_check           # one CUDA GPU: within 8 minutes
    python bench/gpu_check.py --device cpu --quick --out /tmp/gc   # tiny sizes, seconds (the test suite)

Rows (``--only PREFIX`` runs some of them):

- ``train/RECIPE/auto|fp32``: steps/s and images/s of the engine itself (``Trainer`` with overrides) at
  the recipe's batch and patch, under what ``auto`` picks and under fp32; FLOPs of one training step
  (torch's FlopCounterMode) and the model FLOPs utilisation against the GPU's dense peak.
- ``overhead/edsr_x4``: the engine against a plain hand-written PyTorch loop, alternated.
- ``data/edsr_x4``: the batches are cut on the device (the engine's ``data:`` log line, the batch's
  device) and the share of the step spent in ``next(batches)``.
- ``resume/edsr_x4``: bit-exact resume under ``auto``, as it is and with deterministic algorithms
  (in a child process, so the setting does not leak), and what determinism costs in steps/s.
- ``upscale/MODEL``: a tiled x4 upscale of a 4000x3000 photo in half precision: megapixels/s, peak memory.
- ``eval/set5``: ``tools/eval.py`` on Set5 (LPIPS off): seconds per image.
- ``estimate/edsr_x4``: the full-length run's training time at the measured rate.

A check that raises reports its error in its row and the others still run; ``--fail KEY`` makes one
raise on purpose. Each row is timed within a cap, and ``OUT/gpu_check.json`` is rewritten after each
row. The exit code is 1 when a row failed (checked and found wrong) or raised an error, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import accelerate
import numpy as np
import skimage.data
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.precision import BF16_CPU_FLAGS, Precision, choose_precision, cpu_flags
from sr_toolkit.core.registry import DATASETS, MODELS
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.inference.upscaling import prepare, upscale_batch
from sr_toolkit.training.engine import Trainer
from sr_toolkit.training.losses import WeightedLoss

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("resnet_x4", "srresnet_x4", "edsr_x4", "srgan_x4")
NUMERICS = {"auto": "auto", "fp32": "no"}  # row label -> train.mixed_precision
MAIN = "edsr_x4"  # the full-length GPU recipe: plain-loop comparison, data path, resume, estimate
UPSCALE_MODELS = ("edsr_x4", "srresnet_x4")  # the recipes whose networks upscale the photo
NEVER = 10**9  # steps: validation and checkpoints stay out of timed runs
SET5_PLACES = (ROOT.parent / "shared/data/Set5/image_SRF_4", ROOT / "shared/data/Set5/image_SRF_4")
SET5_BICUBIC_PSNR_Y = 28.42  # published x4 bicubic PSNR-Y of Set5 (docs/BENCHMARKS.md: ours gives 28.419)

ALWAYS = {"srgan_x4": ["loss.1.weights=random"]}  # VGG19's ImageNet weights cannot be downloaded here
TINY_DATA = ["data.train.patch_size=16", "data.batch_size=2"]
TINY = {  # --quick: small networks, so the CPU run of the test suite takes seconds
    "resnet_x4": ["model.channels=8", "model.blocks=1"],
    "srresnet_x4": ["model.channels=8", "model.blocks=1"],
    "edsr_x4": ["model.channels=8", "model.blocks=1", "data.train.downscales=[]"],
    "srgan_x4": ["model.channels=8", "model.blocks=1", "gan.discriminator.channels=8", "gan.discriminator.hidden=16"],
}

# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's data sheets: (name pattern, bf16/fp16 tensor, fp32).
PEAK_TFLOPS = (
    (r"H200 NVL", 835.0, 60.0),
    (r"H200", 989.0, 67.0),
    (r"H100 PCIe", 756.0, 51.0),
    (r"H100 NVL", 835.0, 60.0),
    (r"H100", 989.0, 67.0),
    (r"A100", 312.0, 19.5),
    (r"L40S", 362.0, 91.6),
    (r"\bL4\b", 121.0, 30.3),
)
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}

log = logging.getLogger("sr_toolkit")


@dataclass(frozen=True)
class Plan:
    """How much each check does."""

    quick: bool
    warmup: int  # steps before the clock starts
    steps: int  # steps timed
    every: int  # train.log_every: the engine waits for the device there, so the clock reads it there
    cap: float  # seconds: time budget of one timed training run
    rounds: int  # engine / plain-loop alternations
    resume_steps: int  # a run of 2n steps against n steps resumed to 2n
    photo: tuple[int, int]  # width, height of the photo to upscale
    tile: int


FULL = Plan(False, warmup=10, steps=30, every=10, cap=20.0, rounds=2, resume_steps=4, photo=(4000, 3000), tile=512)
QUICK = Plan(True, warmup=2, steps=4, every=2, cap=30.0, rounds=1, resume_steps=2, photo=(120, 90), tile=32)


@dataclass
class Row:
    """One line of the table: the check, its numbers, and what went wrong if anything did."""

    key: str
    status: str = "ok"  # ok | failed (checked, and found wrong) | error (the check raised) | skipped
    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Speed:
    """A timed training run."""

    steps: int
    steps_per_s: float
    images_per_s: float
    data_wait_pct: float  # share of the timed wall clock spent in next(batches)
    precision: Precision
    batch_device: str
    data_line: str  # the engine's log line saying where batches come from ("" for the plain loop)
    gpu_busy_pct: float | None
    peak_gpu_gib: float | None


class Skipped(Exception):
    """A check that cannot run here; its message is the row's note."""


class LogLines(logging.Handler):
    """Collects the messages of the sr_toolkit log within its ``with`` block."""

    def __enter__(self) -> LogLines:
        self.lines: list[str] = []
        log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def first(self, prefix: str) -> str:
        return next((line for line in self.lines if line.startswith(prefix)), "")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak from what is alive now (earlier runs' tensors collected first)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def gpu_busy(device: torch.device) -> float | None:
    """The GPU's utilisation in percent as NVML reports it, None where it cannot be read."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 - no pynvml, no NVML: the row says None
        return None


def describe(precision: Precision) -> str:
    """``bf16 + channels_last``, ``fp32``...: the numerics as the table shows them."""
    name = {"no": "fp32"}.get(precision.mixed_precision, precision.mixed_precision)
    return name + (" + channels_last" if precision.channels_last else "")


class StepClock:
    """Times training from inside the batch iterator.

    Each ``next()`` is timed (the data wait). At the start of every ``every``-th step from ``warmup`` on
    (and of the step after the last timed one), where the engine's own logging has just waited for the
    device, it waits for the device too and notes (step, time, data wait so far); the speed is taken
    between the first and the last note, so a run the cap ends early still counts its noted steps.
    """

    def __init__(self, plan: Plan, device: torch.device, micro_batches: int) -> None:
        self.plan, self.device, self.micro_batches = plan, device, micro_batches
        self.calls, self.waited = 0, 0.0
        self.notes: list[tuple[int, float, float]] = []
        self.busy: list[float] = []
        self.batch_device = ""

    def wrap(self, batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        while True:
            step, micro = divmod(self.calls, self.micro_batches)
            timed = step - self.plan.warmup
            if micro == 0 and timed >= 0 and (timed % self.plan.every == 0 or timed == self.plan.steps):
                self._note(step)
            started = time.perf_counter()
            batch = next(batches)
            self.waited += time.perf_counter() - started
            self.calls += 1
            self.batch_device = self.batch_device or str(batch["target"].device)
            yield batch

    def _note(self, step: int) -> None:
        synchronize(self.device)
        self.notes.append((step, time.perf_counter(), self.waited))
        busy = gpu_busy(self.device) if len(self.notes) > 1 else None
        if busy is not None:
            self.busy.append(busy)

    def speed(self, images_per_step: int, precision: Precision, data_line: str) -> Speed:
        if len(self.notes) < 2:
            second = self.plan.warmup + min(self.plan.every, self.plan.steps)
            raise RuntimeError(
                f"no timed steps: the {self.plan.cap:g} s cap (--cap) ended the run before step "
                f"{second}, or the engine no longer draws batches through Trainer._batches"
            )
        (first, start, waited_before), (last, end, waited_after) = self.notes[0], self.notes[-1]
        rate = (last - first) / (end - start)
        return Speed(
            last - first,
            rate,
            rate * images_per_step,
            100 * (waited_after - waited_before) / (end - start),
            precision,
            self.batch_device,
            data_line,
            statistics.mean(self.busy) if self.busy else None,
            peak_memory_gib(self.device),
        )


@dataclass
class Context:
    """What the checks share: settings, a scratch folder, and measurements more than one row uses."""

    args: argparse.Namespace
    plan: Plan
    device: torch.device
    work: Path
    speeds: dict[tuple[str, str], Speed | Exception] = field(default_factory=dict)
    flops: dict[str, float | Exception] = field(default_factory=dict)

    def recipe(self, name: str, *overrides: str) -> dict[str, Any]:
        """recipes/NAME.yaml with this run's overrides (--quick: tiny sizes), then ``overrides``."""
        sizes = [*TINY[name], *TINY_DATA] if self.plan.quick else []
        return load_recipe(ROOT / "recipes" / f"{name}.yaml", [*ALWAYS.get(name, []), *sizes, *overrides])

    def speed(self, name: str, label: str) -> Speed:
        """The engine's speed on recipe ``name`` under numerics ``label``, measured once."""
        return remembered(
            self.speeds, (name, label), lambda: engine_speed(self, name, f"train.mixed_precision={NUMERICS[label]}")
        )

    def step_flops(self, name: str) -> float:
        return remembered(self.flops, name, lambda: step_flops(self, name))

    def peak_tflops(self, precision: Precision) -> tuple[float | None, str]:
        """The device's dense peak for these numerics and where the number comes from."""
        half = precision.mixed_precision in HALF
        given = self.args.peak_tflops
        if given:
            return (given[0] if half or len(given) == 1 else given[1]), "--peak-tflops"
        if self.device.type != "cuda":
            return None, "no peak known for a CPU (give --peak-tflops)"
        name = torch.cuda.get_device_name(self.device)
        for pattern, half_peak, fp32_peak in PEAK_TFLOPS:
            if re.search(pattern, name):
                return (half_peak if half else fp32_peak), f"{name}: {'bf16/fp16' if half else 'fp32'} dense peak"
        return None, f"no peak known for {name} (give --peak-tflops)"


def remembered(cache: dict[Any, Any], key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per key; a failure is remembered too and raised again for each row that needs it."""
    if key not in cache:
        try:
            cache[key] = compute()
        except Exception as exc:  # noqa: BLE001 - kept and re-raised by every check that needs it
            cache[key] = exc.with_traceback(None)  # its frames would keep a failed run's tensors alive
    if isinstance(cache[key], Exception):
        what = " ".join(key) if isinstance(key, tuple) else key
        raise RuntimeError(f"measuring {what} failed: {error_text(cache[key])}") from cache[key]
    return cache[key]


def error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------- measurements


def timed_overrides(plan: Plan, folder: str) -> list[str]:
    """A run of warm-up and timed steps within the cap; no validation, no checkpoints until the end."""
    return [
        f"output_dir={folder}",
        "data.val=null",
        f"train.max_steps={plan.warmup + plan.steps + 1}",
        f"train.max_time={plan.cap}s",
        f"train.log_every={plan.every}",
        f"train.val_every={NEVER}",
        f"train.checkpoint_every={NEVER}",
    ]


def engine_speed(ctx: Context, name: str, *overrides: str) -> Speed:
    """Steps/s of ``Trainer(recipe).fit()``, timed by a :class:`StepClock` around its batches."""
    reset_peak_memory(ctx.device)
    with tempfile.TemporaryDirectory(dir=ctx.work) as folder, LogLines() as lines:
        trainer = Trainer(ctx.recipe(name, *overrides, *timed_overrides(ctx.plan, folder)))
        clock = StepClock(ctx.plan, ctx.device, trainer.micro_batches)
        batches = trainer._batches  # the engine's own data path, wrapped only to time it
        trainer._batches = lambda: clock.wrap(batches())
        trainer.fit()
    images = trainer.recipe["data"]["batch_size"] * trainer.micro_batches
    batches_line = lines.first("data: decoded images held on") or lines.first("data: DataLoader")
    return clock.speed(images, trainer.precision, batches_line)


def plain_speed(ctx: Context, recipe: dict[str, Any]) -> Speed:
    """Steps/s of a minimal hand-written loop on ``recipe``: a DataLoader (the recipe's workers), the batch
    copied to the device, the degradation, forward under autocast, the loss, backward, ``torch.optim.Adam``
    with its defaults, ``loss.item()`` every ``every`` steps as the engine logs."""
    device, plan = ctx.device, ctx.plan
    reset_peak_memory(device)
    torch.manual_seed(recipe["seed"])
    precision = choose_precision(recipe["train"]["mixed_precision"], device)
    model = MODELS.build(recipe["model"]).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = WeightedLoss(recipe["loss"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["optimizer"]["lr"])
    degrade = build_pipeline(recipe["degradation"])
    data = DataLoader(
        DATASETS.build(recipe["data"]["train"]),
        batch_size=recipe["data"]["batch_size"],
        sampler=count(),
        num_workers=recipe["data"]["num_workers"],
        pin_memory=device.type == "cuda",
    )
    dtype = HALF.get(precision.mixed_precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    clock = StepClock(plan, device, 1)
    batches = clock.wrap(iter(data))
    started = time.perf_counter()
    for step in range(plan.warmup + plan.steps + 1):
        if time.perf_counter() - started > plan.cap:
            break
        target = next(batches)["target"].to(device, non_blocking=True)
        inputs = degrade(target, torch.Generator(device).manual_seed(step))
        if precision.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            output = model(inputs)
        loss, _ = criterion(output.float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % plan.every == 0:
            loss.item()
    return clock.speed(recipe["data"]["batch_size"], precision, "")


def step_flops(ctx: Context, name: str) -> float:
    """FLOPs of one training step of recipe ``name`` (forward, backward, degradation and losses; for a GAN
    both networks), counted by torch's FlopCounterMode over a one-step run of the engine. The count
    depends on shapes alone, so one fp32 count serves every numerics."""
    with tempfile.TemporaryDirectory(dir=ctx.work) as folder, LogLines():
        trainer = Trainer(
            ctx.recipe(
                name,
                f"output_dir={folder}",
                "data.val=null",
                "train.max_steps=1",
                "train.max_time=null",
                "train.mixed_precision=no",
            )
        )
        with FlopCounterMode(display=False) as counter:
            trainer.fit()
    return float(counter.get_total_flops())


def resume_difference(ctx: Context, name: str) -> tuple[bool, float]:
    """Whether a run of 2n steps equals one of n steps resumed to 2n, bit for bit (model and EMA weights),
    under ``auto``, and the largest difference. A step schedule depends on the step alone, so the
    first half of the long run is the short run."""
    n = ctx.plan.resume_steps
    common = [
        "scheduler={type: step, step_size: 2, warmup_steps: 1}",
        "data.val=null",
        "train.max_time=null",
        f"train.checkpoint_every={n}",
        "train.mixed_precision=auto",
    ]

    def run(folder: Path, steps: int, resume: bool = False) -> Trainer:
        trainer = Trainer(ctx.recipe(name, *common, f"output_dir={folder}", f"train.max_steps={steps}"), resume=resume)
        trainer.fit()
        return trainer

    with tempfile.TemporaryDirectory(dir=ctx.work) as folder, LogLines():
        full = run(Path(folder) / "full", 2 * n)
        run(Path(folder) / "half", n)
        resumed = run(Path(folder) / "half", 2 * n, resume=True)
        pairs = [(full.accelerator.unwrap_model(full.model), resumed.accelerator.unwrap_model(resumed.model))]
        if full.ema is not None:
            pairs.append((full.ema, resumed.ema))
        states = [(a.state_dict(), b.state_dict()) for a, b in pairs]
    exact = all(torch.equal(a[key], b[key]) for a, b in states for key in a)
    largest = max(float((a[key].double() - b[key].double()).abs().max()) for a, b in states for key in a)
    return exact, largest


def deterministic_child(ctx: Context) -> dict[str, Any]:
    """The resume check and the engine's speed in a child process with deterministic algorithms."""
    result = ctx.work / "deterministic.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--deterministic-child",
        str(result),
        "--device",
        ctx.device.type,
        "--steps",
        str(ctx.plan.steps),
        "--cap",
        str(ctx.plan.cap),
        *(["--quick"] if ctx.plan.quick else []),
    ]
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3 * ctx.plan.cap + 120)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise RuntimeError(f"the deterministic child exited with {done.returncode}: {lines[-1]}")
    return json.loads(result.read_text())


def photo(width: int, height: int) -> torch.Tensor:
    """scikit-image's astronaut resized to ``width`` x ``height``: (1, 3, H, W) floats in [0, 1]."""
    image = Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)


def write_set5_like(folder: Path) -> Path:
    """Five small crops of the astronaut photo named as Set5's images, for --quick without --set5."""
    folder.mkdir(parents=True, exist_ok=True)
    picture = skimage.data.astronaut()
    for index, name in enumerate(("baby", "bird", "butterfly", "head", "woman")):
        crop = picture[60 * index : 60 * index + 64, 80 * index : 80 * index + 48]
        Image.fromarray(crop).save(folder / f"{name}.png")
    return folder


def set5_folder(ctx: Context) -> tuple[Path, bool]:
    """The Set5 folder to score and whether it is the real one; raises Skipped when there is none."""
    if ctx.args.set5 is not None:
        if not ctx.args.set5.is_dir():
            raise Skipped(f"no folder {ctx.args.set5} (--set5)")
        return ctx.args.set5, True
    if ctx.plan.quick:
        return write_set5_like(ctx.work / "set5_like"), False
    for place in SET5_PLACES:
        if place.is_dir():
            return place, True
    raise Skipped(f"no Set5 in {' or '.join(map(str, SET5_PLACES))}: give --set5 DIR")


def run_eval_tool(argv: list[str]) -> tuple[int, str]:
    """tools/eval.py's ``main(argv)`` in this process: its exit code and what it printed."""
    spec = importlib.util.spec_from_file_location("sr_toolkit_eval_tool", ROOT / "tools" / "eval.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = tool.main(argv)
    return code, printed.getvalue()


# ------------------------------------------------------------------------------------------ checks


def check_train(ctx: Context, row: Row, name: str, label: str) -> None:
    """Speed first, so that a failed FLOP count still leaves it in the row."""
    speed = ctx.speed(name, label)
    row.values = {
        "precision": describe(speed.precision),
        "steps": speed.steps,
        "steps_per_s": speed.steps_per_s,
        "images_per_s": speed.images_per_s,
        "data_wait_pct": speed.data_wait_pct,
        "gpu_busy_pct": speed.gpu_busy_pct,
        "peak_gpu_gib": speed.peak_gpu_gib,
    }
    notes = []
    if speed.steps < ctx.plan.steps:
        notes.append(f"the {ctx.plan.cap:g} s cap stopped it after {speed.steps} timed steps")
    if label == "fp32" and ctx.device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        notes.append("convolutions run in TF32 (torch's default cudnn.allow_tf32): can pass 100% of the fp32 peak")
    row.note = "; ".join(notes)
    flops = ctx.step_flops(name)
    peak, source = ctx.peak_tflops(speed.precision)
    achieved = flops * speed.steps_per_s / 1e12
    row.values.update(
        step_gflop=flops / 1e9,
        tflop_per_s=achieved,
        peak_tflop_per_s=peak,
        mfu_pct=100 * achieved / peak if peak else "unknown",
    )
    row.note = "; ".join([source, *notes])


def check_overhead(ctx: Context, row: Row) -> None:
    ours, plain = [], []
    for _ in range(ctx.plan.rounds):
        ours.append(engine_speed(ctx, MAIN, "train.ema=null"))
        plain.append(plain_speed(ctx, ctx.recipe(MAIN, "train.ema=null")))
    ours_rate, plain_rate = (statistics.median(s.steps_per_s for s in runs) for runs in (ours, plain))
    row.values = {
        "ours_steps_per_s": ours_rate,
        "plain_steps_per_s": plain_rate,
        "ratio": ours_rate / plain_rate,
        "ours_data_wait_pct": statistics.median(s.data_wait_pct for s in ours),
        "plain_data_wait_pct": statistics.median(s.data_wait_pct for s in plain),
    }
    row.note = (
        f"{ctx.plan.rounds} round(s) alternated, medians; EMA off in both; plain: DataLoader + copy to "
        f"the device, {describe(plain[0].precision)}, torch.optim.Adam"
    )


def check_data_path(ctx: Context, row: Row) -> None:
    speed = ctx.speed(MAIN, "auto")
    held = speed.data_line.startswith(f"data: decoded images held on {ctx.device.type}")
    on_device = speed.batch_device.split(":")[0] == ctx.device.type
    row.values = {
        "batches_on": speed.batch_device,
        "data_wait_pct": speed.data_wait_pct,
        "gpu_busy_pct": speed.gpu_busy_pct,
        "log": speed.data_line,
    }
    row.status = "ok" if held and on_device else "failed"
    row.note = "from the train row's run; data wait: host time in next(batches) over the timed wall clock"


def check_resume(ctx: Context, row: Row) -> None:
    exact, largest = resume_difference(ctx, MAIN)
    row.values = {"exact": exact, "max_diff": largest}
    row.note = f"auto numerics, {ctx.plan.resume_steps} + {ctx.plan.resume_steps} steps, " + (
        "bit-exact as it is" if exact else "not bit-exact as it is"
    )
    child = deterministic_child(ctx)
    default_rate = ctx.speed(MAIN, "auto").steps_per_s
    row.values.update(
        exact_deterministic=child["exact"],
        max_diff_deterministic=child["max_diff"],
        steps_per_s=default_rate,
        steps_per_s_deterministic=child["steps_per_s"],
        deterministic_cost_pct=100 * (1 - child["steps_per_s"] / default_rate),
    )
    row.status = "ok" if exact or child["exact"] else "failed"
    row.note += (
        "; deterministic: torch.use_deterministic_algorithms(True) + CUBLAS_WORKSPACE_CONFIG=:4096:8 in a child process"
    )


def check_upscale(ctx: Context, row: Row, name: str) -> None:
    recipe = ctx.recipe(name)
    torch.manual_seed(0)
    model = prepare(MODELS.build(recipe["model"]), ctx.device, half=True)
    scale, (width, height) = recipe["scale"], ctx.plan.photo
    image = photo(width, height)
    out = torch.empty((1, height * scale, width * scale, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    limit = 3 * ctx.plan.cap

    def within_cap() -> None:
        if time.perf_counter() - started > limit:
            raise TimeoutError(f"still tiling after {limit:g} s (3 x --cap)")

    reset_peak_memory(ctx.device)
    synchronize(ctx.device)
    started = time.perf_counter()
    upscale_batch(model, image, scale=scale, tile=ctx.plan.tile, out=out, on_tile=within_cap)
    synchronize(ctx.device)
    seconds = time.perf_counter() - started
    megapixels = out[0, 0].numel() / 1e6
    row.values = {
        "input": f"{width}x{height}",
        "output_mp": megapixels,
        "tile": ctx.plan.tile,
        "precision": str(next(model.parameters()).dtype).removeprefix("torch."),
        "seconds": seconds,
        "output_mp_per_s": megapixels / seconds,
        "peak_gpu_gib": peak_memory_gib(ctx.device),
    }
    row.note = (
        f"sr_toolkit.inference.upscaling.upscale_batch as tools/upscale.py --tile {ctx.plan.tile} --half "
        "runs it (8-bit output on the CPU), random weights, without decoding or encoding files"
    )


def check_eval(ctx: Context, row: Row) -> None:
    folder, real = set5_folder(ctx)
    recipe = ctx.recipe(MAIN)
    model_file = ctx.work / f"{MAIN}.safetensors"
    torch.manual_seed(0)
    save_model(model_file, MODELS.build(recipe["model"]), recipe)
    out = ctx.work / "eval_set5"
    argv = [
        "--data",
        str(folder),
        "--scale",
        str(recipe["scale"]),
        "--y-channel",
        "--models",
        str(model_file),
        "--metrics",
        "psnr",
        "ssim",
        "--no-images",
        "--device",
        ctx.device.type,
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    code, printed = run_eval_tool(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"tools/eval.py exited with {code}: {printed.strip().splitlines()[-1:]}")
    bicubic = json.loads((out / "results.json").read_text())["methods"]["bicubic"]
    images, psnr = len(bicubic["images"]), bicubic["mean"]["psnr"]
    row.values = {"images": images, "seconds": seconds, "s_per_image": seconds / images, "bicubic_psnr_y": psnr}
    if real and abs(psnr - SET5_BICUBIC_PSNR_Y) > 0.01:
        row.status = "failed"
    row.note = (
        f"{folder}"
        + (f" (bicubic should give {SET5_BICUBIC_PSNR_Y})" if real else " (generated, --quick)")
        + f"; tools/eval.py in this process, psnr ssim (LPIPS off), --no-images, a random-weight {MAIN}"
    )


def check_estimate(ctx: Context, row: Row) -> None:
    steps = load_recipe(ROOT / "recipes" / f"{MAIN}.yaml")["train"]["max_steps"]
    rate = ctx.speed(MAIN, "auto").steps_per_s
    row.values = {"steps": steps, "steps_per_s": rate, "hours": steps / rate / 3600}
    row.note = (
        "training steps alone at the train row's rate (validation every 1,000 steps and checkpoints "
        "add to it)" + ("; --quick measures a tiny network, not the recipe's" if ctx.plan.quick else "")
    )


def planned_rows() -> list[tuple[str, Callable[[Context, Row], None]]]:
    rows: list[tuple[str, Callable[[Context, Row], None]]] = [
        (f"train/{name}/{label}", partial(check_train, name=name, label=label))
        for name in RECIPES
        for label in NUMERICS
    ]
    rows += [(f"overhead/{MAIN}", check_overhead), (f"data/{MAIN}", check_data_path), (f"resume/{MAIN}", check_resume)]
    rows += [(f"upscale/{name}", partial(check_upscale, name=name)) for name in UPSCALE_MODELS]
    rows += [("eval/set5", check_eval), (f"estimate/{MAIN}", check_estimate)]
    return rows


def run_row(ctx: Context, key: str, check: Callable[[Context, Row], None]) -> Row:
    """Run one check into its row; an exception becomes the row's error."""
    row = Row(key)
    started = time.perf_counter()
    try:
        if key == ctx.args.fail:
            raise RuntimeError(f"deliberate failure (--fail {key})")
        check(ctx, row)
    except Skipped as exc:
        row.status, row.note = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - one failed check is a row, not the end of the run
        row.status, row.error = "error", error_text(exc)
    row.seconds = time.perf_counter() - started
    return row


# ------------------------------------------------------------------------------------------ output


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def nvidia_driver() -> str | None:
    """The driver version nvidia-smi reports, None without nvidia-smi or an answer."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_bf16_flags": sorted(set(BF16_CPU_FLAGS) & cpu_flags()),
        "device": device.type,
        "auto_numerics": describe(choose_precision("auto", device)),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            driver=nvidia_driver(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            tf32_convolutions=torch.backends.cudnn.allow_tf32,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    return info


def show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


def table(rows: list[Row]) -> Table:
    result = Table(title="sr-toolkit GPU check")
    for column in ("row", "status", "measured", "note"):
        result.add_column(column, overflow="fold")
    for row in rows:
        measured = " ".join(f"{key}={show(value)}" for key, value in row.values.items())
        result.add_row(row.key, row.status, "\n".join(filter(None, (row.error, measured))), row.note)
    return result


def write_json(path: Path, info: dict[str, Any], plan: Plan, rows: list[Row], seconds: float) -> None:
    document = {"environment": info, "plan": asdict(plan), "seconds": seconds, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    add("--quick", action="store_true", help="tiny networks, crops and photo: a CPU run of seconds")
    add("--out", type=Path, default=Path("gpu_check"), help="folder for gpu_check.json (default: gpu_check)")
    add("--set5", type=Path, metavar="DIR", help=f"Set5's HR images (default: {SET5_PLACES[0]} if present)")
    add(
        "--peak-tflops",
        type=float,
        nargs="+",
        metavar="TFLOPS",
        help="dense peak for bf16/fp16, then optionally for fp32 (default: from the GPU's name)",
    )
    add("--only", nargs="+", metavar="PREFIX", help="run only the rows whose key starts with one of these")
    add("--steps", type=int, help="timed training steps per run (default: 30, --quick 4)")
    add("--cap", type=float, metavar="SECONDS", help="time budget of one timed training run (default: 20, --quick 30)")
    add("--fail", metavar="KEY", help="make the row KEY raise (to see a failing row reported)")
    add("--deterministic-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_tflops and len(args.peak_tflops) > 2:
        parser.error("--peak-tflops takes one or two numbers (bf16/fp16, fp32)")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    return replace(plan, steps=args.steps or plan.steps, cap=args.cap or plan.cap)


def deterministic_child_main(args: argparse.Namespace, ctx: Context) -> int:
    """In the child process: the resume check and the speed, with deterministic algorithms."""
    torch.use_deterministic_algorithms(True)
    exact, largest = resume_difference(ctx, MAIN)
    rate = engine_speed(ctx, MAIN, "train.mixed_precision=auto").steps_per_s
    args.deterministic_child.write_text(json.dumps({"exact": exact, "max_diff": largest, "steps_per_s": rate}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "1"
    elif not torch.cuda.is_available():
        print(
            "error: --device cuda: no CUDA GPU here (--device cpu --quick runs the check on the CPU)", file=sys.stderr
        )
        return 2
    log.setLevel(logging.INFO)  # LogLines sees the engine's lines; only warnings reach the terminal
    warnings = logging.StreamHandler()
    warnings.setLevel(logging.WARNING)
    log.addHandler(warnings)
    plan = make_plan(args)
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        ctx = Context(args, plan, device, Path(work))
        if args.deterministic_child:
            return deterministic_child_main(args, ctx)
        return run_all(ctx)


def run_all(ctx: Context) -> int:
    """Every planned row (or those --only names), the table, and gpu_check.json rewritten after each row."""
    console = Console(width=None if sys.stdout.isatty() else 200)
    info = environment(ctx.device)
    console.print(" ".join(f"{key}={show(value)}" for key, value in info.items()), markup=False, highlight=False)
    ctx.args.out.mkdir(parents=True, exist_ok=True)
    path = ctx.args.out / "gpu_check.json"
    started = time.perf_counter()
    rows: list[Row] = []
    for key, check in planned_rows():
        if ctx.args.only and not key.startswith(tuple(ctx.args.only)):
            continue
        rows.append(run_row(ctx, key, check))
        last = rows[-1]
        console.print(
            f"{last.key}: {last.status} ({last.seconds:.1f} s){': ' + last.error if last.error else ''}",
            markup=False,
            highlight=False,
        )
        write_json(path, info, ctx.plan, rows, time.perf_counter() - started)
    console.print(table(rows))
    console.print(
        f"{len(rows)} rows in {time.perf_counter() - started:.0f} s; wrote {path}", markup=False, highlight=False
    )
    return 1 if any(row.status in ("error", "failed") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
