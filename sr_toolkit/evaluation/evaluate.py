"""Evaluation of trained models and interpolation baselines on a folder of clean images.

Everything follows the conventions of SR papers, so the numbers compare with published ones:

- Inputs are made from each clean image, cropped to a multiple of the scale, by MATLAB's
  ``imresize(hr, 1/scale, 'bicubic')`` on its 8-bit values (bit-exact:
  :func:`sr_toolkit.core.resize.imresize_uint8`), or by a recipe's degradation list (each image's
  generator seeded from the seed and its name, so every method gets the same input), or read from an
  LR folder matched by name. Restoration models (scale 1) get the degradation of their own recipe.
- Inputs and the outputs of every method are rounded to 8 bits, as saved images are.
- PSNR, SSIM, MS-SSIM and MSE are computed on RGB, or with ``y_channel`` on BT.601 luma rounded
  as MATLAB's ``rgb2ycbcr`` rounds it, after shaving ``crop_border`` pixels (default: the scale).
  LPIPS is computed on RGB after the same crop. Any metric registered in ``METRICS`` can be named
  (:mod:`sr_toolkit.evaluation.scoring` says what a metric plugin declares).
- A grayscale image is scored on its own values: models get it as three equal channels, and the
  mean of their three output channels, rounded to 8 bits (a grayscale PNG), is scored.

This module resolves the settings and runs the models; :mod:`~sr_toolkit.evaluation.inputs` pairs the
images with their inputs, :mod:`~sr_toolkit.evaluation.baselines` makes the baselines,
:mod:`~sr_toolkit.evaluation.scoring` builds the metrics and holds the results, and
:mod:`~sr_toolkit.evaluation.report` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.config.shipped import find_recipe
from sr_toolkit.core.errors import first_line
from sr_toolkit.core.imageio import match_channels, quantize
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import load_model
from sr_toolkit.evaluation.baselines import (
    IDENTITY,
    INTERPOLATIONS,
    available_baselines,
    baseline_output,
    default_baseline,
)
from sr_toolkit.evaluation.inputs import EvaluationError, find_pairs, load_pair
from sr_toolkit.evaluation.scoring import Column, Results, Sample, build_columns, too_small_note
from sr_toolkit.inference.tiling import auto_tile, forward_tiled
from sr_toolkit.inference.upscaling import is_out_of_memory

AUTO_TILE_PIXELS = 2048 * 2048
"""Models run in tiles when their output would have more pixels than this."""
AUTO_TILE = 256
"""The tile side (input pixels) used when tiling is automatic."""


@dataclass(frozen=True)
class Settings:
    """What to evaluate and how; None means 'derive it' (see :class:`Evaluation`)."""

    data: Path
    scale: int | None = None
    lr: Path | None = None
    degradation: str | Path | None = None
    """A recipe file or a shipped recipe's name (:func:`sr_toolkit.config.shipped.find_recipe`)."""
    models: tuple[Path, ...] = ()
    baselines: tuple[str, ...] | None = None
    metrics: tuple[str, ...] = ("psnr", "ssim", "hf_ratio")
    y_channel: bool = False
    crop_border: int | None = None
    seed: int = 0
    tile: int | None = None
    lpips_net: str = "alex"
    lpips_weights: Path | None = None
    device: str = "auto"


# --- models ---------------------------------------------------------------------------------


def model_names(paths: tuple[Path, ...], taken: tuple[str, ...] = ()) -> list[str]:
    """A unique name per model file: its stem, or its run folder's name for the ``model.safetensors``
    training writes; where names clash (runs/a/x4.safetensors and runs/b/x4.safetensors) or equal a
    name in ``taken``, its parent folder's name, then as many more folders as it takes."""
    folders = [path.resolve().parent.parts for path in paths]
    depths = [1 if path.stem == "model" else 0 for path in paths]

    def name(index: int) -> str:
        depth = depths[index]
        return "/".join(folders[index][-depth:]) if depth else paths[index].stem

    while True:
        names = [name(index) for index in range(len(paths))]
        clashing = [i for i, n in enumerate(names) if names.count(n) > 1 or n in taken]
        if not clashing:
            return names
        if any(depths[i] >= len(folders[i]) - 1 for i in clashing):
            raise EvaluationError(f"models: cannot tell {paths[clashing[0]]} apart from the other names")
        for index in clashing:
            depths[index] += 1


