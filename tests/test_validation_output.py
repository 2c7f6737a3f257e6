"""What validation shows: table columns named as evaluation names them, a one-line title, and
labelled sample grids with the baseline panel."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from rich.console import Console
from skimage import data

from sr_toolkit.core.imageio import to_uint8
from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.report import GAP, LABEL_HEIGHT, zoom_region
from sr_toolkit.evaluation.scoring import Sample
from sr_toolkit.training.validation import MODEL, ValidationResult, baseline, validate

HEIGHT, WIDTH = 48, 64
TITLE = "resnet_x4: validation after 12000 steps"


def recipe(task: str = "upscale", scale: int = 4, y_channel: bool = True) -> dict:
    return {
        "task": task,
        "scale": scale,
        "seed": 0,
        "validation": {
            "metrics": ["psnr", "ssim"],
            "y_channel": y_channel,
            "crop_border": scale,
            "max_images": None,
            "samples": 1,
        },
    }


def degrade(task: str, scale: int):
    """Box-filter downscaling for upscaling, a darker image for restoration."""
    if task == "upscale":
        return lambda target, generator: F.avg_pool2d(target, scale)
    return lambda target, generator: target * 0.7


def run_validation(
    task: str = "upscale", scale: int = 4, y_channel: bool = True, samples_dir: Path | None = None
) -> tuple[ValidationResult, torch.Tensor, torch.Tensor]:
    """Validate a bilinear 'model' on one photo crop; returns the result, target and the 8-bit input."""
    target = torch.from_numpy(data.astronaut()[100 : 100 + HEIGHT, 180 : 180 + WIDTH].copy())
    target = target.permute(2, 0, 1).float() / 255
    model = torch.nn.Upsample(scale_factor=scale, mode="bilinear") if scale > 1 else torch.nn.Identity()
    result = validate(
        model,
        [{"target": target, "name": "crop.png"}],
        degrade(task, scale),
        recipe(task, scale, y_channel),
        torch.device("cpu"),
        contextlib.nullcontext,
        samples_dir=samples_dir,
        step=7,
    )
    inputs = metrics.quantize(degrade(task, scale)(target[None], None))
    return result, target, inputs


@pytest.mark.parametrize(
    ("y_channel", "headers"),
    [
        (True, ["method", "PSNR-Y (dB) ↑", "SSIM-Y ↑"]),
        (False, ["method", "PSNR (dB) ↑", "SSIM ↑"]),
    ],
)
def test_table_columns_are_named_as_evaluation_names_them(y_channel: bool, headers: list[str]) -> None:
    result, target, inputs = run_validation(y_channel=y_channel)
    table = result.table(TITLE)
    assert [column.header for column in table.columns] == headers
    output = metrics.quantize(F.interpolate(inputs, scale_factor=4, mode="bilinear"))
    reference = metrics.quantize(baseline(inputs, "upscale", 4))
    options = {"y_channel": y_channel, "crop_border": 4}
    expected = {
        "val/psnr": metrics.psnr(output, target[None], **options).item(),
        "val/ssim": metrics.ssim(output, target[None], **options).item(),
        "val/baseline_psnr": metrics.psnr(reference, target[None], **options).item(),
        "val/baseline_ssim": metrics.ssim(reference, target[None], **options).item(),
    }
    assert result.record() == {"baseline": "bicubic", **expected}
    cells = {column.header: list(column._cells) for column in table.columns}
    assert cells["method"] == ["bicubic", MODEL]
    psnr = [expected["val/baseline_psnr"], expected["val/psnr"]]
    shown = [f"{value:.2f}" for value in psnr]
    best = psnr.index(max(psnr))
    assert cells[headers[1]] == [f"[bold]{text}[/bold]" if row == best else text for row, text in enumerate(shown)]


def rendered_lines(result: ValidationResult, title: str, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(result.table(title))
    return console.file.getvalue().splitlines()


@pytest.mark.parametrize("title", [TITLE, "edsr_x4_div2k_long_name: validation after 300000 steps"])
def test_title_stays_on_one_line_in_a_60_column_console(title: str) -> None:
    result, _, _ = run_validation()
    lines = rendered_lines(result, title, width=60)
    assert lines[0].strip() == title
    assert lines[1].lstrip().startswith("┏")  # the table itself starts on the next line


def test_title_narrower_console_cuts_the_title_instead_of_wrapping_it() -> None:
    result, _, _ = run_validation()
    lines = rendered_lines(result, TITLE, width=30)
    assert lines[0].strip().endswith("…") and TITLE.startswith(lines[0].strip()[:-1])
    assert lines[1].lstrip().startswith("┏")


def outlined(image: torch.Tensor, region: tuple[int, int, int]) -> np.ndarray:
    """``image`` as 8-bit (H, W, 3) with the zoom square outlined in red, as the grid draws it."""
    picture = Image.fromarray(to_uint8(image).permute(1, 2, 0).numpy())
    top, left, side = region
    ImageDraw.Draw(picture).rectangle((left, top, left + side - 1, top + side - 1), outline=(255, 0, 0))
    return np.asarray(picture)


def test_sample_grid_shows_input_bicubic_model_and_target_labelled(tmp_path: Path) -> None:
    _, target, inputs = run_validation(samples_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["step_0000007_crop.png"]
    grid = np.asarray(Image.open(tmp_path / "step_0000007_crop.png").convert("RGB"))
    shown = F.interpolate(inputs, size=(HEIGHT, WIDTH), mode="nearest")[0]
    reference = metrics.quantize(baseline(inputs, "upscale", 4))[0]
    output = metrics.quantize(F.interpolate(inputs, scale_factor=4, mode="bilinear"))[0]
    outputs = {"bicubic": reference, MODEL: output}
    region = zoom_region(Sample("crop.png", inputs[0], target, outputs, models=(MODEL,)))
    side = region[2]
    assert side == 16  # min(H, W) // 4 = 12, raised to the 16-pixel minimum
    zoom = WIDTH // side
    assert grid.shape == (LABEL_HEIGHT + HEIGHT + GAP + side * zoom, 4 * WIDTH + 3 * GAP, 3)
    for index, panel in enumerate([shown, reference, output, target]):
        x = index * (WIDTH + GAP)
        label = grid[:LABEL_HEIGHT, x : x + WIDTH]
        assert (label < 128).any(), f"panel {index} has no label"
        image = grid[LABEL_HEIGHT : LABEL_HEIGHT + HEIGHT, x : x + WIDTH]
        np.testing.assert_array_equal(image, outlined(panel, region), err_msg=f"panel {index}")
    bicubic = grid[LABEL_HEIGHT : LABEL_HEIGHT + HEIGHT, WIDTH + GAP : 2 * WIDTH + GAP]
    assert not np.array_equal(bicubic, outlined(output, region))  # the baseline is not the model


def test_restoration_grid_shows_the_input_once_as_its_baseline(tmp_path: Path) -> None:
    result, target, inputs = run_validation(task="restore", scale=1, samples_dir=tmp_path)
    assert result.baseline == "input"
    grid = np.asarray(Image.open(tmp_path / "step_0000007_crop.png").convert("RGB"))
    assert grid.shape[1] == 3 * WIDTH + 2 * GAP
    outputs = {"input": inputs[0], MODEL: inputs[0]}  # the model is the identity here
    region = zoom_region(Sample("crop.png", inputs[0], target, outputs, models=(MODEL,)))
    for index, panel in enumerate([inputs[0], inputs[0], target]):
        x = index * (WIDTH + GAP)
        image = grid[LABEL_HEIGHT : LABEL_HEIGHT + HEIGHT, x : x + WIDTH]
        np.testing.assert_array_equal(image, outlined(panel, region), err_msg=f"panel {index}")
