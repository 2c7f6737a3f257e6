"""Engine overhead: steps/s of sr-toolkit's Trainer against a minimal hand-written PyTorch loop.

Both train the same model on the same data (the recipe's dataset, degradation, loss, optimizer,
batch and precision); runs alternate ours / plain several times in one process, because these
machines are noisy, and the median steps/s of each are compared. Start-up is excluded: speed is
measured between the first logged step (after warm-up) and the last.

    python bench/engine_overhead.py recipes/edsr_x4.yaml [--steps 60] [--rounds 3] [key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import count

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.precision import choose_precision
from sr_toolkit.core.registry import DATASETS, MODELS
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.training.engine import Trainer
from sr_toolkit.training.losses import WeightedLoss

WARMUP = 10


def ours(recipe: dict, steps: int, warmup: int = WARMUP) -> float:
    """Steps/s of the engine between step ``warmup`` and the last (a multiple of ``warmup``), from its own log."""
    with tempfile.TemporaryDirectory() as folder:
        run = {
            **recipe,
            "output_dir": folder,
            "train": {
                **recipe["train"],
                "max_steps": steps,
                "log_every": warmup,
                "max_time": None,
                "val_every": 10**9,
                "checkpoint_every": 10**9,
            },
            "data": {**recipe["data"], "val": None},
        }
        trainer = Trainer(run)
        trainer.fit()
        times = {r["step"]: r["time"] for r in trainer.folder.records() if "loss" in r}
    return (steps - warmup) / (times[steps] - times[warmup])


def degraded_batches(recipe: dict) -> Iterator[tuple[Tensor, Tensor]]:
    """(LR input, HR target) batches the plain way: a DataLoader over the recipe's dataset, then its degradation."""
    precision = choose_precision(recipe["train"]["mixed_precision"], torch.device("cpu"))
    degrade = build_pipeline(recipe["degradation"])
    data = DataLoader(
        DATASETS.build(recipe["data"]["train"]),
        batch_size=recipe["data"]["batch_size"],
        sampler=count(),
        num_workers=recipe["data"]["num_workers"],
    )
    for step, batch in enumerate(data):
        target = batch["target"]
        inputs = degrade(target, torch.Generator().manual_seed(step))
        if precision.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        yield inputs, target


def plain_step(recipe: dict) -> Callable[[Tensor, Tensor], None]:
    """One update of a minimal loop: forward under autocast, the recipe's loss, backward, ``torch.optim.Adam``."""
    torch.manual_seed(recipe["seed"])
    precision = choose_precision(recipe["train"]["mixed_precision"], torch.device("cpu"))
    model = MODELS.build(recipe["model"])
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = WeightedLoss(recipe["loss"])
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["optimizer"]["lr"])
    dtype = torch.bfloat16 if precision.mixed_precision == "bf16" else None

    def step(inputs: Tensor, target: Tensor) -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            output = model(inputs)
        loss, _ = criterion(output.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed_rate(
    batches: Iterator[tuple[Tensor, Tensor]], step: Callable[[Tensor, Tensor], None], steps: int, warmup: int
) -> float:
    """Steps/s of ``step`` over ``batches`` between step ``warmup`` and step ``steps`` (data included)."""
    started = 0.0
    for index, (inputs, target) in zip(range(steps), batches):
        if index == warmup:
            started = time.perf_counter()
        step(inputs, target)
    return (steps - warmup) / (time.perf_counter() - started)


def plain(recipe: dict, steps: int, warmup: int = WARMUP) -> float:
    """Steps/s of the minimal loop: DataLoader, degrade, forward under autocast, backward, step."""
    return timed_rate(degraded_batches(recipe), plain_step(recipe), steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    speeds: dict[str, list[float]] = {"ours": [], "plain": []}
    for round_ in range(args.rounds):
        speeds["ours"].append(ours(recipe, args.steps))
        speeds["plain"].append(plain(recipe, args.steps))
        print(f"round {round_ + 1}: ours {speeds['ours'][-1]:.3f} steps/s, plain {speeds['plain'][-1]:.3f} steps/s")
    ours_median, plain_median = (statistics.median(v) for v in speeds.values())
    print(
        f"median: ours {ours_median:.3f} steps/s, plain {plain_median:.3f} steps/s, "
        f"ratio {ours_median / plain_median:.3f}, overhead {100 * (1 - ours_median / plain_median):+.1f}%"
    )


if __name__ == "__main__":
    main()
