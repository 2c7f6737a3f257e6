"""``curves.png``: the smoothed loss line and the discriminator's panel for GAN runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from sr_toolkit.training.plots import SMOOTHING_WINDOW, curves_figure, plot_curves, rolling_mean


def test_rolling_mean_is_centred_and_cut_off_at_the_ends() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert rolling_mean(values, 3) == [1.5, 2.0, 3.0, 17 / 3, 7.0]
    assert rolling_mean(values, 5) == [2.0, 2.5, 4.0, 4.75, 17 / 3]
    assert rolling_mean(values, 1) == values
    assert rolling_mean(values, 99) == [4.0] * 5
    assert rolling_mean([], 3) == []


@pytest.mark.parametrize("window", [0, 2, -1])
def test_rolling_mean_refuses_even_or_empty_windows(window: int) -> None:
    with pytest.raises(ValueError, match="positive odd"):
        rolling_mean([1.0, 2.0], window)


def records(gan: bool) -> list[dict]:
    """Training records every 10 steps (with D's loss for a GAN) and two validations."""
    train = []
    for step in range(10, 410, 10):
        record = {"step": step, "loss": 1.0 / step + (step % 30) * 1e-3}
        if gan:
            record["loss/d_loss"] = 0.5 + (step % 20) * 0.01
        train.append(record)
    val = [
        {"step": step, "baseline": "bicubic", "val/psnr": psnr, "val/baseline_psnr": 25.0}
        for step, psnr in ((200, 26.0), (400, 27.0))
    ]
    return train + val


def lines(axis) -> dict[str, list[float]]:
    return {line.get_label(): list(line.get_ydata()) for line in axis.get_lines()}


def test_loss_panel_draws_raw_and_smoothed_lines() -> None:
    figure = curves_figure(records(gan=False))
    try:
        assert len(figure.axes) == 2
        loss_axis, psnr_axis = figure.axes
        losses = [r["loss"] for r in records(gan=False) if "loss" in r]
        smoothed = f"centred mean of {SMOOTHING_WINDOW} logged values"
        assert lines(loss_axis) == {"raw": losses, smoothed: rolling_mean(losses, SMOOTHING_WINDOW)}
        assert [t.get_text() for t in loss_axis.get_legend().get_texts()] == ["raw", smoothed]
        assert loss_axis.get_yscale() == "log"
        assert psnr_axis.get_ylabel() == "validation PSNR (dB)"
        assert lines(psnr_axis)["model"] == [26.0, 27.0]
    finally:
        plt.close(figure)


def test_gan_records_add_a_discriminator_panel() -> None:
    figure = curves_figure(records(gan=True))
    try:
        assert [axis.get_ylabel() for axis in figure.axes] == [
            "training loss",
            "discriminator loss",
            "validation PSNR (dB)",
        ]
        d_losses = [r["loss/d_loss"] for r in records(gan=True) if "loss" in r]
        assert lines(figure.axes[1]) == {
            "raw": d_losses,
            f"centred mean of {SMOOTHING_WINDOW} logged values": rolling_mean(d_losses, SMOOTHING_WINDOW),
        }
        assert list(figure.axes[1].get_lines()[0].get_xdata()) == list(range(10, 410, 10))
    finally:
        plt.close(figure)


@pytest.mark.parametrize(("gan", "width"), [(False, 900), (True, 1350)])
def test_plot_curves_writes_one_png_panel_per_plot(tmp_path: Path, gan: bool, width: int) -> None:
    path = tmp_path / "curves.png"
    plot_curves(records(gan), path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (width, 342)  # 5 in per panel by 3.8 in, 90 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
