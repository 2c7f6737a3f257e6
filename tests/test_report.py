"""The evaluation's outputs: terminal table, results.json, grids, and report.html in headless Chromium."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.registry import METRICS, MODELS
from sr_toolkit.evaluation.evaluate import Evaluation, Settings
from sr_toolkit.evaluation.report import (
    ReportWriter,
    best_value,
    comparison_grid,
    header,
    panels,
    render_html,
    results_table,
    score_rows,
    zoom_region,
)
from sr_toolkit.evaluation.scoring import Column, Sample

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Evaluation]:
    """An evaluation of two photo crops (one with HTML in its name) by two baselines and a model."""
    root = tmp_path_factory.mktemp("report")
    (root / "hr").mkdir()
    Image.fromarray(data.chelsea()[40:200, 100:292]).save(root / "hr" / "cat.png")
    Image.fromarray(data.camera()[100:228, 150:310]).save(root / "hr" / "x<b>&.png")
    torch.manual_seed(0)
    spec = {"type": "deconv", "scale": 4}
    recipe = {"model": spec, "scale": 4, "task": "upscale"}
    save_model(root / "deconv.safetensors", MODELS.build(spec), recipe)
    evaluation = Evaluation(
        Settings(
            root / "hr",
            scale=4,
            models=(root / "deconv.safetensors",),
            baselines=("nearest", "bicubic"),
            metrics=("psnr", "ssim", "mse"),
        )
    )
    writer = ReportWriter(root / "out")
    for sample in evaluation.samples():
        writer.add(sample)
    writer.finish(evaluation.results)
    return root / "out", evaluation


def test_outputs_are_written_with_the_documented_shape(report):
    out, _ = report
    document = json.loads((out / "results.json").read_text())
    assert set(document) == {"settings", "notes", "methods"}
    assert list(document["methods"]) == ["nearest", "bicubic", "deconv"]
    for entry in document["methods"].values():
        assert set(entry) == {"mean", "images"}
        assert set(entry["images"]) == {"cat.png", "x<b>&.png"}
        assert set(entry["mean"]) == {"psnr", "ssim", "mse"}
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["cat.png", "x_b.png"]
    assert sorted(p.name for p in (out / "images" / "cat").iterdir()) == [
        "00_input.png",
        "01_nearest.png",
        "02_bicubic.png",
        "03_deconv.png",
        "04_ground_truth.png",
    ]


def test_table_marks_the_best_mean_in_bold(report):
    _, evaluation = report
    table = results_table(evaluation.results)
    headers = [column.header for column in table.columns]
    assert headers == ["method", "kind", "PSNR (dB) ↑", "SSIM ↑", "MSE [0,1] ↓"]
    cells = {column.header: list(column._cells) for column in table.columns}
    means = {m: evaluation.results.mean(m) for m in evaluation.results.methods}
    best_psnr = max(means, key=lambda m: means[m]["psnr"])
    best_mse = min(means, key=lambda m: means[m]["mse"])
    assert best_psnr == best_mse == "bicubic"  # an untrained model and nearest lose to bicubic
    for row, method in enumerate(evaluation.results.methods):
        assert cells["PSNR (dB) ↑"][row].startswith("[bold]") == (method == best_psnr)
        assert cells["MSE [0,1] ↓"][row].startswith("[bold]") == (method == best_mse)


def planted_sample(region: tuple[int, int, int]) -> Sample:
    """Two model outputs equal to the target except inside ``region`` = (top, left, side)."""
    torch.manual_seed(0)
    target = torch.rand(3, 96, 128)
    top, left, side = region
    first, second = target.clone(), target.clone()
    second[:, top : top + side, left : left + side] = 1 - second[:, top : top + side, left : left + side]
    outputs = {"bicubic": target.clone(), "a": first, "b": second}
    return Sample("x.png", torch.rand(3, 24, 32), target, outputs, models=("a", "b"))


def test_zoom_finds_where_the_models_differ_most():
    assert zoom_region(planted_sample((50, 70, 24))) == (50, 70, 24)  # side: 96 // 4
    assert zoom_region(planted_sample((0, 100, 24))) == (0, 100, 24)


def test_grid_shows_each_method_labelled_with_the_zoomed_crop():
    sample = planted_sample((50, 70, 24))
    grid = np.asarray(comparison_grid(sample)).astype(int)
    names = [label for label, _ in panels(sample)]
    assert names == ["input", "bicubic", "a", "b", "ground truth"]
    zoom = 128 // 24
    assert grid.shape == (18 + 96 + 4 + 24 * zoom, 5 * 128 + 4 * 4, 3)
    for index, (_, image) in enumerate(panels(sample)):
        x = index * (128 + 4)
        expected = (image * 255).round().permute(1, 2, 0).int().numpy()
        assert np.array_equal(grid[18 + 10 : 18 + 40, x : x + 128], expected[10:40])  # away from the box
        crop = grid[18 + 96 + 4 :, x + (128 - 24 * zoom) // 2 :][: 24 * zoom, : 24 * zoom]
        assert np.array_equal(crop[::zoom, ::zoom], expected[50:74, 70:94])
        assert (grid[18 + 50, x + 70] == [255, 0, 0]).all()  # the zoom square, outlined in red
        assert grid[2:16, x : x + 40].min() < 100  # a dark label on the white strip


def test_caption_goes_on_a_strip_under_the_grid():
    sample = planted_sample((50, 70, 24))
    plain = np.asarray(comparison_grid(sample)).astype(int)
    captioned = np.asarray(comparison_grid(sample, "input: degradation of realesrgan_x4, seed 0")).astype(int)
    assert captioned.shape == (plain.shape[0] + 18, plain.shape[1], 3)
    assert np.array_equal(captioned[: plain.shape[0]], plain)
    strip = captioned[plain.shape[0] :]
    assert strip[:, :200].min() < 100 and (strip[:, 400:] == 255).all()  # the text, left; white after it


def test_a_metric_with_an_ideal_marks_the_value_closest_to_it_on_a_log_scale():
    column = Column("hf_ratio", METRICS.build({"type": "hf_ratio"}))
    assert header(column) == "HF ratio →1"
    scores = {"bicubic": {"hf_ratio": 0.5}, "a": {"hf_ratio": 1.9}, "b": {"hf_ratio": 3.0}, "c": {"hf_ratio": None}}
    bold = [method for method, _, cells in score_rows([column], ("a", "b", "c"), scores) if cells[0].best]
    assert bold == ["a"]  # |log 1.9| = 0.64 < |log 0.5| = 0.69, though 1.9 is further from 1 than 0.5
    assert best_value(column, [0.0, math.inf]) is None  # neither is anywhere near 1


def test_identical_output_writes_null_with_a_note(tmp_path):
    small = data.chelsea()[:40, :60]
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    Image.fromarray(small).save(tmp_path / "lr" / "cat.png")
    Image.fromarray(small.repeat(2, axis=0).repeat(2, axis=1)).save(tmp_path / "hr" / "cat.png")
    settings = Settings(tmp_path / "hr", scale=2, lr=tmp_path / "lr", baselines=("nearest", "bicubic"))
    evaluation = Evaluation(settings)
    results = evaluation.run()
    writer = ReportWriter(tmp_path / "out", images=False)
    writer.finish(results)
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["methods"]["nearest"]["images"]["cat.png"] == {"psnr": None, "ssim": 1.0, "hf_ratio": 1.0}
    assert document["methods"]["nearest"]["mean"]["psnr"] is None
    assert document["methods"]["bicubic"]["images"]["cat.png"]["psnr"] > 20
    assert (
        "psnr: infinite (output identical to the target) on cat.png; written as null in results.json"
        in (document["notes"])
    )
    assert "inf" in str(results_table(results).columns[2]._cells[0])


def test_page_escapes_names_and_links_existing_files(report):
    out, evaluation = report
    page = (out / "report.html").read_text()
    assert "<h2>x&lt;b&gt;&amp;.png</h2>" in page and "x<b>" not in page.split("<script")[0]
    payload = json.loads(re.search(r'id="report-data">(.*?)</script>', page).group(1))
    assert [image["name"] for image in payload["images"]] == ["cat.png", "x<b>&.png"]
    for image in payload["images"]:
        labels = [label for label, _ in image["files"]]
        assert labels == ["input", "nearest", "bicubic", "deconv", "ground truth"]
        assert all((out / file).is_file() for _, file in image["files"])
    assert all((out / src).is_file() for src in re.findall(r'src="([^"]+)"', page))
    assert page.count('<section class="image"') == 2
    assert render_html(evaluation.results, []).count("<section") == 0


def run_selftest(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """Open ``page#selftest`` in headless Chromium; return what the page wrote and the browser's log."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"{page.as_uri()}#selftest",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), f"the page wrote no self-test result; log:\n{done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1))), done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium for the browser test (apt-get install chromium)")
def test_page_loads_without_errors_and_the_slider_moves_in_chromium(report, tmp_path):
    out, _ = report
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    result, log = run_selftest(copy / "report.html", tmp_path)
    assert result["ok"] and result["errors"] == [] and result["broken"] == []
    assert (result["left"], result["right"]) == ("input", "ground truth")
    assert (result["under"], result["over"]) == ("images/cat/00_input.png", "images/cat/04_ground_truth.png")
    assert result["clip"] == "inset(0px 0px 0px 25%)" and result["divider"] == "25%"
    assert result["size"] == [192, 160, 192, 160] and result["loaded"] == 2 * 2
    assert not [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]

    (copy / "images" / "cat" / "03_deconv.png").unlink()  # the default right-hand image of the first section
    broken, _ = run_selftest(copy / "report.html", tmp_path)
    assert not broken["ok"] and broken["broken"] == ["images/cat/03_deconv.png"]
