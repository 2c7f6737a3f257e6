"""Evaluation of trained models and interpolation baselines on a folder of clean images.

Everything follows the conventions of SR papers, so the numbers compare with published ones:

- Inputs are made from each clean image, cropped to a multiple of the scale, by MATLAB's
  ``imresize(hr, 1/scale, 'bicubic')`` on its 8-bit values (bit-exact:
  :func:`sr_toolkit.core.resize.imresize_uint8`), or by a recipe's degradation list (each image seeded
  from its name), or read from an LR folder matched by name. Restoration models (scale 1) get the
  degradation of their own recipe.
- Inputs and the outputs of every method are rounded to 8 bits, as saved images are.
- PSNR, SSIM, MS-SSIM and MSE are computed on RGB, or with ``y_channel`` on BT.601 luma rounded
  as MATLAB's ``rgb2ycbcr`` rounds it, after shaving ``crop_border`` pixels (default: the scale).
  LPIPS is computed on RGB after the same crop.
- A grayscale image is scored on its own values: models get it as three equal channels, and the
  mean of their three output channels, rounded to 8 bits (a grayscale PNG), is scored.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.metrics import LpipsNet

from sr_toolkit.data import pairing
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.core.errors import DataError, SrToolkitError, first_line
from sr_toolkit.core.imageio import match_channels, read_image
from sr_toolkit.inference.upscaling import is_out_of_memory
from sr_toolkit.core.model_file import load_model
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.resize import imresize_8bit, modcrop
from sr_toolkit.inference.tiling import auto_tile, forward_tiled
from sr_toolkit.core.weights import WeightsUnavailableError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
"""Upscaling baselines: MATLAB's ``imresize`` of the 8-bit input, bit for bit (rounded to uint8 after
each pass: :func:`sr_toolkit.core.resize.imresize_8bit`)."""
IDENTITY = "input"
"""The restoration baseline: the degraded input itself."""
METRIC_NAMES = ("psnr", "ssim", "ms_ssim", "lpips", "mse")
AUTO_TILE_PIXELS = 2048 * 2048
"""Models run in tiles when their output would have more pixels than this."""
AUTO_TILE = 256
"""The tile side (input pixels) used when tiling is automatic."""


class EvaluationError(SrToolkitError):
    """Evaluation settings that contradict each other or the model files."""


@dataclass(frozen=True)
class Settings:
    """What to evaluate and how; None means 'derive it' (see :class:`Evaluation`)."""

    data: Path
    scale: int | None = None
    lr: Path | None = None
    degradation: Path | None = None
    models: tuple[Path, ...] = ()
    baselines: tuple[str, ...] | None = None
    metrics: tuple[str, ...] = ("psnr", "ssim")
    y_channel: bool = False
    crop_border: int | None = None
    seed: int = 0
    tile: int | None = None
    lpips_net: LpipsNet = "alex"
    lpips_weights: Path | None = None
    device: str = "auto"


@dataclass(frozen=True)
class Metric:
    """One score column: how to compute it on a pair of (1, C, H, W) images and how to show it."""

    name: str
    label: str
    higher_is_better: bool
    compute: Callable[[Tensor, Tensor], float | None]


@dataclass
class Sample:
    """One evaluated image: its input, the output of every method and the clean target, (C, H, W)."""

    name: str
    input: Tensor
    target: Tensor
    outputs: dict[str, Tensor]
    models: tuple[str, ...]


@dataclass
class Results:
    """Scores per method and image (None where a metric does not apply), with settings and notes."""

    settings: dict[str, Any]
    metrics: list[Metric]
    baselines: list[str]
    models: list[str]
    scores: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        """Baselines first, then models, in the order given."""
        return [*self.baselines, *self.models]

    def mean(self, method: str) -> dict[str, float | None]:
        """Mean of each metric over the images where it has a value (None where it has none)."""
        means: dict[str, float | None] = {}
        for metric in self.metrics:
            values = [v for image in self.scores[method].values() if (v := image[metric.name]) is not None]
            means[metric.name] = math.fsum(values) / len(values) if values else None
        return means

    def as_dict(self) -> dict[str, Any]:
        """The results.json document; infinite values (identical images) become null."""
        methods = {
            method: {
                "mean": _finite(self.mean(method)),
                "images": {image: _finite(values) for image, values in self.scores[method].items()},
            }
            for method in self.methods
        }
        return {"settings": self.settings, "notes": self.notes, "methods": methods}


def _finite(values: dict[str, float | None]) -> dict[str, float | None]:
    return {key: value if value is not None and math.isfinite(value) else None
            for key, value in values.items()}


# --- images and inputs ----------------------------------------------------------------------


def find_pairs(data: Path, scale: int, lr: Path | None = None) -> list[tuple[str, Path, Path | None]]:
    """(name, clean image, LR image or None) for every clean image under ``data``, sorted by name
    (its path under ``data``). LR files are matched by :mod:`sr_toolkit.data.pairing`'s rule; LR files
    that match no image are ignored. Raises DataError for an empty ``data``, an ambiguous name or an
    image without an LR file."""
    targets = pairing.images(data, "target")
    if not targets:
        raise DataError(f"{data}: no images found (png, jpg, bmp, tif or webp files)")
    if lr is None:
        return [(name, path, None) for name, path in targets.items()]
    found = pairing.pair(pairing.images(lr, "input"), targets, scale)
    if found.ambiguous:
        raise DataError(str(found.ambiguous[0]))
    if found.lone_targets:
        path = found.lone_targets[0]
        key = pairing.match_key(path.relative_to(data).as_posix())
        raise DataError(f"{path}: no input image named like '{key}' in {lr}")
    return list(found.pairs)


def matlab_bicubic_input(target: Tensor, scale: int) -> Tensor:
    """MATLAB's ``imresize(im2uint8(target), 1/scale, 'bicubic')`` as floats in [0, 1], (C, h, w)."""
    return imresize_8bit(target, scale=1 / scale)


