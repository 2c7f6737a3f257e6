"""Validation during training: the model against its interpolation (or identity) baseline.

The baseline of an upscaling model is MATLAB's ``imresize(im2uint8(input), scale, 'bicubic')``, bit
for bit: the input is quantised to 8 bits as a saved LR file would be (validation quantises every
input before the model sees it, so this changes nothing there), then upscaled with MATLAB's rounding
to uint8 after each 1-D pass (:func:`sr_toolkit.resize.imresize_8bit`), as SR papers' baselines are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.table import Table
from torch.utils.data import Dataset

from sr_toolkit import metrics
from sr_toolkit.imageio import save_image
from sr_toolkit.resize import imresize_8bit

Degrade = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


@dataclass
class ValidationResult:
    """Mean PSNR/SSIM of the model and of the baseline on the validation images."""

    baseline: str
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, values: torch.Tensor) -> None:
        self.scores.setdefault(key, []).extend(values.double().cpu().tolist())

    def mean(self, key: str) -> float:
        values = self.scores[key]
        return sum(values) / len(values)

    def record(self) -> dict[str, Any]:
        """The means, as logged to ``metrics.jsonl``."""
        keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim")
        return {"baseline": self.baseline, **{f"val/{key}": self.mean(key) for key in keys}}

    def table(self, title: str) -> Table:
        """A rich table: one row per method, the better value in bold."""
        table = Table("method", "PSNR (dB)", "SSIM", title=title)
        rows = [(self.baseline, "baseline_"), ("model", "")]
        best = {m: max(self.mean(prefix + m) for _, prefix in rows) for m in ("psnr", "ssim")}
        for name, prefix in rows:
            cells = []
            for metric, digits in (("psnr", 2), ("ssim", 4)):
                value = self.mean(prefix + metric)
                text = f"{value:.{digits}f}"
                cells.append(f"[bold]{text}[/bold]" if value == best[metric] else text)
            table.add_row(name, *cells)
        return table


def baseline(inputs: torch.Tensor, task: str, scale: int) -> torch.Tensor:
    """What the model must beat, for (N, C, h, w) inputs in [0, 1]: MATLAB's bicubic upscaling of
    the inputs quantised to 8 bits, (N, C, scale h, scale w) on the 8-bit grid; or the input itself."""
    if task == "upscale" and scale > 1:
        return imresize_8bit(inputs, scale=scale, mode="bicubic")
    return inputs


def sample_grid(inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """input (nearest-upscaled) | output | target, side by side, for one image (C, H, W)."""
    shown = F.interpolate(inputs[None], size=target.shape[-2:], mode="nearest")[0]
    gap = torch.ones(target.shape[0], target.shape[1], 4)
    return torch.cat([shown, gap, output.clamp(0, 1), gap, target], dim=2)


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
    score_args = {"y_channel": options["y_channel"], "crop_border": options["crop_border"]}
    count = len(dataset) if options["max_images"] is None else min(options["max_images"], len(dataset))
    result = ValidationResult("bicubic" if task == "upscale" and scale > 1 else "input")
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
        result.add("psnr", metrics.psnr(output, target, **score_args))
        result.add("ssim", metrics.ssim(output, target, **score_args))
        result.add("baseline_psnr", metrics.psnr(reference, target, **score_args))
        result.add("baseline_ssim", metrics.ssim(reference, target, **score_args))
        if samples_dir is not None and index < options["samples"]:
            grid = sample_grid(inputs[0].cpu(), output[0].cpu(), target[0].cpu())
            save_image(grid, samples_dir / f"step_{step:07d}_{Path(item['name']).stem}.png")
    model.train(was_training)
    return result
