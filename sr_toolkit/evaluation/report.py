"""What an evaluation leaves behind: results.json / results.csv, a terminal table, comparison
grids and ``report.html``, one page that works opened from disk (its images sit next to it).

``report.html#selftest`` moves the first image's slider from the page's own script and writes what
it observed (clip position, images shown, images that failed to load, script errors) as JSON into
``<pre id="selftest">`` and the title, so a headless browser's ``--dump-dom`` can check the page.
"""

from __future__ import annotations

import csv
import html
import importlib.resources
import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from torch import Tensor

from sr_toolkit.core.imageio import match_channels, save_image, to_pil
from sr_toolkit.evaluation.baselines import IDENTITY
from sr_toolkit.evaluation.scoring import Column, Results, Sample

Scores = dict[str, dict[str, float | None]]
"""Method -> metric -> value."""

GROUND_TRUTH = "ground truth"
LABEL_HEIGHT = 18
GAP = 4
ZOOM_FRACTION = 4
"""The zoomed crop's side is the image's shorter side over this, between 16 and 128 pixels."""


# --- numbers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One shown score and whether it is the best of its column."""

    text: str
    best: bool

    @property
    def markup(self) -> str:
        """The text as rich markup: bold when it is the best."""
        return f"[bold]{self.text}[/bold]" if self.best else self.text


