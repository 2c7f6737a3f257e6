"""Every architecture family at x4 and its default size: parameters, training and inference speed, memory of a
tiled upscale, and our training step against a plain PyTorch loop and against BasicSR's, in one run.

    python bench/architectures.py [--families esrgan compact ...] [--batch 4] [--patch 128] [--seconds 15]
        [--rounds 2] [--megapixels 1 4 16] [--max-seconds 150] [--tile 128]

For each family (the registered type in ``FAMILIES``):

- parameters of the model as built at x4;
- training steps/s of the engine (``Trainer``: the user's path) at one common batch and HR patch, under
  ``auto`` (bf16 + channels_last where the CPU has bf16) and under fp32;
- the engine against a minimal hand-written loop on the same spandrel class (``bench/engine_overhead.py``),
  alternated ``--rounds`` times in this process under ``auto``, the ratio of the medians;
- inference megapixels/s (output pixels) of ``sr_toolkit.inference.upscaling.upscale_batch`` on a 256x256 photo
  in one pass (about 1 MP out), in bf16 where the CPU and the model have it (what ``--half`` gives), else fp32;
- peak resident memory and seconds of ``tools/upscale.py MODEL PHOTO --tile T --half`` in a fresh process, with
  the default overlap (the contract's halo: exact tiling), for square photos whose output has ``--megapixels``
  MP; a size whose estimated time (inference speed times the overlap's extra work) exceeds ``--max-seconds`` is
  not run and its cell says so.

When ``basicsr`` imports (``pip install wheel && pip install --no-build-isolation basicsr``; this script adds the
``torchvision.transforms.functional_tensor`` module that BasicSR 1.4.2 imports and current torchvision removed),
``esrgan`` and ``compact`` are also trained by BasicSR's own ``SRModel`` (``feed_data`` + ``optimize_parameters``
+ ``update_learning_rate``: the body of its training loop, L1 and Adam) on its ``RRDBNet`` and ``SRVGGNetCompact``
at the same batch and patch, fed the same batches as the plain loop, alternated with our engine in fp32 (BasicSR
has no mixed precision) and compared with our engine under ``auto`` as well. Steps are sized per family so each
timed run lasts about ``--seconds``; machines are noisy, so compare only ratios within one run.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.transforms.functional
from engine_overhead import degraded_batches, ours, plain, timed_rate
from torch import Tensor
from upscale_memory import measure, upscale_command, write_model, write_photo

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.discovery import load_entry_points
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.precision import choose_precision
from sr_toolkit.core.registry import MODELS
from sr_toolkit.inference.tiling import default_overlap
from sr_toolkit.inference.upscaling import prepare, upscale_batch

ROOT = Path(__file__).resolve().parents[1]
SCALE = 4
# family -> the registered type at the family's default size (traiNNer-redux's network_g names)
FAMILIES = {
    "esrgan": "esrgan",
    "compact": "compact",
    "span": "span",
    "realplksr": "realplksr",
    "omnisr": "omnisr",
    "swinir": "swinir_m",
    "dat": "dat",
    "hat": "hat_m",
}
PARTS = ("training", "memory", "basicsr")  # besides parameters and inference speed, always measured
# BasicSR's network_g for the two families it has, at our defaults' sizes
BASICSR_NETWORKS = {
    "esrgan": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23, "num_grow_ch": 32},
    "compact": {
        "type": "SRVGGNetCompact",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": 64,
        "num_conv": 16,
        "upscale": SCALE,
        "act_type": "prelu",
    },
}


def recipe_for(model_type: str, batch: int, patch: int, precision: str) -> dict:
    """``edsr_x4`` (built-in photos, bicubic LR, L1, Adam) with the model, batch, HR patch and precision swapped."""
    return load_recipe(
        ROOT / "recipes/edsr_x4.yaml",
        [
            f"model={{type: {model_type}}}",
            f"data.batch_size={batch}",
            f"data.train.patch_size={patch}",
            "train.ema=null",
            f"train.mixed_precision={precision}",
        ],
    )


def inference_rate(model: torch.nn.Module, half: bool) -> float:
    """Output megapixels/s of an x4 upscale of a 256x256 photo in one pass (about 1 MP out), after a warm-up."""
    model = prepare(model, "cpu", half)
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        upscale_batch(model, image[..., :64, :64], scale=SCALE)
        started = time.perf_counter()
        upscale_batch(model, image, scale=SCALE)
    return 256 * 256 * SCALE**2 / 1e6 / (time.perf_counter() - started)


def tiled_work(side: int, tile: int, overlap: int) -> float:
    """How many times the pixels of a ``side``-square image a tiled pass computes: each inner seam adds the
    overlap to the tiles on both sides of it."""
    seams = math.ceil(side / tile) - 1
    return ((side + 2 * overlap * seams) / side) ** 2


def step_plan(seconds_per_step: float, seconds: float) -> tuple[int, int]:
    """(steps, warm-up steps) so that the timed part lasts about ``seconds``; steps is a multiple of warm-up."""
    warmup = max(2, min(10, math.ceil(2 / seconds_per_step)))
    rounds = max(2, math.ceil(seconds / (warmup * seconds_per_step)))
    return warmup * (rounds + 1), warmup


def install_functional_tensor_shim() -> None:
    """BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17)."""
    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = torchvision.transforms.functional.rgb_to_grayscale  # type: ignore[attr-defined]
    sys.modules.setdefault("torchvision.transforms.functional_tensor", shim)


def basicsr_step(network: dict, lr: float) -> Callable[[Tensor, Tensor], None]:
    """One update of BasicSR's ``SRModel`` on the CPU: L1, Adam, no EMA, a scheduler that never decays."""
    from basicsr.models.sr_model import SRModel

    torch.manual_seed(0)
    options = {
        "is_train": True,
        "num_gpu": 0,
        "dist": False,
        "network_g": dict(network),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0,
            "optim_g": {"type": "Adam", "lr": lr, "weight_decay": 0, "betas": [0.9, 0.999]},
            "scheduler": {"type": "MultiStepLR", "milestones": [10**9], "gamma": 0.5},
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
    }
    model = SRModel(options)
    iteration = 0

    def step(inputs: Tensor, target: Tensor) -> None:
        nonlocal iteration
        iteration += 1
        model.feed_data({"lq": inputs, "gt": target})
        model.optimize_parameters(iteration)
        model.update_learning_rate(iteration, warmup_iter=-1)

    return step


