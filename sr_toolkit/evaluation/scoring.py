"""Metrics by registry name: what a metric plugin declares, and how evaluation and validation build them.

A metric plugin is a subclass of :class:`Metric` registered in :data:`sr_toolkit.core.registry.METRICS`::

    @METRICS.register("sharpness_gap")
    class SharpnessGap(Metric):
        '''Difference in mean gradient magnitude (one line for 'sr-toolkit list').'''

        label = "Sharpness gap{y}"   # the column heading; "{y}" becomes "-Y" when scored on luma
        higher_is_better = False

        def compute(self, output, target):  # (N, C, H, W) in [0, 1] -> (N,)
            ...

Evaluation (``--metrics NAME...``) and validation (``validation.metrics``) build each named metric with
``y_channel`` and ``crop_border`` (and its own options, such as LPIPS's backbone), then call it on
8-bit-quantised (1, C, H, W) images. An image whose shorter side after the crop is under
:attr:`Metric.min_side` is not scored (n/a, with a note); a metric whose weights cannot be found
(:class:`~sr_toolkit.core.weights.WeightsUnavailableError`) is left out with a one-line note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import METRICS, parameters
from sr_toolkit.core.weights import WeightsUnavailableError


class Metric:
    """Base of metric plugins: one score per image of a batch, and how to show it.

    A subclass declares, as class attributes:

    - ``label``: the column heading, e.g. ``"PSNR{y} (dB)"``; ``{y}`` becomes ``-Y`` on luma, else nothing.
    - ``higher_is_better``: which way is better (the best value of a column is shown in bold); None for
      a metric where neither is, which then declares ``ideal``.
    - ``ideal``: with ``higher_is_better`` None, the value an exact output scores (a positive number: the
      HF ratio's 1); the best value of a column is then the one closest to it on a log scale, so 0.5
      and 2 are equally far from 1.
    - ``infinite_means``: what an infinite score means, for the note that reports it (PSNR's: the
      output is identical to the target).
    - ``digits``: decimals shown in tables (4 unless declared).
    - ``luma``: True when ``y_channel`` makes it score BT.601 luma; False when it always scores RGB (LPIPS).
    - ``min_side``: the smallest image side, after the border crop, it can score (MS-SSIM: 161).
    - ``needs_weights``: True when building it loads pretrained weights that may be unavailable offline.

    and implements :meth:`compute`. ``y_channel`` and ``crop_border`` arrive as constructor arguments;
    a subclass that takes more options accepts them as keyword arguments of its own ``__init__``.
    """

    label: str
    higher_is_better: bool | None
    ideal: ClassVar[float | None] = None
    infinite_means: ClassVar[str] = "output identical to the target"
    digits: ClassVar[int] = 4
    luma: ClassVar[bool] = True
    min_side: ClassVar[int] = 1
    needs_weights: ClassVar[bool] = False

    def __init__(self, y_channel: bool = False, crop_border: int = 0) -> None:
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        self.y_channel = y_channel and self.luma
        self.crop_border = crop_border

    @property
    def heading(self) -> str:
        """The label as shown: ``PSNR-Y (dB)`` on luma, ``PSNR (dB)`` on RGB."""
        return self.label.format(y="-Y" if self.y_channel else "")

    def to(self, device: torch.device) -> Metric:
        """Compute on ``device`` whatever device the images are on (a metric with a network moves it
        there); the default computes where the images are. Returns the metric."""
        return self

    def compute(self, output: Tensor, target: Tensor) -> Tensor:
        """One value per image of (N, C, H, W) batches in [0, 1] (C = 1 or 3), shape (N,); raises
        ValueError for images it cannot score."""
        raise NotImplementedError

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """:meth:`compute`: one value per image, shape (N,)."""
        return self.compute(output, target)


@dataclass(frozen=True)
class Column:
    """One score column: the registry name it is keyed by, and the built metric."""

    name: str
    metric: Metric

    @property
    def label(self) -> str:
        return self.metric.heading

    @property
    def higher_is_better(self) -> bool | None:
        return self.metric.higher_is_better

    @property
    def ideal(self) -> float | None:
        return self.metric.ideal

    @property
    def digits(self) -> int:
        return self.metric.digits

    def fits(self, image: Tensor) -> bool:
        """Whether a (..., H, W) image is large enough to score after the border crop."""
        return min(image.shape[-2:]) - 2 * self.metric.crop_border >= self.metric.min_side

    def score(self, output: Tensor, target: Tensor) -> float | None:
        """The value for one pair of (1, C, H, W) images; None when the image is too small."""
        if not self.fits(target):
            return None
        return float(self.metric(output, target).item())


def build_columns(
    names: Iterable[str],
    y_channel: bool,
    crop_border: int,
    notes: list[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    hints: Mapping[str, str] | None = None,
    device: torch.device | None = None,
) -> list[Column]:
    """The metrics ``names`` (registry names, duplicates dropped) built with the scoring options.

    ``options`` maps a metric name to extra constructor arguments (e.g. LPIPS's ``net``); ``y_channel``
    and ``crop_border`` go to every metric that takes them. A metric whose weights are unavailable is
    left out with a note in ``notes`` when it declares ``needs_weights`` (``hints`` maps its name to what
    the user can do about it).
    ``device``: where metrics with a network compute (None: where the images are).
    Unknown names, bad arguments and a registered class that is no :class:`Metric` raise
    :class:`~sr_toolkit.core.errors.RegistryError`.
    """
    columns = []
    for name in dict.fromkeys(names):
        problem = metric_class_problem(name)
        if problem:
            raise RegistryError(problem)
        factory = METRICS.get(name).factory
        accepted = parameters(factory)
        given = {"y_channel": y_channel, "crop_border": crop_border, **(options or {}).get(name, {})}
        spec = {"type": name, **{key: value for key, value in given.items() if accepted is None or key in accepted}}
        try:
            metric = METRICS.build(spec, where=f"metrics.{name}")
        except WeightsUnavailableError as exc:
            if not getattr(factory, "needs_weights", False):  # a Metric: metric_class_problem said so
                raise
            cause = exc.__cause__ if isinstance(exc.__cause__, WeightsUnavailableError) else exc
            hint = f" ({hints[name]})" if hints and name in hints else ""
            notes.append(f"{name}: column skipped{hint}: {cause}")
            continue
        columns.append(Column(name, metric if device is None else metric.to(device)))
    return columns


def metric_class_problem(name: str) -> str | None:
    """What keeps the registered metric ``name`` from being used, or None: it must be a subclass of
    :class:`Metric` declaring ``label`` (a str) and ``higher_is_better`` (a bool, or None with a
    positive ``ideal``)."""
    factory = METRICS.get(name).factory
    where = f"metric '{name}' ({factory.__module__}.{factory.__qualname__})"
    if not (isinstance(factory, type) and issubclass(factory, Metric)):
        return f"{where} is not a subclass of sr_toolkit.evaluation.scoring.Metric"
    if not isinstance(getattr(factory, "label", None), str):
        return f"{where} declares no label (str): see sr_toolkit.evaluation.scoring.Metric"
    direction = getattr(factory, "higher_is_better", ...)
    if direction is None:
        ideal = getattr(factory, "ideal", None)
        if isinstance(ideal, bool) or not isinstance(ideal, (int, float)) or not ideal > 0:
            return (
                f"{where} declares higher_is_better None but no positive ideal (got {ideal!r}): "
                "see sr_toolkit.evaluation.scoring.Metric"
            )
    elif not isinstance(direction, bool):
        return f"{where} declares no higher_is_better (bool): see sr_toolkit.evaluation.scoring.Metric"
    return None


def validation_metrics_problem(names: list[str]) -> str | None:
    """What is wrong with a recipe's ``validation.metrics``, or None: every name must be registered,
    and ``psnr`` must be among them (training keeps the model of the best validation PSNR)."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        return (
            f"unknown metric {', '.join(map(repr, unknown))}; choose from {', '.join(METRICS.names())} "
            "(or add the module that registers it to 'plugins:')"
        )
    problems = [problem for name in names if (problem := metric_class_problem(name))]
    if problems:
        return problems[0]
    if "psnr" not in names:
        return "must include 'psnr' (training keeps the model of the best validation PSNR)"
    return None


def too_small_note(column: Column, images: list[str], total: int) -> str:
    """The note for the images a column could not score (smaller than its ``min_side``)."""
    rest = "its mean covers the other images" if len(images) < total else "no mean"
    return (
        f"{column.name}: not computed for {len(images)} of {total} images whose shorter side "
        f"(after crop_border) is under {column.metric.min_side} px: {', '.join(images)}; {rest}"
    )


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
    metrics: list[Column]
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
            values = [value for v in self.scores[method].values() if (value := v[metric.name]) is not None]
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
    return {key: value if value is not None and math.isfinite(value) else None for key, value in values.items()}