def format_value(metric: Column, value: float | None) -> str:
    """A score as the table shows it, with the metric's declared digits (dB with 2, MSE with 6, most 4)."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{metric.digits}f}"


def best_value(metric: Column, values: Sequence[float]) -> float | None:
    """The best of a column's values: the highest, the lowest (LPIPS, MSE), or for a metric with an
    ``ideal`` (the HF ratio's 1) the one closest to it on a log scale, of those above 0 and finite;
    None when there is none."""
    if metric.higher_is_better is None and metric.ideal is not None:
        log_ideal = math.log(metric.ideal)
        finite = [value for value in values if 0 < value < math.inf]
        return min(finite, key=lambda value: abs(math.log(value) - log_ideal)) if finite else None
    return (max if metric.higher_is_better else min)(values) if values else None


def score_rows(metrics: Sequence[Column], models: Collection[str], scores: Scores) -> list[tuple[str, str, list[Cell]]]:
    """(method, kind, cells) per method of ``scores`` (method -> metric -> value), one cell per
    metric, each marked when it is the best value of its column (:func:`best_value`); kind is
    ``model`` for the methods in ``models``, else ``baseline``."""
    best: dict[str, float | None] = {}
    for metric in metrics:
        present = [v for method_scores in scores.values() if (v := method_scores[metric.name]) is not None]
        best[metric.name] = best_value(metric, present)
    rows = []
    for method, values in scores.items():
        cells = []
        for metric in metrics:
            value = values[metric.name]
            cells.append(Cell(format_value(metric, value), value is not None and value == best[metric.name]))
        rows.append((method, "model" if method in models else "baseline", cells))
    return rows


def header(metric: Column) -> str:
    """A column heading: the metric's label and which way is better (``→1``: closest to 1)."""
    if metric.higher_is_better is None:
        return f"{metric.label} →{metric.ideal:g}"
    return f"{metric.label} {'↑' if metric.higher_is_better else '↓'}"


def means_table(
    title: str, metrics: Sequence[Column], models: Collection[str], means: Scores, kinds: bool = True
) -> Table:
    """A rich table of mean scores (method -> metric -> value): one row per method (with its kind,
    model or baseline, when ``kinds``), columns headed by :func:`header`, the best of each in bold.
    The title stays on one line: the table is at least as wide as it, and a console narrower than
    the title cuts it with an ellipsis instead of wrapping it. Evaluation and validation both show it."""
    table = Table(
        "method",
        *(["kind"] if kinds else []),
        *(header(metric) for metric in metrics),
        title=Text(title, style="table.title", no_wrap=True, overflow="ellipsis"),
        min_width=cell_len(title),
    )
    for method, kind, cells in score_rows(metrics, models, means):
        table.add_row(method, *([kind] if kinds else []), *(cell.markup for cell in cells))
    return table


def results_table(results: Results) -> Table:
    """Mean of each metric per method, the best of each column in bold."""
    settings = results.settings
    title = (
        f"x{settings['scale']} {settings['task']} on {settings['images']} images "
        f"({'Y channel' if settings['y_channel'] else 'RGB'}, border {settings['crop_border']})"
    )
    means = {method: results.mean(method) for method in results.methods}
    return means_table(title, results.metrics, results.models, means)


def write_json(results: Results, path: Path) -> None:
    """``{"settings", "notes", "methods": {NAME: {"mean": {...}, "images": {FILE: {...}}}}}``."""
    path.write_text(json.dumps(results.as_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(results: Results, path: Path) -> None:
    """One row per method and image, then one per method with image ``mean``; empty where n/a. The
    last two columns say what made the inputs (``inputs``: the settings' ``input_label``) and with
    which seed (``seed``: empty when nothing random made them)."""
    document = results.as_dict()["methods"]
    names = [metric.name for metric in results.metrics]
    seed = results.settings["seed"]
    provenance = [results.settings["input_label"], "" if seed is None else str(seed)]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "image", *names, "inputs", "seed"])
        for method, entry in document.items():
            rows = [*entry["images"].items(), ("mean", entry["mean"])]
            for image, values in rows:
                cells = ("" if values[name] is None else repr(values[name]) for name in names)
                writer.writerow([method, image, *cells, *provenance])


# --- images -----------------------------------------------------------------------------------


def shown_input(sample: Sample) -> Tensor:
    """The input at the target's size (nearest neighbour: each input pixel a visible block)."""
    size = sample.target.shape[-2:]
    return F.interpolate(sample.input[None], size=size, mode="nearest")[0]


def panels(sample: Sample) -> list[tuple[str, Tensor]]:
    """input | each baseline | each model | ground truth (the input once when it is a baseline)."""
    shown = [] if IDENTITY in sample.outputs else [(IDENTITY, shown_input(sample))]
    return [*shown, *sample.outputs.items(), (GROUND_TRUTH, sample.target)]


def zoom_region(sample: Sample) -> tuple[int, int, int]:
    """(top, left, side) of the square where the models' outputs differ most from each other.

    Disagreement is the per-pixel standard deviation across the model outputs (with the baselines
    added when there are fewer than two models, and the ground truth when still fewer than two),
    averaged over channels and summed over each candidate square.
    """
    candidates = [sample.outputs[name] for name in sample.models]
    if len(candidates) < 2:
        candidates += [output for name, output in sample.outputs.items() if name not in sample.models]
    if len(candidates) < 2:
        candidates.append(sample.target)
    height, width = sample.target.shape[-2:]
    side = min(height, width, max(16, min(128, min(height, width) // ZOOM_FRACTION)))
    stack = torch.stack([match_channels(x, 3) for x in candidates]).double()
    disagreement = stack.std(dim=0, unbiased=False).mean(dim=0)
    sums = F.pad(disagreement.cumsum(0).cumsum(1), (1, 0, 1, 0))
    windows = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    top, left = divmod(int(windows.argmax()), windows.shape[1])
    return top, left, side


def comparison_grid(sample: Sample, caption: str | None = None) -> Image.Image:
    """Full images side by side, labelled, with the zoom square outlined; the zoomed crops below, and
    under them, on a strip of its own, ``caption`` when given (evaluation: what made the input)."""
    shown = panels(sample)
    height, width = sample.target.shape[-2:]
    top, left, side = zoom_region(sample)
    zoom = max(1, width // side)
    strip = 0 if caption is None else LABEL_HEIGHT
    body = LABEL_HEIGHT + height + GAP + side * zoom
    canvas = Image.new("RGB", (len(shown) * width + (len(shown) - 1) * GAP, body + strip), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(13)
    if caption is not None:
        draw.text((2, body + 2), caption, fill="black", font=font)
    for index, (label, image) in enumerate(shown):
        x = index * (width + GAP)
        draw.text((x + 2, 2), label, fill="black", font=font)
        canvas.paste(to_pil(match_channels(image, 3)), (x, LABEL_HEIGHT))
        draw.rectangle(
            (x + left, LABEL_HEIGHT + top, x + left + side - 1, LABEL_HEIGHT + top + side - 1), outline=(255, 0, 0)
        )
        crop = to_pil(match_channels(image[..., top : top + side, left : left + side], 3))
        crop = crop.resize((side * zoom, side * zoom), Image.Resampling.NEAREST)
        canvas.paste(crop, (x + (width - side * zoom) // 2, LABEL_HEIGHT + height + GAP))
    return canvas


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


@dataclass
class ImageEntry:
    """One image of the report: its name, the file shown for each method and its grid (paths
    relative to the page, made of file-name-safe characters)."""

    name: str
    files: list[tuple[str, str]]
    grid: str


class ReportWriter:
    """Writes each sample's grid and per-method images as they come, then the tables and the page;
    ``caption`` goes under every grid (:func:`comparison_grid`)."""

    def __init__(self, out: Path, images: bool = True, caption: str | None = None) -> None:
        self.out = Path(out)
        self.images = images
        self.caption = caption
        self.entries: list[ImageEntry] = []
        self._slugs: set[str] = set()
        self.out.mkdir(parents=True, exist_ok=True)

    def _unique(self, name: str) -> str:
        base = slug(str(Path(name).with_suffix("")))
        candidate, count = base, 1
        while candidate in self._slugs:
            count += 1
            candidate = f"{base}-{count}"
        self._slugs.add(candidate)
        return candidate

    def add(self, sample: Sample) -> None:
        """Save the comparison grid and one PNG per method (and input, ground truth) for the slider."""
        if not self.images:
            return
        key = self._unique(sample.name)
        grid = Path("grids") / f"{key}.png"
        (self.out / grid).parent.mkdir(exist_ok=True)
        comparison_grid(sample, self.caption).save(self.out / grid)
        files = []
        for index, (label, image) in enumerate(panels(sample)):
            relative = Path("images") / key / f"{index:02d}_{slug(label)}.png"
            save_image(image, self.out / relative)
            files.append((label, relative.as_posix()))
        self.entries.append(ImageEntry(sample.name, files, grid.as_posix()))

    def finish(self, results: Results) -> dict[str, Path]:
        """Write results.json, results.csv and report.html; return their paths."""
        paths = {name: self.out / name for name in ("results.json", "results.csv", "report.html")}
        write_json(results, paths["results.json"])
        write_csv(results, paths["results.csv"])
        paths["report.html"].write_text(render_html(results, self.entries), encoding="utf-8")
        return paths


# --- the page ---------------------------------------------------------------------------------


def _score_table(results: Results, scores: Scores) -> str:
    head = "".join(f"<th>{html.escape(header(metric))}</th>" for metric in results.metrics)
    rows = []
    for method, kind, cells in score_rows(results.metrics, results.models, scores):
        shown = (f"<strong>{html.escape(c.text)}</strong>" if c.best else html.escape(c.text) for c in cells)
        rows.append(
            f"<tr><th>{html.escape(method)}</th><td>{kind}</td>"
            + "".join(f"<td>{text}</td>" for text in shown)
            + "</tr>"
        )
    return f"<table><tr><th>method</th><th>kind</th>{head}</tr>{''.join(rows)}</table>"


def _image_section(index: int, entry: ImageEntry, results: Results) -> str:
    options = "".join(
        f'<option value="{position}">{html.escape(label)}</option>' for position, (label, _) in enumerate(entry.files)
    )
    labels = [label for label, _ in entry.files]
    models = [i for i, label in enumerate(labels) if label in results.models]
    right = models[0] if models else len(labels) - 1
    left = next((i for i, label in enumerate(labels) if label in results.baselines), 0)
    scores = {method: results.scores[method][entry.name] for method in results.methods}
    grid = html.escape(entry.grid)
    return f"""
<section class="image" data-index="{index}" data-left="{left}" data-right="{right}">
<h2>{html.escape(entry.name)}</h2>
{_score_table(results, scores)}
<div class="controls">
<label>left <select class="left">{options}</select></label>
<input class="slider" type="range" min="0" max="100" value="50" aria-label="reveal">
<label>right <select class="right">{options}</select></label>
</div>
<div class="stage">
<img class="under" alt="left"><img class="over" alt="right"><div class="divider"></div>
</div>
<p><a href="{grid}"><img class="grid" loading="lazy" alt="comparison grid" src="{grid}"></a></p>
</section>"""


def _asset(name: str) -> str:
    """A file shipped in ``sr_toolkit/evaluation/assets`` (the page's stylesheet and script)."""
    assets = importlib.resources.files("sr_toolkit.evaluation").joinpath("assets")
    return assets.joinpath(name).read_text(encoding="utf-8")


def render_html(results: Results, entries: list[ImageEntry]) -> str:
    """The report page: settings, mean scores (best in bold), notes and one section per image."""
    settings = results.settings
    means = _score_table(results, {method: results.mean(method) for method in results.methods})
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in results.notes)
    facts = [
        ("data", settings["data"]),
        ("inputs", settings["inputs"]),
        *([] if settings["seed"] is None else [("seed", settings["seed"])]),
        ("scale", f"x{settings['scale']} ({settings['task']})"),
        (
            "scored on",
            f"{'Y channel (BT.601, MATLAB rgb2ycbcr)' if settings['y_channel'] else 'RGB'}, "
            f"{settings['crop_border']} px border cropped, {settings['quantized']}",
        ),
        ("images", settings["images"]),
        ("device", settings["device"]),
    ]
    facts_html = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>" for key, value in facts
    )
    payload = {"images": [{"name": entry.name, "files": entry.files} for entry in entries]}
    data = json.dumps(payload).replace("<", "\\u003c")
    sections = "".join(_image_section(index, entry, results) for index, entry in enumerate(entries))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sr-toolkit evaluation</title>
<style>
{_asset("report.css")}</style>
</head>
<body>
<h1>sr-toolkit evaluation</h1>
<table class="settings">{facts_html}</table>
<h2>Mean scores</h2>
{means}
{f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else ""}
{sections}
<pre id="selftest"></pre>
<script type="application/json" id="report-data">{data}</script>
<script>
{_asset("report.js")}</script>
</body>
</html>
"""
