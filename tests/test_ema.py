"""The deployed weight average: its decay warms up, so the random start is forgotten."""

from __future__ import annotations

import torch
from torch import nn

from sr_toolkit.training.ema import ema_model, warmed_up_decay


def test_decay_warms_up_to_the_configured_one() -> None:
    updates = torch.tensor([0.0, 1.0, 90.0, 8999.0, 1e6])
    expected = [0.1, 2 / 11, 0.91, 0.999, 0.999]
    assert torch.allclose(warmed_up_decay(0.999, updates), torch.tensor(expected))


def test_average_follows_the_warmed_up_recursion() -> None:
    model = nn.Linear(1, 1, bias=False)
    average = ema_model(model, decay=0.9)
    expected = 0.0
    for index, value in enumerate([3.0, -1.0, 2.0, 5.0, 4.0, 0.5] * 5):
        model.weight.data.fill_(value)
        average.update_parameters(model)
        # independent recursion: the first update copies, the n-th after it uses min(0.9, (1 + n) / (10 + n))
        decay = 0.0 if index == 0 else min(0.9, (1 + index) / (10 + index))
        expected = decay * expected + (1 - decay) * value
        assert abs(average.module.weight.item() - expected) < 1e-5


def test_random_start_is_forgotten_where_a_fixed_decay_keeps_it() -> None:
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(100.0)  # the "random" start
    average = ema_model(model, decay=0.999)
    average.update_parameters(model)
    model.weight.data.fill_(1.0)  # what training reached
    for _ in range(1000):
        average.update_parameters(model)
    # a fixed 0.999 would still hold 0.999 ** 1000 = 37 % of the start: 100 * 0.37 + 0.63 = 37.4
    assert abs(average.module.weight.item() - 1.0) < 1e-4


def test_integer_buffers_follow_the_model() -> None:
    model = nn.BatchNorm2d(2)
    average = ema_model(model, decay=0.999)
    for _ in range(3):
        model(torch.randn(4, 2, 3, 3))
        average.update_parameters(model)
    assert average.module.num_batches_tracked.item() == 3
    mean = average.module.running_mean
    assert torch.isfinite(mean).all() and mean.abs().sum() > 0  # averaged from the model's, not the zeros it started at
