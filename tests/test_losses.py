"""Losses against direct formulas and scikit-image, their gradients, and the weighted sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from skimage.metrics import structural_similarity

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import LOSSES
from sr_toolkit.evaluation import metrics
from sr_toolkit.training.losses import WeightedLoss


def photo_pair(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A crop of a real photo in [0, 1] (H, W, 3) and a noisy version of it, in float64."""
    target = data.coffee()[:size, :size] / 255.0
    noise = np.random.default_rng(1).normal(0, 0.05, target.shape)
    return np.clip(target + noise, 0, 1), target


def as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def test_pixel_losses_match_direct_formulas():
    output, target = photo_pair()
    x, y = as_batch(output), as_batch(target)
    mse, l1 = LOSSES.build({"type": "mse"})(x, y).item(), LOSSES.build({"type": "l1"})(x, y).item()
    assert mse == pytest.approx(F.mse_loss(x, y).item())
    assert mse == pytest.approx(((output - target) ** 2).mean(), rel=1e-5)
    assert l1 == pytest.approx(np.abs(output - target).mean(), rel=1e-5)
    for eps in (1e-3, 0.1):
        expected = np.sqrt((output - target) ** 2 + eps**2).mean()
        value = LOSSES.build({"type": "charbonnier", "eps": eps})(x, y).item()
        assert value == pytest.approx(expected, rel=1e-5)
    assert LOSSES.build({"type": "charbonnier"}).eps == 1e-3
    with pytest.raises(RegistryError, match="eps must be > 0, got 0"):
        LOSSES.build({"type": "charbonnier", "eps": 0})


def test_ssim_loss_is_one_minus_skimage_ssim():
    output, target = photo_pair()
    reference = structural_similarity(
        target,
        output,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=2,
    )
    value = LOSSES.build({"type": "ssim"})(as_batch(output), as_batch(target)).item()
    assert 0.05 < value < 0.95
    assert value == pytest.approx(1 - reference, abs=1e-5)


def test_ms_ssim_loss_is_one_minus_ms_ssim_and_rejects_small_crops():
    output, target = photo_pair(size=192)
    loss = LOSSES.build({"type": "ms_ssim"})
    value = loss(as_batch(output), as_batch(target)).item()
    expected = 1 - metrics.ms_ssim(as_batch(output), as_batch(target), quantize_inputs=False).item()
    assert value == pytest.approx(expected, abs=1e-5)
    assert 0 < value < 1
    with pytest.raises(ValueError, match="at least 161 pixels"):
        loss(torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize("name", ["mse", "l1", "charbonnier", "ssim", "ms_ssim"])
def test_gradients_flow_to_the_output(name):
    size = 192 if name == "ms_ssim" else 64
    output, target = photo_pair(size)
    x = as_batch(output).requires_grad_(True)
    loss = LOSSES.build({"type": name})(x, as_batch(target))
    assert loss.ndim == 0
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():  # a small step against the gradient lowers the loss
        stepped = LOSSES.build({"type": name})(x - 1e-2 * x.grad / x.grad.abs().max(), as_batch(target))
    assert stepped.item() < loss.item()


def test_weighted_loss_sums_weighted_terms_and_reports_each():
    output, target = photo_pair()
    x, y = as_batch(output).requires_grad_(True), as_batch(target)
    specs = [{"type": "mse", "weight": 1.0}, {"type": "l1", "weight": 100.0}]
    weighted = WeightedLoss(specs)
    total, parts = weighted(x, y)
    assert list(parts) == ["mse", "l1"]
    assert parts["mse"].item() == pytest.approx(F.mse_loss(x, y).item())
    assert parts["l1"].item() == pytest.approx(F.l1_loss(x, y).item())
    assert total.item() == pytest.approx(F.mse_loss(x, y).item() + 100 * F.l1_loss(x, y).item(), rel=1e-6)
    assert not any(part.requires_grad for part in parts.values())
    total.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert specs[1] == {"type": "l1", "weight": 100.0}  # the caller's specs are left as given


def test_weighted_loss_names_repeated_types_and_defaults_weight_to_one():
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    specs = [{"type": "l1"}, {"type": "charbonnier", "eps": 0.5}, {"type": "l1", "weight": 2}]
    weighted = WeightedLoss(specs)
    total, parts = weighted(x, y)
    assert list(parts) == ["l1", "charbonnier", "l1_2"]
    assert weighted.weights == [1.0, 1.0, 2.0]
    assert total.item() == pytest.approx(3 * parts["l1"].item() + parts["charbonnier"].item(), rel=1e-6)


@pytest.mark.parametrize(
    ("specs", "error", "message"),
    [
        ([], ValueError, "non-empty list"),
        ({"type": "l1"}, ValueError, "non-empty list"),
        ([{"type": "l1", "weight": "high"}], ValueError, r"loss\.0\.weight: expected a number"),
        ([{"type": "l1"}, {"type": "l2"}], RegistryError, "unknown loss 'l2'"),
        ([{"type": "charbonnier", "epsilon": 1}], RegistryError, "did you mean 'eps'"),
    ],
)
def test_weighted_loss_rejects_bad_specs(specs, error, message):
    with pytest.raises(error, match=message):
        WeightedLoss(specs)
