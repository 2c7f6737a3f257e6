"""``curves.png``: training loss (raw and smoothed), the discriminator's loss for GAN runs, and
validation PSNR against steps, with the baseline."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from sr_toolkit.core.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SMOOTHING_WINDOW = 21
"""Logged values in the centred rolling mean drawn over each loss curve (odd)."""
D_LOSS = "loss/d_loss"
"""The discriminator's loss in GAN runs' records; it gets a panel of its own."""


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Centred rolling mean: each value replaced by the mean of itself and the ``window // 2``
    values on either side, fewer near the ends where the window is cut off (same length as
    ``values``). Raises ValueError unless ``window`` is a positive odd number."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    half = window // 2
    return [statistics.fmean(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def plot_smoothed(axis: Axes, steps: Sequence[int], values: Sequence[float], label: str) -> None:
    """``values`` against ``steps`` as a faint raw line and its centred rolling mean on top, the
    legend saying which smoothing and window."""
    (raw,) = axis.plot(steps, values, lw=0.8, alpha=0.35, label="raw")
    axis.plot(
        steps,
        rolling_mean(values, SMOOTHING_WINDOW),
        lw=1.5,
        color=raw.get_color(),
        label=f"centred mean of {SMOOTHING_WINDOW} logged values",
    )
    axis.set(xlabel="step", ylabel=label)
    axis.legend()


def plot_validation(axis: Axes, val: Sequence[dict[str, Any]]) -> None:
    """Validation PSNR of the model against steps, the latest baseline PSNR as a dashed line."""
    if val:
        axis.plot([r["step"] for r in val], [r["val/psnr"] for r in val], marker="o", label="model")
        axis.axhline(val[-1]["val/baseline_psnr"], color="gray", ls="--", label=val[-1].get("baseline", "baseline"))
        axis.legend()
    axis.set(xlabel="step", ylabel="validation PSNR (dB)")


def curves_figure(records: Sequence[dict[str, Any]]) -> Figure:
    """The figure of ``metrics.jsonl`` records: training loss | discriminator loss (only when some
    record has ``loss/d_loss``) | validation PSNR, one panel each, left to right."""
    train = [r for r in records if "loss" in r]
    adversarial = [r for r in train if D_LOSS in r]
    val = [r for r in records if "val/psnr" in r]
    panels = 3 if adversarial else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), squeeze=False)
    loss_axis, psnr_axis = axes[0][0], axes[0][-1]
    plot_smoothed(loss_axis, [r["step"] for r in train], [r["loss"] for r in train], "training loss")
    loss_axis.set_yscale("log" if train else "linear")
    if adversarial:
        plot_smoothed(
            axes[0][1], [r["step"] for r in adversarial], [r[D_LOSS] for r in adversarial], "discriminator loss"
        )
    plot_validation(psnr_axis, val)
    figure.tight_layout()
    return figure


def plot_curves(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Draw :func:`curves_figure` of ``metrics.jsonl`` records into the PNG ``path``, atomically."""
    figure = curves_figure(records)
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=90, format="png")
    finally:
        plt.close(figure)