@torch.inference_mode()
def run_model(model: torch.nn.Module, x: Tensor, scale: int, tile: int | None = None) -> tuple[Tensor, bool]:
    """The model's output for a batch ``x`` (kept where ``x`` is) and whether it ran in tiles.

    ``tile`` None tiles automatically (tiles of :data:`AUTO_TILE`) above :data:`AUTO_TILE_PIXELS`
    output pixels, for models whose tiled output equals their whole-image output
    (:func:`sr_toolkit.inference.tiling.auto_tile`); 0 never tiles. :func:`sr_toolkit.inference.tiling.forward_tiled`
    pads the input of a model with a ``size_multiple`` and crops the output back.
    """
    if tile is None:
        tile = auto_tile(model, x.shape[-2], x.shape[-1], scale=scale, max_pixels=AUTO_TILE_PIXELS, tile=AUTO_TILE)
    tile = tile or None
    # One tile needs no overlap (and no warning about a model without a declared halo).
    output = forward_tiled(model, x, scale=scale, tile=tile, overlap=None if tile else 0)
    return output.float(), tile is not None


# --- the evaluation -------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Evaluation:
    """Resolves and checks :class:`Settings` up front (models, scale, images, inputs, baselines,
    metrics), then scores every image with :meth:`samples`, gathering the scores in :attr:`results`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = pick_device(settings.device)
        if settings.tile is not None and settings.tile < 0:
            raise EvaluationError(f"tile: expected a positive size or 0 (never tile), got {settings.tile}")
        if settings.lr is not None and settings.degradation is not None:
            raise EvaluationError(
                f"--lr {settings.lr} and --degradation {settings.degradation}: give one "
                "(input files, or inputs made from --data), not both"
            )
        self.recipe_path = None if settings.degradation is None else find_recipe(settings.degradation)
        self.recipe = None if self.recipe_path is None else load_recipe(self.recipe_path)
        self.models = self._load_models()
        self.scale = self._resolve_scale()
        self.pairs = find_pairs(Path(settings.data), self.scale, settings.lr)
        self.degradation = self._resolve_degradation()
        self.crop = self.scale if settings.crop_border is None else settings.crop_border
        if self.crop < 0:
            raise EvaluationError(f"crop_border: expected >= 0, got {self.crop}")
        self.baselines = self._resolve_baselines()
        if not self.baselines and not self.models:
            raise EvaluationError("nothing to evaluate: give --models, --baselines or both")
        notes: list[str] = []
        self.metrics = self._build_metrics(notes)
        self.results = Results(
            self._describe(),
            self.metrics,
            list(self.baselines),
            list(self.models),
            {name: {} for name in (*self.baselines, *self.models)},
            notes,
        )
        self._too_small: dict[str, list[str]] = {metric.name: [] for metric in self.metrics}
        self._tiled: list[str] = []

    def _build_metrics(self, notes: list[str]) -> list[Column]:
        """The registered metrics ``settings.metrics`` names; LPIPS with ``--lpips-net`` and ``--lpips-weights``."""
        settings = self.settings
        weights = None if settings.lpips_weights is None else str(settings.lpips_weights)
        return build_columns(
            settings.metrics,
            settings.y_channel,
            self.crop,
            notes,
            options={"lpips": {"net": settings.lpips_net, "weights_path": weights}},
            hints={"lpips": "give the backbone weights with --lpips-weights FILE"},
            device=self.device,
        )

    def _load_models(self) -> dict[str, torch.nn.Module]:
        paths = tuple(Path(p) for p in self.settings.models)
        names = model_names(paths, taken=(*INTERPOLATIONS, IDENTITY))
        return {name: load_model(path, self.device) for name, path in zip(names, paths)}

    def model_lines(self) -> list[str]:
        """One line per model: its name, file, architecture and what it does (``upscale x4``, ``restore``)."""
        lines = []
        for name, model in self.models.items():
            contract = contract_of(model)
            task = f"upscale x{contract.scale}" if contract.task == "upscale" else contract.task
            lines.append(f"model {name}: {self._path(name)}: {contract.architecture}, {task}")
        return lines

    def _path(self, name: str) -> str:
        return str(self.settings.models[list(self.models).index(name)])

    def _resolve_scale(self) -> int:
        """--scale, else the models' own scale (restoration: 1), else the degradation recipe's."""
        scale = self.settings.scale
        for name, model in self.models.items():
            task = contract_of(model).task
            model_scale = 1 if task == "restore" else contract_of(model).scale
            if scale is None:
                scale = model_scale
            elif model_scale != scale:
                given = "--scale" if self.settings.scale is not None else "the first model's scale"
                raise EvaluationError(
                    f"model '{name}' ({self._path(name)}) is a x{model_scale} {task} model, but {given} is {scale}"
                )
        if scale is None and self.recipe is not None:
            scale = int(self.recipe["scale"])
        if scale is None:
            raise EvaluationError("give --scale (no model file or degradation recipe says it)")
        if scale < 1:
            raise EvaluationError(f"scale: expected a positive integer, got {scale}")
        return scale

    def _resolve_degradation(self) -> list[Any] | None:
        """The degradation specs that make the inputs; None for MATLAB bicubic or LR files."""
        if self.recipe is not None:
            if self.recipe["scale"] != self.scale:
                given = "--scale is " if self.settings.scale is not None else "the models are x"
                raise EvaluationError(
                    f"--degradation {self.settings.degradation}: a x{self.recipe['scale']} recipe "
                    f"(scale: {self.recipe['scale']}), but {given}{self.scale}"
                )
            return self.recipe["degradation"]
        if self.settings.lr is not None or self.scale > 1:
            return None
        own = {name: (contract_of(model).recipe or {}).get("degradation") for name, model in self.models.items()}
        specs = [spec for spec in own.values() if spec]
        if not specs:
            raise EvaluationError(
                "at scale 1 the inputs need a degradation: give --degradation RECIPE.yaml, --lr DIR, "
                "or a restoration model whose recipe has one"
            )
        if any(spec != specs[0] for spec in specs):
            raise EvaluationError(
                f"the models were trained with different degradations ({', '.join(own)}); "
                "choose one with --degradation RECIPE.yaml"
            )
        return specs[0]

    def _resolve_baselines(self) -> tuple[str, ...]:
        allowed = available_baselines(self.scale)
        chosen = self.settings.baselines
        if chosen is None:
            chosen = (default_baseline(self.scale),)
        wrong = [name for name in chosen if name not in allowed]
        if wrong:
            raise EvaluationError(
                f"baselines: {', '.join(wrong)} not available at scale {self.scale}; choose from {', '.join(allowed)}"
            )
        return tuple(dict.fromkeys(chosen))

    @property
    def input_seed(self) -> int | None:
        """The seed the inputs were made with; None when no degradation makes them."""
        return None if self.degradation is None else self.settings.seed

    @property
    def input_label(self) -> str:
        """What made the inputs, in a few words (the grids' caption, results.csv's ``inputs``)."""
        settings = self.settings
        if settings.lr is not None:
            return f"files from {settings.lr}"
        if self.degradation is None:
            return f"MATLAB bicubic x1/{self.scale}"
        return f"degradation of {settings.degradation}" if settings.degradation else "the models' own degradation"

    def caption(self) -> str:
        """One line under each comparison grid: what made the inputs, and the seed."""
        seed = "" if self.input_seed is None else f", seed {self.input_seed}"
        return f"input: {self.input_label}{seed}"

    def _describe(self) -> dict[str, Any]:
        """The settings as results.json records them, every derived value filled in."""
        settings = self.settings
        if settings.lr is not None:
            inputs = f"files from {settings.lr} matched by name"
        elif self.degradation is not None:
            source = str(settings.degradation or "the models' recipe")
            if self.recipe_path is not None and str(self.recipe_path) != source:
                source += f" ({self.recipe_path})"
            inputs = (
                f"degradation list of {source}, seed {settings.seed}: "
                f"each image's generator seeded with crc32('{settings.seed}/<file>')"
            )
        else:
            inputs = "MATLAB imresize(uint8, 1/scale, 'bicubic') of the image cropped to a multiple of the scale"
        return {
            "data": str(settings.data),
            "lr": None if settings.lr is None else str(settings.lr),
            "degradation_recipe": None if settings.degradation is None else str(settings.degradation),
            "degradation_recipe_file": None if self.recipe_path is None else str(self.recipe_path),
            "degradation": self.degradation,
            "inputs": inputs,
            "input_label": self.input_label,
            "scale": self.scale,
            "task": "restore" if self.scale == 1 else "upscale",
            "y_channel": settings.y_channel,
            "crop_border": self.crop,
            "quantized": "inputs and outputs rounded to 8 bits",
            "metrics": [metric.name for metric in self.metrics],
            "labels": {metric.name: metric.label for metric in self.metrics},
            "higher_is_better": {metric.name: metric.higher_is_better for metric in self.metrics},
            "ideal": {metric.name: metric.ideal for metric in self.metrics if metric.ideal is not None},
            "baselines": list(self.baselines),
            "models": {name: self._path(name) for name in self.models},
            "model_specs": {name: contract_of(model).spec for name, model in self.models.items()},
            "seed": self.input_seed,
            "tile": settings.tile,
            "device": str(self.device),
            "images": len(self.pairs),
        }

    def load(self, name: str, path: Path, lr_path: Path | None) -> tuple[Tensor, Tensor]:
        """The (clean target, input) of one image, (C, H, W) and (C, h, w) in [0, 1]."""
        return load_pair(name, path, lr_path, self.scale, self.degradation, self.settings.seed)

    def outputs(self, name: str, inputs: Tensor, channels: int) -> dict[str, Tensor]:
        """Every method's 8-bit output for one input, with ``channels`` channels (the target's)."""
        results: dict[str, Tensor] = {}
        for baseline in self.baselines:
            results[baseline] = baseline_output(baseline, inputs, self.scale)
        batch = match_channels(inputs, 3)[None]
        for model_name, model in self.models.items():
            try:
                output, tiled = run_model(model, batch, self.scale, self.settings.tile)
            except (RuntimeError, ValueError) as exc:
                hint = " (try --tile 256)" if is_out_of_memory(exc) else ""
                message = f"model '{model_name}' failed on {name}: {first_line(exc)}{hint}"
                raise EvaluationError(message) from exc
            if tiled and name not in self._tiled:
                self._tiled.append(name)
            results[model_name] = output[0].cpu()
        return {method: quantize(match_channels(quantize(output), channels)) for method, output in results.items()}

    def score(self, name: str, output: Tensor, target: Tensor) -> dict[str, float | None]:
        """Every metric of one output against its target."""
        values: dict[str, float | None] = {}
        for metric in self.metrics:
            try:
                values[metric.name] = metric.score(output[None], target[None])
            except ValueError as exc:
                raise EvaluationError(f"{name}: {metric.name}: {exc}") from exc
            if values[metric.name] is None and name not in self._too_small[metric.name]:
                self._too_small[metric.name].append(name)
        return values

    def samples(self) -> Iterator[Sample]:
        """Score each image in turn, yielding it with every method's output; fills :attr:`results`."""
        for name, path, lr_path in self.pairs:
            target, inputs = self.load(name, path, lr_path)
            outputs = self.outputs(name, inputs, target.shape[0])
            for method, output in outputs.items():
                self.results.scores[method][name] = self.score(name, output, target)
            yield Sample(name, inputs, target, outputs, tuple(self.models))
        self.results.notes.extend(self._closing_notes())

    def run(self) -> Results:
        """Score every image and return the results."""
        for _ in self.samples():
            pass
        return self.results

    def _closing_notes(self) -> list[str]:
        notes = [
            too_small_note(metric, self._too_small[metric.name], len(self.pairs))
            for metric in self.metrics
            if self._too_small[metric.name]
        ]
        for metric in self.metrics:
            infinite = sorted(
                {
                    image
                    for method in self.results.methods
                    for image, values in self.results.scores[method].items()
                    if (value := values[metric.name]) is not None and math.isinf(value)
                }
            )
            if infinite:
                notes.append(
                    f"{metric.name}: infinite ({metric.metric.infinite_means}) on "
                    f"{', '.join(infinite)}; written as null in results.json"
                )
        if self._tiled:
            tile = self.settings.tile or AUTO_TILE
            notes.append(f"models ran in tiles of {tile} px on {', '.join(self._tiled)}")
        return notes
