"""``curves.png``: training loss and validation PSNR against steps, with the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from sr_toolkit.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Draw the loss and validation curves found in ``metrics.jsonl`` records, atomically."""
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val/psnr" in r]
    figure, (loss_axis, psnr_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    loss_axis.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    loss_axis.set(xlabel="step", ylabel="training loss", yscale="log" if train else "linear")
    if val:
        steps = [r["step"] for r in val]
        psnr_axis.plot(steps, [r["val/psnr"] for r in val], marker="o", label="model")
        psnr_axis.axhline(val[-1]["val/baseline_psnr"], color="gray", ls="--",
                          label=val[-1].get("baseline", "baseline"))
        psnr_axis.legend()
    psnr_axis.set(xlabel="step", ylabel="validation PSNR (dB)")
    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=90, format="png")
    finally:
        plt.close(figure)
