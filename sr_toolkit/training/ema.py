"""The exponential moving average (EMA) of a model's weights that training deploys.

torch's ``get_ema_multi_avg_fn(decay)`` averages with a fixed decay from the first update, so the average
starts as the randomly initialised weights and forgets them slowly: at decay 0.999 they still make up
37 % of it after 1,000 updates. A network with a bicubic or nearest skip connection hides this (its random
body adds little to the upscale); one without a skip (SPAN, the Swin family) deploys noise for the first
thousands of steps. The decay here warms up as TensorFlow's ``tf.train.ExponentialMovingAverage`` does
with ``num_updates``: after ``n`` updates it is ``min(decay, (1 + n) / (10 + n))``, so the start is
forgotten quickly and the configured decay holds from ``9 / (1 - decay) - 10`` updates on (8,990 at 0.999).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def warmed_up_decay(decay: float, updates: Tensor) -> Tensor:
    """The decay used after ``updates`` earlier updates (a float tensor): ``min(decay, (1 + n) / (10 + n))``."""
    return ((1 + updates) / (10 + updates)).clamp(max=decay)


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An ``AveragedModel`` of ``model``'s parameters and buffers with the warmed-up ``decay`` (in (0, 1)).
    The update stays on the model's device (no host sync); integer buffers (batch norm's counter) follow
    the model."""

    @torch.no_grad()
    def average(averaged: Sequence[Tensor], current: Sequence[Tensor], updates: Tensor | int) -> None:
        if not torch.is_floating_point(averaged[0]):
            torch._foreach_copy_(list(averaged), list(current))
            return
        weight = 1 - warmed_up_decay(decay, torch.as_tensor(updates, dtype=torch.float32, device=averaged[0].device))
        step = torch._foreach_sub(list(current), list(averaged))
        torch._foreach_mul_(step, weight.to(averaged[0].dtype))
        torch._foreach_add_(list(averaged), step)

    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)
