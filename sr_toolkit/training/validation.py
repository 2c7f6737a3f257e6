"""Validation during training: the model against its interpolation (or identity) baseline.

The baseline of an upscaling model is MATLAB's ``imresize(im2uint8(input), scale, 'bicubic')``, bit
for bit: the input is quantised to 8 bits as a saved LR file would be (validation quantises every
input before the model sees it, so this changes nothing there), then upscaled with MATLAB's rounding
to uint8 after each 1-D pass (:func:`sr_toolkit.core.resize.imresize_8bit`), as SR papers' baselines are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from torch.utils.data import Dataset

from sr_toolkit.evaluation import metrics
from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.evaluation.evaluate import IDENTITY, Metric, Sample, Settings, build_metrics
from sr_toolkit.evaluation.report import Scores, comparison_grid, header, score_rows
from sr_toolkit.core.resize import imresize_8bit

Degrade = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


MODEL = "model"
"""The model's row in the table and its panel in the sample grids."""


def validation_metrics(y_channel: bool, crop_border: int) -> list[Metric]:
    """PSNR and SSIM computed and named exactly as evaluation does: ``PSNR-Y (dB)`` and ``SSIM-Y``
    on BT.601 luma, ``PSNR (dB)`` and ``SSIM`` on RGB, after shaving ``crop_border`` pixels."""
    settings = Settings(data=Path(), metrics=("psnr", "ssim"), y_channel=y_channel)
    return build_metrics(settings, crop_border, torch.device("cpu"), notes=[])


@dataclass
class ValidationResult:
    """Per-image scores of the model (``psnr``) and of the baseline (``baseline_psnr``) for each of
    ``metrics``, on the validation images."""

    baseline: str
    metrics: list[Metric]
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.scores.setdefault(key, []).append(value)

    def mean(self, key: str) -> float:
        values = self.scores[key]
        return sum(values) / len(values)

    def record(self) -> dict[str, Any]:
        """The means, as logged to ``metrics.jsonl`` (``val/psnr``, ..., ``val/baseline_ssim``)."""
        keys = [prefix + metric.name for prefix in ("", "baseline_") for metric in self.metrics]
        return {"baseline": self.baseline, **{f"val/{key}": self.mean(key) for key in keys}}

    def table(self, title: str) -> Table:
        """A rich table: one row per method, columns headed as evaluation heads them, the better
        value in bold. The title stays on one line: the table is at least as wide as it, and a
        console narrower than the title cuts it with an ellipsis instead of wrapping it."""
        table = Table("method", *(header(metric) for metric in self.metrics),
                      title=Text(title, style="table.title", no_wrap=True, overflow="ellipsis"),
                      min_width=cell_len(title))
        means: Scores = {method: {metric.name: self.mean(prefix + metric.name) for metric in self.metrics}
                 for method, prefix in ((self.baseline, "baseline_"), (MODEL, ""))}
        for method, _, cells in score_rows(self.metrics, (MODEL,), means):
            table.add_row(method, *(cell.markup for cell in cells))
        return table


def baseline_name(task: str, scale: int) -> str:
    """``bicubic`` for upscaling, ``input`` (the degraded input itself) for restoration."""
    return "bicubic" if task == "upscale" and scale > 1 else IDENTITY


def baseline(inputs: torch.Tensor, task: str, scale: int) -> torch.Tensor:
    """What the model must beat, for (N, C, h, w) inputs in [0, 1]: MATLAB's bicubic upscaling of
    the inputs quantised to 8 bits, (N, C, scale h, scale w) on the 8-bit grid; or the input itself."""
    if baseline_name(task, scale) == "bicubic":
        return imresize_8bit(inputs, scale=scale, mode="bicubic")
    return inputs


def sample_grid(name: str, inputs: torch.Tensor, reference: torch.Tensor, output: torch.Tensor,
                target: torch.Tensor, baseline_label: str) -> Image.Image:
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
    dataset: Dataset,
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
    size = len(dataset)  # type: ignore[arg-type]  # every dataset plugin defines __len__
    count = size if options["max_images"] is None else min(options["max_images"], size)
    result = ValidationResult(baseline_name(task, scale),
                              validation_metrics(options["y_channel"], options["crop_border"]))
    was_training = model.training
    model.eval()
    for index in range(count):
        item = dataset[index]
        target = item["target"][None].to(device)
        if "input" in item:
            inputs = item["input"][None].to(device)
        else:
            generator = torch.Generator(device).manual_seed(recipe["seed"] * 100_003 + index)
            inputs = degrade(target, generator)
        inputs = metrics.quantize(inputs)
        with autocast():
            output = model(inputs)
        output = metrics.quantize(output.float())
        reference = metrics.quantize(baseline(inputs, task, scale))
        for metric in result.metrics:  # validation's metrics (PSNR, SSIM) give a value for every image
            result.add(metric.name, metric.compute(output, target))  # type: ignore[arg-type]
            result.add(f"baseline_{metric.name}", metric.compute(reference, target))  # type: ignore[arg-type]
        if samples_dir is not None and index < options["samples"]:
            first = [x[0].cpu() for x in (inputs, reference, output, target)]
            grid = sample_grid(item["name"], first[0], first[1], first[2], first[3], result.baseline)
            save_grid(grid, samples_dir / f"step_{step:07d}_{Path(item['name']).stem}.png")
    model.train(was_training)
    return result
