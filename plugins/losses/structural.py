"""Structural losses: 1 - SSIM and 1 - MS-SSIM, differentiable, by pytorch-msssim (data range 1)."""

from __future__ import annotations

import pytorch_msssim
import torch
from torch import nn

from sr_toolkit.core.registry import LOSSES
from sr_toolkit.evaluation.metrics import check_ms_ssim_size


@LOSSES.register("ssim")
class SsimLoss(nn.Module):
    """1 - SSIM (11x11 Gaussian window, sigma 1.5), averaged over the batch."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - pytorch_msssim.ssim(output, target, data_range=1.0, size_average=True)


@LOSSES.register("ms_ssim")
class MsSsimLoss(nn.Module):
    """1 - MS-SSIM over 5 scales; training crops need a smaller side of at least 161 pixels."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_ms_ssim_size(output)
        return 1 - pytorch_msssim.ms_ssim(output, target, data_range=1.0, size_average=True)
