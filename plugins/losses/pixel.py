"""Pixel-wise losses: mean squared error, mean absolute error and the Charbonnier loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sr_toolkit.core.registry import LOSSES


@LOSSES.register("mse")
class MseLoss(nn.Module):
    """Mean squared error (L2); its optimum is PSNR's, and it tends to blur fine detail."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target)


@LOSSES.register("l1")
class L1Loss(nn.Module):
    """Mean absolute error (L1), less blurring than MSE."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output, target)


@LOSSES.register("charbonnier")
class CharbonnierLoss(nn.Module):
    """Charbonnier loss mean(sqrt((output - target)^2 + eps^2)), a smooth L1 (LapSRN)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((output - target).pow(2) + self.eps**2).mean()