def image_seed(seed: int, name: str) -> int:
    """The generator seed of one image's degradation, ``crc32("<seed>/<name>")``: the image gets the
    same input whatever else the folder holds (32 bits: CPU generators ignore higher ones)."""
    return zlib.crc32(f"{seed}/{name}".encode())


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


# --- metrics --------------------------------------------------------------------------------


def build_metrics(settings: Settings, crop: int, device: torch.device, notes: list[str]) -> list[Metric]:
    """The requested metrics; LPIPS is left out, with a note, when its weights are unavailable."""
    unknown = [name for name in settings.metrics if name not in METRIC_NAMES]
    if unknown:
        raise EvaluationError(f"metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    options = {"y_channel": settings.y_channel, "crop_border": crop}
    luma = "-Y" if settings.y_channel else ""

    def per_image(function: Callable[..., Tensor]) -> Callable[[Tensor, Tensor], float]:
        return lambda output, target: function(output, target, **options).item()

    def ms_ssim(output: Tensor, target: Tensor) -> float | None:
        if min(target.shape[-2:]) - 2 * crop < metrics.MS_SSIM_MIN_SIDE:
            return None
        return per_image(metrics.ms_ssim)(output, target)

    fidelity = {
        "psnr": Metric("psnr", f"PSNR{luma} (dB)", True, per_image(metrics.psnr)),
        "ssim": Metric("ssim", f"SSIM{luma}", True, per_image(metrics.ssim)),
        "ms_ssim": Metric("ms_ssim", f"MS-SSIM{luma}", True, ms_ssim),
        "mse": Metric("mse", f"MSE{luma} [0,1]", False, per_image(metrics.mse)),
    }
    built = []
    for name in dict.fromkeys(settings.metrics):
        if name != "lpips":
            built.append(fidelity[name])
            continue
        try:
            built.append(lpips_metric(settings, crop, device))
        except WeightsUnavailableError as exc:
            notes.append(f"lpips: column skipped (give the backbone weights with --lpips-weights FILE): "
                         f"{exc}")
    return built


def lpips_metric(settings: Settings, crop: int, device: torch.device) -> Metric:
    """LPIPS on RGB after the border crop; raises WeightsUnavailableError without the backbone."""
    model = metrics.build_lpips(settings.lpips_net, weights_path=settings.lpips_weights).to(device)

    def compute(output: Tensor, target: Tensor) -> float:
        return metrics.lpips_distance(metrics.shave(output, crop), metrics.shave(target, crop), model).item()

    label = "LPIPS" if settings.lpips_net == "alex" else f"LPIPS-{settings.lpips_net}"
    return Metric("lpips", label, False, compute)


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
            raise EvaluationError("give either --lr (input files) or --degradation (inputs made here), "
                                  "not both")
        self.recipe = load_recipe(settings.degradation) if settings.degradation is not None else None
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
        self.metrics = build_metrics(settings, self.crop, self.device, notes)
        self.results = Results(self._describe(), self.metrics, list(self.baselines), list(self.models),
                               {name: {} for name in (*self.baselines, *self.models)}, notes)
        self._too_small: list[str] = []  # images MS-SSIM could not score
        self._tiled: list[str] = []

    def _load_models(self) -> dict[str, torch.nn.Module]:
        paths = tuple(Path(p) for p in self.settings.models)
        names = model_names(paths, taken=(*INTERPOLATIONS, IDENTITY))
        return {name: load_model(path, self.device) for name, path in zip(names, paths)}

    def _path(self, name: str) -> str:
        return str(self.settings.models[list(self.models).index(name)])

    def _resolve_scale(self) -> int:
        """--scale, else the models' own scale (restoration: 1), else the degradation recipe's."""
        scale = self.settings.scale
        for name, model in self.models.items():
            info: dict[str, Any] = model.sr_info  # type: ignore[assignment]  # untyped sr_info (issue 16 item 1)
            task = info.get("task", "upscale")
            model_scale = 1 if task == "restore" else int(info["scale"])
            if scale is None:
                scale = model_scale
            elif model_scale != scale:
                given = "--scale" if self.settings.scale is not None else "the first model's scale"
                raise EvaluationError(
                    f"model '{name}' ({self._path(name)}) is a x{model_scale} {task} model, "
                    f"but {given} is {scale}"
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
                raise EvaluationError(
                    f"{self.settings.degradation} is a x{self.recipe['scale']} recipe, "
                    f"but the scale is {self.scale}"
                )
            return self.recipe["degradation"]
        if self.settings.lr is not None or self.scale > 1:
            return None
        # sr_info is set onto the module by load_model, untyped until issue 16 item 1
        own = {name: model.sr_info.get("recipe", {}).get("degradation")  # type: ignore[operator,union-attr]
               for name, model in self.models.items()}
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
        allowed = (IDENTITY,) if self.scale == 1 else INTERPOLATIONS
        chosen = self.settings.baselines
        if chosen is None:
            chosen = (IDENTITY,) if self.scale == 1 else ("bicubic",)
        wrong = [name for name in chosen if name not in allowed]
        if wrong:
            raise EvaluationError(f"baselines: {', '.join(wrong)} not available at scale {self.scale}; "
                                  f"choose from {', '.join(allowed)}")
        return tuple(dict.fromkeys(chosen))

    def _describe(self) -> dict[str, Any]:
        """The settings as results.json records them, every derived value filled in."""
        settings = self.settings
        if settings.lr is not None:
            inputs = f"files from {settings.lr} matched by name"
        elif self.degradation is not None:
            source = settings.degradation or "the models' recipe"
            inputs = f"degradation list of {source}, seeded per image by crc32('<seed>/<name>')"
        else:
            inputs = ("MATLAB imresize(uint8, 1/scale, 'bicubic') of the image cropped to a multiple "
                      "of the scale")
        return {
            "data": str(settings.data),
            "lr": None if settings.lr is None else str(settings.lr),
            "degradation_recipe": None if settings.degradation is None else str(settings.degradation),
            "degradation": self.degradation,
            "inputs": inputs,
            "scale": self.scale,
            "task": "restore" if self.scale == 1 else "upscale",
            "y_channel": settings.y_channel,
            "crop_border": self.crop,
            "quantized": "inputs and outputs rounded to 8 bits",
            "metrics": [metric.name for metric in self.metrics],
            "labels": {metric.name: metric.label for metric in self.metrics},
            "higher_is_better": {metric.name: metric.higher_is_better for metric in self.metrics},
            "baselines": list(self.baselines),
            "models": {name: self._path(name) for name in self.models},
            "model_specs": {name: model.sr_info.get("model")  # type: ignore[operator,union-attr]  # untyped sr_info
                            for name, model in self.models.items()},
            "seed": settings.seed,
            "tile": settings.tile,
            "device": str(self.device),
            "images": len(self.pairs),
        }

    def load(self, name: str, path: Path, lr_path: Path | None) -> tuple[Tensor, Tensor]:
        """The (clean target, input) of one image, (C, H, W) and (C, h, w) in [0, 1]."""
        target = read_image(path, mode="keep")
        if lr_path is not None:
            inputs = read_image(lr_path, mode="keep")
            height, width = (side * self.scale for side in inputs.shape[-2:])
            extra_h, extra_w = target.shape[-2] - height, target.shape[-1] - width
            if not (0 <= extra_h < self.scale and 0 <= extra_w < self.scale):
                raise DataError(f"{lr_path}: {inputs.shape[-2]}x{inputs.shape[-1]} does not fit {path.name} "
                                f"({target.shape[-2]}x{target.shape[-1]}) at scale {self.scale}")
            return target[..., :height, :width], inputs
        target = modcrop(target, self.scale)
        if self.degradation is None:
            return target, matlab_bicubic_input(target, self.scale)
        generator = torch.Generator().manual_seed(image_seed(self.settings.seed, name))
        degraded = build_pipeline(self.degradation)(match_channels(target, 3)[None], generator)[0]
        expected = tuple(side // self.scale for side in target.shape[-2:])
        if tuple(degraded.shape[-2:]) != expected:
            raise EvaluationError(
                f"the degradation makes a {degraded.shape[-2]}x{degraded.shape[-1]} input from {name} "
                f"({target.shape[-2]}x{target.shape[-1]}); at scale {self.scale} it should be "
                f"{expected[0]}x{expected[1]}"
            )
        return target, metrics.quantize(degraded)

    def outputs(self, name: str, inputs: Tensor, channels: int) -> dict[str, Tensor]:
        """Every method's 8-bit output for one input, with ``channels`` channels (the target's)."""
        results: dict[str, Tensor] = {}
        for baseline in self.baselines:
            if baseline == IDENTITY:
                results[baseline] = inputs
            else:  # one of INTERPOLATIONS
                results[baseline] = imresize_8bit(inputs, scale=self.scale, mode=baseline)  # type: ignore[arg-type]
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
        return {method: metrics.quantize(match_channels(metrics.quantize(output), channels))
                for method, output in results.items()}

    def score(self, name: str, output: Tensor, target: Tensor) -> dict[str, float | None]:
        """Every metric of one output against its target."""
        values: dict[str, float | None] = {}
        for metric in self.metrics:
            try:
                values[metric.name] = metric.compute(output[None], target[None])
            except ValueError as exc:
                raise EvaluationError(f"{name}: {metric.name}: {exc}") from exc
            if values[metric.name] is None and name not in self._too_small:
                self._too_small.append(name)
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
        notes = []
        if self._too_small:
            rest = "its mean covers the other images" if len(self._too_small) < len(self.pairs) else "no mean"
            notes.append(f"ms_ssim: not computed for {len(self._too_small)} of {len(self.pairs)} images "
                         f"whose shorter side (after crop_border) is under {metrics.MS_SSIM_MIN_SIDE} px: "
                         f"{', '.join(self._too_small)}; {rest}")
        for metric in self.metrics:
            infinite = sorted({image for method in self.results.methods
                               for image, values in self.results.scores[method].items()
                               if (value := values[metric.name]) is not None and math.isinf(value)})
            if infinite:
                notes.append(f"{metric.name}: infinite (output identical to the target) on "
                             f"{', '.join(infinite)}; written as null in results.json")
        if self._tiled:
            tile = self.settings.tile or AUTO_TILE
            notes.append(f"models ran in tiles of {tile} px on {', '.join(self._tiled)}")
        return notes
