"""PSNR, SSIM and MS-SSIM: full-reference fidelity metrics on 8-bit-quantised images."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_toolkit.evaluation import metrics
from sr_toolkit.core.registry import METRICS


class _FidelityMetric:
    """A metric of :mod:`sr_toolkit.evaluation.metrics` with the literature's options: luma only, border crop."""

    base_name: str
    higher_is_better = True
    _compute: Callable[..., torch.Tensor]  # a function of sr_toolkit.evaluation.metrics, as a staticmethod

    def __init__(self, y_channel: bool = False, crop_border: int = 0) -> None:
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        self.y_channel = y_channel
        self.crop_border = crop_border
        self.name = f"{self.base_name}_y" if y_channel else self.base_name

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One value per image of the batch, shape (N,)."""
        return self._compute(output, target, y_channel=self.y_channel, crop_border=self.crop_border)


@METRICS.register("psnr")
class Psnr(_FidelityMetric):
    """Peak signal-to-noise ratio in dB on 8-bit levels; y_channel scores MATLAB's BT.601 luma."""

    base_name = "psnr"
    _compute = staticmethod(metrics.psnr)


@METRICS.register("ssim")
class Ssim(_FidelityMetric):
    """Structural similarity (Wang et al. 2004, 11x11 Gaussian window, valid filtering)."""

    base_name = "ssim"
    _compute = staticmethod(metrics.ssim)


@METRICS.register("ms_ssim")
class MsSsim(_FidelityMetric):
    """Multi-scale SSIM (pytorch-msssim); images need a smaller side of at least 161 pixels."""

    base_name = "ms_ssim"
    _compute = staticmethod(metrics.ms_ssim)