def basicsr_available() -> bool:
    install_functional_tensor_shim()
    try:
        import basicsr.models.sr_model  # noqa: F401
    except ImportError as error:
        print(f"BasicSR comparison skipped: {error}", flush=True)
        return False
    logging.getLogger("basicsr").setLevel(logging.WARNING)
    return True


def training_rows(family: str, model_type: str, args: argparse.Namespace, seconds_per_step: float) -> dict:
    """Steps/s of ours under auto and fp32, and ours against the plain loop under auto (medians of the rounds)."""
    auto = recipe_for(model_type, args.batch, args.patch, "auto")
    steps, warmup = step_plan(seconds_per_step, args.seconds)
    speeds: dict[str, list[float]] = {"ours": [], "plain": []}
    for round_ in range(args.rounds):
        speeds["ours"].append(ours(auto, steps, warmup))
        speeds["plain"].append(plain(auto, steps, warmup))
        print(
            f"  {family} round {round_ + 1} ({steps} steps): ours {speeds['ours'][-1]:.3f}, "
            f"plain {speeds['plain'][-1]:.3f} steps/s",
            flush=True,
        )
    fp32 = recipe_for(model_type, args.batch, args.patch, "no")
    fp32_steps, fp32_warmup = step_plan(3 * seconds_per_step, args.seconds / 2)
    row = {
        "auto": statistics.median(speeds["ours"]),
        "plain": statistics.median(speeds["plain"]),
        "fp32": ours(fp32, fp32_steps, fp32_warmup),
        "rounds": speeds,
    }
    row["ratio"] = row["auto"] / row["plain"]
    print(
        f"  {family}: auto {row['auto']:.3f}, fp32 {row['fp32']:.3f} steps/s, ours/plain {row['ratio']:.3f}", flush=True
    )
    return row


def basicsr_rows(family: str, model_type: str, args: argparse.Namespace, seconds_per_step: float) -> dict:
    """Our engine in fp32 against BasicSR's SRModel (fp32 only), alternated, on the same batches as the plain loop."""
    fp32 = recipe_for(model_type, args.batch, args.patch, "no")
    steps, warmup = step_plan(3 * seconds_per_step, args.seconds)
    speeds: dict[str, list[float]] = {"ours_fp32": [], "basicsr": []}
    for round_ in range(args.rounds):
        speeds["ours_fp32"].append(ours(fp32, steps, warmup))
        step = basicsr_step(BASICSR_NETWORKS[family], fp32["optimizer"]["lr"])
        speeds["basicsr"].append(timed_rate(degraded_batches(fp32), step, steps, warmup))
        print(
            f"  {family} vs BasicSR round {round_ + 1} ({steps} steps): ours fp32 {speeds['ours_fp32'][-1]:.3f}, "
            f"BasicSR {speeds['basicsr'][-1]:.3f} steps/s",
            flush=True,
        )
    return {name: statistics.median(values) for name, values in speeds.items()} | {"rounds": speeds}


