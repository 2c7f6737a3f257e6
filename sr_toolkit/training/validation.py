"""Validation during training: the model against its interpolation (or identity) baseline.

The baseline of an upscaling model is MATLAB's ``imresize(im2uint8(input), scale, 'bicubic')``, bit
for bit: the input is quantised to 8 bits as a saved LR file would be (validation quantises every
input before the model sees it, so this changes nothing there), then upscaled with MATLAB's rounding
to uint8 after each 1-D pass (:func:`sr_toolkit.core.resize.imresize_8bit`), as SR papers' baselines are.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.table import Table

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.imageio import quantize
from sr_toolkit.core.registry import METRICS
from sr_toolkit.data.patches import PatchDataset
from sr_toolkit.evaluation.baselines import IDENTITY, baseline_output, default_baseline
from sr_toolkit.evaluation.report import comparison_grid, means_table
from sr_toolkit.evaluation.scoring import Column, Sample, build_columns

log = logging.getLogger("sr_toolkit")

Degrade = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


MODEL = "model"
"""The model's row in the table and its panel in the sample grids."""


DEFAULT_METRICS = ("psnr", "ssim")
"""What ``validation.metrics`` holds unless a recipe says otherwise."""


def validation_metrics(y_channel: bool, crop_border: int, names: Sequence[str] = DEFAULT_METRICS) -> list[Column]:
    """The registered metrics ``names`` computed and named exactly as evaluation does them (PSNR and
    SSIM: ``PSNR-Y (dB)`` and ``SSIM-Y`` on BT.601 luma, ``PSNR (dB)`` and ``SSIM`` on RGB), after
    shaving ``crop_border`` pixels. A metric whose weights are unavailable is left out with one
    logged warning."""
    factories = tuple(METRICS.get(name).factory for name in names)
    return _built_metrics(tuple(names), factories, y_channel, crop_border)


@functools.lru_cache(maxsize=4)
def _built_metrics(
    names: tuple[str, ...], factories: tuple[Any, ...], y_channel: bool, crop_border: int
) -> list[Column]:
    """Metrics built once per setting (the factories are part of the key: a name registered anew is
    built anew), so each validation reuses LPIPS's network and warns about missing weights once."""
    notes: list[str] = []
    columns = build_columns(names, y_channel, crop_border, notes)
    for note in notes:
        log.warning("validation: %s", note)
    return columns


@dataclass
class ValidationResult:
    """Per-image scores of the model (``psnr``) and of the baseline (``baseline_psnr``) for each of
    ``metrics``, on the validation images."""

    baseline: str
    metrics: list[Column]
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> None:
        """One image's score; None (an image too small for the metric) is left out of the mean."""
        values = self.scores.setdefault(key, [])
        if value is not None:
            values.append(value)

    def mean(self, key: str) -> float | None:
        """The mean over the images scored (None when none was)."""
        values = self.scores.get(key)
        return sum(values) / len(values) if values else None

    def record(self) -> dict[str, Any]:
        """The means, as logged to ``metrics.jsonl`` (``val/psnr``, ..., ``val/baseline_ssim``)."""
        keys = [prefix + metric.name for prefix in ("", "baseline_") for metric in self.metrics]
        return {"baseline": self.baseline, **{f"val/{key}": self.mean(key) for key in keys}}

    def table(self, title: str) -> Table:
        """A rich table: one row per method, columns headed as evaluation heads them, the better
        value in bold. The title stays on one line: the table is at least as wide as it, and a
        console narrower than the title cuts it with an ellipsis instead of wrapping it."""
        means = {
            method: {metric.name: self.mean(prefix + metric.name) for metric in self.metrics}
            for method, prefix in ((self.baseline, "baseline_"), (MODEL, ""))
        }
        return means_table(title, self.metrics, (MODEL,), means, kinds=False)


def baseline_name(task: str, scale: int) -> str:
    """``bicubic`` for upscaling, ``input`` (the degraded input itself) for restoration."""
    return default_baseline(scale) if task == "upscale" else IDENTITY


def baseline(inputs: torch.Tensor, task: str, scale: int) -> torch.Tensor:
    """What the model must beat, for (N, C, h, w) inputs in [0, 1]: MATLAB's bicubic upscaling of
    the inputs quantised to 8 bits, (N, C, scale h, scale w) on the 8-bit grid; or the input itself."""
    return baseline_output(baseline_name(task, scale), inputs, scale)


def sample_grid(
    name: str,
    inputs: torch.Tensor,
    reference: torch.Tensor,
    output: torch.Tensor,
    target: torch.Tensor,
    baseline_label: str,
) -> Image.Image:
    """Evaluation's labelled comparison grid for one image: input (nearest-upscaled to the target's
    size) | baseline | model | ground truth, the input shown once when it is the baseline, with the
    square where model and baseline differ most outlined and zoomed below.

    ``inputs`` is (C, h, w), ``reference`` (the baseline), ``output`` and ``target`` (C, H, W), all
    in [0, 1]; ``baseline_label`` names the baseline panel (``bicubic`` or ``input``).
    """
    outputs = {baseline_label: reference, MODEL: output}
    return comparison_grid(Sample(name, inputs, target, outputs, models=(MODEL,)))


def save_grid(grid: Image.Image, path: Path) -> None:
    """Write ``grid`` as a PNG, atomically (missing folders are created)."""
    with atomic_path(path) as temporary:
        grid.save(temporary, format="PNG")


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    dataset: PatchDataset,
    degrade: Degrade,
    recipe: dict[str, Any],
    device: torch.device,
    autocast: Callable[[], Any],
    samples_dir: Path | None = None,
    step: int = 0,
) -> ValidationResult:
    """Score ``model`` and the baseline on every validation image (8-bit quantised, as saved).

    Each image's input is made by the recipe's degradation with a generator seeded from the
    recipe seed and the image index, so every validation sees the same inputs.
    """
    task, scale = recipe["task"], recipe["scale"]
    options = recipe["validation"]
    count = len(dataset) if options["max_images"] is None else min(options["max_images"], len(dataset))
    result = ValidationResult(
        baseline_name(task, scale),
        validation_metrics(options["y_channel"], options["crop_border"], tuple(options["metrics"])),
    )
    was_training = model.training
    model.eval()
    for index in range(count):
        item: dict[str, Any] = dataset[index]
        target = item["target"][None].to(device)
        if "input" in item:
            inputs = item["input"][None].to(device)
        else:
            generator = torch.Generator(device).manual_seed(recipe["seed"] * 100_003 + index)
            inputs = degrade(target, generator)
        inputs = quantize(inputs)
        with autocast():
            output = model(inputs)
        output = quantize(output.float())
        reference = quantize(baseline(inputs, task, scale))
        for metric in result.metrics:
            result.add(metric.name, metric.score(output, target))
            result.add(f"baseline_{metric.name}", metric.score(reference, target))
        if samples_dir is not None and index < options["samples"]:
            shown_input, shown_reference, shown_output, shown_target = (
                x[0].cpu() for x in (inputs, reference, output, target)
            )
            name = str(item["name"])
            grid = sample_grid(name, shown_input, shown_reference, shown_output, shown_target, result.baseline)
            save_grid(grid, samples_dir / f"step_{step:07d}_{Path(name).stem}.png")
    model.train(was_training)
    return result
