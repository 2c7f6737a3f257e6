"""Quality at a CPU time budget: recipes against each other, and against a plain hand-written PyTorch loop,
same machine, same run.

Each recipe runs exactly as a user runs it (``tools/train.py RECIPE data.train.root=DATA train.max_time=BUDGET``),
one after the other. With ``--plain``, a hand-written loop also trains the first recipe's network the way a
careful script would (decoded images in memory, random crops with flips/rot90 in the step, MATLAB-bicubic LR,
L1, Adam with a cosine decay over the wall-clock budget, the same precision). All are then scored on Set5 and
Set14 with the literature's conventions (MATLAB-bicubic inputs, 8-bit outputs, PSNR-Y and SSIM-Y, border =
scale), and the dB gain over bicubic is printed for each. Machines differ, so only the comparison within one
run counts.

    python bench/cpu_budget.py --budget 10m [--recipes edsr_x4 compact_x4 span_x4] [--plain]
        [--data ../shared/data/BSDS200] [--eval ../shared/data] [--out /tmp/cpu_budget] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.config.shipped import find_recipe
from sr_toolkit.core.imageio import list_images
from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.precision import choose_precision, cpu_flags
from sr_toolkit.core.registry import MODELS
from sr_toolkit.core.resize import imresize
from sr_toolkit.evaluation.evaluate import Evaluation, Settings
from sr_toolkit.training.schedule import parse_duration

ROOT = Path(__file__).resolve().parents[1]
CPU_FLAGS_SHOWN = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def run_recipe(recipe: str, data: Path, budget: str, out: Path, overrides: list[str]) -> dict:
    """The user's command in a subprocess; steps and seconds from the run's metrics.jsonl."""
    command = [
        sys.executable,
        str(ROOT / "tools/train.py"),
        recipe,
        f"data.train.root={data}",
        f"train.max_time={budget}",
        f"output_dir={out}",
        *overrides,
    ]
    print("running:", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = max((r for r in records if "loss" in r), key=lambda r: r["step"])
    return {
        "model": out / "model.safetensors",
        "steps": last["step"],
        "train_seconds": last["time"],
        "wall_seconds": time.perf_counter() - started,
    }


def decode_folder(folder: Path, scale: int) -> list[torch.Tensor]:
    """Every image of ``folder`` as uint8 (3, H, W), cut to a multiple of ``scale``."""
    images = []
    for path in list_images(folder):
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        height, width = (side - side % scale for side in array.shape[:2])
        images.append(torch.from_numpy(array[:height, :width].copy()).permute(2, 0, 1))
    return images


def random_patch(images: list[torch.Tensor], size: int) -> torch.Tensor:
    """A random ``size`` crop of a random image, randomly flipped and rotated by 90 degrees."""
    image = images[random.randrange(len(images))]
    top = random.randrange(image.shape[1] - size + 1)
    left = random.randrange(image.shape[2] - size + 1)
    patch = image[:, top : top + size, left : left + size]
    if random.random() < 0.5:
        patch = patch.flip(-1)
    if random.random() < 0.5:
        patch = patch.flip(-2)
    if random.random() < 0.5:
        patch = patch.transpose(-2, -1)
    return patch


def run_plain(recipe: dict, data: Path, budget: float, out: Path) -> dict:
    """A hand-written training loop for ``budget`` seconds; saves the model like ours for scoring."""
    random.seed(0)
    torch.manual_seed(0)
    scale, patch, batch = recipe["scale"], recipe["data"]["train"]["patch_size"], recipe["data"]["batch_size"]
    base_lr = recipe["optimizer"]["lr"]
    images = decode_folder(data, scale)
    precision = choose_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if precision.mixed_precision == "bf16" else None
    model = MODELS.build(recipe["model"])
    memory_format = torch.channels_last if precision.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    print(
        f"plain: {len(images)} images, {precision.mixed_precision}, channels_last={precision.channels_last}, "
        f"{budget:.0f} s",
        flush=True,
    )
    steps, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < budget:
        for group in optimizer.param_groups:
            group["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        target = torch.stack([random_patch(images, patch) for _ in range(batch)]).float().div(255)
        inputs = imresize(target, scale=1 / scale).clamp(0, 1).contiguous(memory_format=memory_format)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            output = model(inputs)
        loss = F.l1_loss(output.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
    train_seconds = time.perf_counter() - started
    path = out / "model.safetensors"
    out.mkdir(parents=True, exist_ok=True)
    save_model(path, model.eval().to(memory_format=torch.contiguous_format), recipe)
    return {"model": path, "steps": steps, "train_seconds": train_seconds, "wall_seconds": train_seconds}


def score(models: dict[str, Path], folder: Path, scale: int) -> dict[str, dict[str, float]]:
    """Mean PSNR-Y and SSIM-Y of bicubic and each model on one benchmark folder (literature conventions)."""
    settings = Settings(
        data=folder,
        scale=scale,
        models=tuple(models.values()),
        baselines=("bicubic",),
        metrics=("psnr", "ssim"),
        y_channel=True,
    )
    results = Evaluation(settings).run()
    names = ["bicubic", *results.models]
    return {label: results.mean(name) for label, name in zip(["bicubic", *models], names)}


def cpu_line() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    flags = [flag for flag in CPU_FLAGS_SHOWN if flag in cpu_flags()]
    return f"{model}, {torch.get_num_threads()} threads, flags: {' '.join(flags) or 'none of ' + str(CPU_FLAGS_SHOWN)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="10m", help="training time of each, e.g. 10m")
    parser.add_argument("--recipes", nargs="+", default=["edsr_x4"], help="shipped recipe names or YAML files")
    parser.add_argument("--plain", action="store_true", help="also train the first recipe's network by a plain loop")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/BSDS200")
    parser.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/cpu_budget"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every recipe")
    args = parser.parse_args()
    paths = {Path(name).stem: str(find_recipe(name)) for name in args.recipes}
    # loaded first, so that a bad recipe or override stops the run before any training
    recipes = {
        label: load_recipe(path, [f"data.train.root={args.data}", *args.overrides]) for label, path in paths.items()
    }
    first = next(iter(recipes.values()))
    print(cpu_line(), flush=True)
    runs = {
        label: run_recipe(path, args.data, args.budget, args.out / label, args.overrides)
        for label, path in paths.items()
    }
    if args.plain:
        runs["plain"] = run_plain(first, args.data, parse_duration(args.budget), args.out / "plain")
        recipes["plain"] = first
    scale = first["scale"]
    scores = {
        name: score(
            {label: run["model"] for label, run in runs.items()}, args.eval / name / f"image_SRF_{scale}", scale
        )
        for name in args.sets
    }
    print(f"\n{cpu_line()}\nbudget {args.budget}, x{scale}, PSNR-Y (dB, gain over bicubic) / SSIM-Y")
    print("| run | steps | images/s | " + " | ".join(args.sets) + " |")
    print("|---|---|---|" + "---|" * len(args.sets))
    bicubic = " | ".join(f"{scores[s]['bicubic']['psnr']:.2f} / {scores[s]['bicubic']['ssim']:.4f}" for s in args.sets)
    print(f"| bicubic | | | {bicubic} |")
    for label, run in runs.items():
        batch = recipes[label]["data"]["batch_size"]
        cells = " | ".join(
            f"{scores[s][label]['psnr']:.2f} ({scores[s][label]['psnr'] - scores[s]['bicubic']['psnr']:+.2f}) / "
            f"{scores[s][label]['ssim']:.4f}"
            for s in args.sets
        )
        print(f"| {label} | {run['steps']} | {run['steps'] * batch / run['train_seconds']:.1f} | {cells} |")


if __name__ == "__main__":
    main()
