"""PSNR, SSIM, MS-SSIM and MSE, full-reference fidelity metrics on 8-bit-quantised images, and the HF
ratio, which says how much fine detail an output has next to its target."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_toolkit.core.registry import METRICS
from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.scoring import Metric


class _FidelityMetric(Metric):
    """A metric of :mod:`sr_toolkit.evaluation.metrics` with the literature's options: luma only, border crop."""

    base_name: str
    _compute: Callable[..., torch.Tensor]  # a function of sr_toolkit.evaluation.metrics, as a staticmethod

    def __init__(self, y_channel: bool = False, crop_border: int = 0) -> None:
        super().__init__(y_channel=y_channel, crop_border=crop_border)
        self.name = f"{self.base_name}_y" if y_channel else self.base_name

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One value per image of the batch, shape (N,)."""
        return self._compute(output, target, y_channel=self.y_channel, crop_border=self.crop_border)


@METRICS.register("psnr")
class Psnr(_FidelityMetric):
    """Peak signal-to-noise ratio in dB on 8-bit levels; y_channel scores MATLAB's BT.601 luma."""

    base_name = "psnr"
    label = "PSNR{y} (dB)"
    higher_is_better = True
    digits = 2
    _compute = staticmethod(metrics.psnr)


@METRICS.register("ssim")
class Ssim(_FidelityMetric):
    """Structural similarity (Wang et al. 2004, 11x11 Gaussian window, valid filtering)."""

    base_name = "ssim"
    label = "SSIM{y}"
    higher_is_better = True
    _compute = staticmethod(metrics.ssim)


@METRICS.register("ms_ssim")
class MsSsim(_FidelityMetric):
    """Multi-scale SSIM (pytorch-msssim); images need a smaller side of at least 161 pixels."""

    base_name = "ms_ssim"
    label = "MS-SSIM{y}"
    higher_is_better = True
    min_side = metrics.MS_SSIM_MIN_SIDE
    _compute = staticmethod(metrics.ms_ssim)


@METRICS.register("mse")
class Mse(_FidelityMetric):
    """Mean squared error on [0, 1] values of 8-bit levels, lower is better."""

    base_name = "mse"
    label = "MSE{y} [0,1]"
    higher_is_better = False
    digits = 6
    _compute = staticmethod(metrics.mse)


@METRICS.register("hf_ratio")
class HfRatio(_FidelityMetric):
    """High-frequency (Laplacian) energy of the output over the target's: 1 = as much detail, < 1 smoother."""

    base_name = "hf_ratio"
    label = "HF ratio{y}"
    higher_is_better = None
    ideal = 1.0
    infinite_means = "a flat target (no high-frequency energy) and an output with some"
    min_side = 3
    _compute = staticmethod(metrics.hf_ratio)