def memory_cells(
    model_type: str, args: argparse.Namespace, rate: float, overlap: int, work: Path, half: bool
) -> list[str]:
    """Peak RSS (GiB) and seconds of ``tools/upscale.py --tile T`` (``--half`` when ``half``; the default
    overlap) per output size, or why it was not run."""
    model_path = work / f"{model_type}.safetensors"
    write_model(model_path, model_type)
    cells = []
    for megapixels in args.megapixels:
        side = round(math.sqrt(megapixels * 1e6) / SCALE)
        estimate = megapixels / rate * tiled_work(side, args.tile, overlap)
        if estimate > args.max_seconds:
            cells.append(f"not run (~{estimate:.0f} s)")
            continue
        photo = work / f"photo_{side}.png"
        if not photo.exists():
            write_photo(photo, side, side)
        peak, seconds = measure(upscale_command(model_path, photo, work / "out", args.tile, half))
        print(f"  {model_type} {megapixels} MP: peak {peak:.2f} GiB, {seconds:.0f} s", flush=True)
        cells.append(f"{peak:.2f} ({seconds:.0f} s)")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=128, help="HR patch side (LR is patch / 4)")
    parser.add_argument("--seconds", type=float, default=15, help="timed seconds per training run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 16], help="output sizes, MP")
    parser.add_argument("--max-seconds", type=float, default=150, help="skip an upscale estimated to take longer")
    parser.add_argument("--tile", type=int, default=256, help="input pixels a side per tile")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure")
    args = parser.parse_args()
    load_entry_points()
    half = choose_precision("auto", torch.device("cpu")).mixed_precision == "bf16"
    with_basicsr = "basicsr" in args.parts and basicsr_available()
    print(f"{torch.get_num_threads()} threads, inference and upscale in {'bf16' if half else 'fp32'}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for family in args.families:
            model_type = FAMILIES[family]
            torch.manual_seed(0)
            model = MODELS.build({"type": model_type, "scale": SCALE})
            parameters = sum(p.numel() for p in model.parameters())
            overlap = default_overlap(model)
            family_half = half and contract_of(model).supports_bfloat16  # SwinIR runs in float32 only
            rate = inference_rate(model, family_half)
            numerics = "bf16" if family_half else "fp32"
            summary = f"{parameters:,} parameters, {rate:.3f} MP/s {numerics}, overlap {overlap}"
            print(f"{family} ({model_type}): {summary}", flush=True)
            # a training step is about three forwards (forward, then backward's two) of its batch
            seconds_per_step = 3 * args.batch * args.patch**2 / 1e6 / rate
            results[family] = {
                "type": model_type,
                "parameters": parameters,
                "inference": rate,
                "overlap": overlap,
            }
            if "training" in args.parts:
                results[family]["training"] = training_rows(family, model_type, args, seconds_per_step)
            if "memory" in args.parts:
                results[family]["memory"] = memory_cells(model_type, args, rate, overlap, Path(folder), family_half)
            if with_basicsr and family in BASICSR_NETWORKS:
                results[family]["basicsr"] = basicsr_rows(family, model_type, args, seconds_per_step)
    print(
        f"\nx{SCALE}, batch {args.batch}, HR patch {args.patch}, upscale tile {args.tile}, "
        f"inference and upscale in {'bf16' if half else 'fp32'}"
    )
    sizes = " | ".join(f"{m:g} MP: GiB (s)" for m in args.megapixels)
    columns = "| family (type) | parameters | steps/s auto | steps/s fp32 | ours / plain (auto) | inference MP/s"
    print(f"{columns} | tile overlap | {sizes} |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(args.megapixels))
    for family, row in results.items():
        training = (
            [f"{row['training'][key]:.3f}" for key in ("auto", "fp32", "ratio")] if "training" in row else ["-"] * 3
        )
        memory = row.get("memory", ["-"] * len(args.megapixels))
        print(
            f"| {family} (`{row['type']}`) | {row['parameters']:,} | {' | '.join(training)} "
            f"| {row['inference']:.3f} | {row['overlap']} | {' | '.join(memory)} |"
        )
    compared = {family: row for family, row in results.items() if "basicsr" in row}
    if compared:
        print("\n| family | BasicSR fp32 steps/s | ours fp32 | ours auto | ours fp32 / BasicSR | ours auto / BasicSR |")
        print("|---|---|---|---|---|---|")
        for family, row in compared.items():
            basicsr, auto = row["basicsr"], row["training"]["auto"] if "training" in row else math.nan
            print(
                f"| {family} | {basicsr['basicsr']:.3f} | {basicsr['ours_fp32']:.3f} | {auto:.3f} "
                f"| {basicsr['ours_fp32'] / basicsr['basicsr']:.3f} | {auto / basicsr['basicsr']:.3f} |"
            )


if __name__ == "__main__":
    main()
