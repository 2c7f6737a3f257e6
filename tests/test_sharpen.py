"""Unsharp-masked targets: the USM function against a direct computation, and the loss terms' ``target`` key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.registry import LOSSES
from sr_toolkit.data.kernels import reflect_indices
from sr_toolkit.data.sharpen import gaussian_blur, unsharp_mask
from sr_toolkit.training import losses
from sr_toolkit.training.gan import discriminator_step, generator_step
from sr_toolkit.training.losses import WeightedLoss

ROOT = Path(__file__).resolve().parents[1]


def reference_usm(image: np.ndarray, weight: float = 0.5, threshold: float = 10.0) -> np.ndarray:
    """BasicSR's USMSharp written out directly, in float64: a 51x51 Gaussian (sigma 8, OpenCV's value for
    51 taps) applied as one 2-D correlation on numpy's mirror padding, per channel of (C, H, W)."""
    offsets = np.arange(51) - 25.0
    line = np.exp(-(offsets**2) / (2 * 8.0**2))
    kernel = np.outer(line, line) / np.outer(line, line).sum()

    def blur(planes: np.ndarray) -> np.ndarray:
        padded = np.pad(planes, ((0, 0), (25, 25), (25, 25)), mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (51, 51), axis=(1, 2))
        return np.einsum("chwij,ij->chw", windows, kernel)

    residual = image - blur(image)
    soft = blur((np.abs(residual) * 255 > threshold).astype(np.float64))
    sharp = np.clip(image + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * image


def edges_and_flat(height: int = 40, width: int = 96) -> torch.Tensor:
    """A (1, 3, H, W) image: a flat grey left part and, on the right, bars and a noisy texture."""
    generator = torch.Generator().manual_seed(3)
    image = torch.full((1, 3, height, width), 0.4)
    image[..., width // 2 :] = 0.2 + 0.6 * (torch.arange(width - width // 2) // 3 % 2)
    texture = torch.rand(3, height - height // 2, width - width // 2, generator=generator)
    image[..., height // 2 :, width // 2 :] += 0.1 * texture
    return image.clamp(0, 1)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 30])
def test_reflect_indices_mirror_about_the_edge_pixels_at_any_length(length: int) -> None:
    expected = np.zeros(length + 50, dtype=int) if length == 1 else np.pad(np.arange(length), 25, mode="reflect")
    assert reflect_indices(length, 25, torch.device("cpu")).tolist() == expected.tolist()


def test_unsharp_mask_matches_a_direct_computation() -> None:
    image = edges_and_flat()
    expected = reference_usm(image[0].double().numpy())
    result = unsharp_mask(image)
    assert result.shape == image.shape and result.dtype == image.dtype
    # float32 against float64: the blur sums 2601 products; a mask pixel that flipped at the threshold would
    # move its neighbours by at most the kernel's peak (0.0025) times |sharp - image| (below 0.15)
    assert np.abs(result[0].double().numpy() - expected).max() < 1e-5
    changed = (result - image).abs().amax(dim=1)[0]
    # the mask reaches a few pixels into the flat part from the bars at column 48, the soft mask 25 further
    assert changed[:, :12].max() == 0
    assert changed[:, 48:].min() > 0  # the bars are sharpened


def test_small_images_blur_with_repeated_mirroring() -> None:
    image = torch.rand(2, 3, 9, 12, generator=torch.Generator().manual_seed(0))
    expected = np.stack([reference_usm(plane.double().numpy()) for plane in image])  # numpy mirrors repeatedly too
    assert np.abs(unsharp_mask(image).double().numpy() - expected).max() < 1e-5
    flat = torch.full((1, 1, 5, 5), 0.25)
    assert torch.allclose(gaussian_blur(flat), flat, atol=1e-7)


def test_flat_images_and_faint_edges_stay_unchanged() -> None:
    flat = torch.full((2, 3, 16, 24), 0.37)
    assert torch.equal(unsharp_mask(flat), flat)
    step = torch.full((1, 1, 32, 32), 0.5)
    step[..., 16:] += 3 / 255  # the residual at a step is at most half of it: 1.5 levels, under the threshold 10
    assert torch.equal(unsharp_mask(step), step)
    step[..., 16:] += 57 / 255  # 60 levels: the edge is sharpened, the bright side up and the dark side down
    sharpened = unsharp_mask(step)
    assert sharpened[0, 0, 0, 16] > step[0, 0, 0, 16] and sharpened[0, 0, 0, 15] < step[0, 0, 0, 15]
    assert torch.equal(unsharp_mask(step, threshold=61.0), step)  # no residual above 61 levels: nothing changes


def test_unsharp_mask_stays_in_range_and_ignores_autocast() -> None:
    bars = torch.zeros(2, 3, 24, 24)
    bars[..., ::4] = 1.0
    result = unsharp_mask(bars)
    assert result.min() >= 0 and result.max() <= 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(unsharp_mask(bars), result)


class RecordingDiscriminator(nn.Module):
    """A per-pixel 'discriminator' that keeps every batch it is shown: its logit is the pixel's mean."""

    is_discriminator = True

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(images.detach().clone())
        return images.mean(1, keepdim=True) * self.scale


def test_sharpened_terms_see_the_sharpened_target_and_the_discriminator_the_plain_one() -> None:
    generator = nn.Upsample(scale_factor=4)
    discriminator = RecordingDiscriminator()
    target = edges_and_flat(32, 32)
    inputs = F.avg_pool2d(target, 4)
    output = generator(inputs)
    criterion = WeightedLoss([{"type": "l1", "target": "sharpened"}, {"type": "l1"}])
    adversarial = LOSSES.build({"type": "vanilla"})
    _, parts = generator_step(generator, discriminator, criterion, adversarial, 0.1, inputs, target)
    assert torch.isclose(parts["l1"], F.l1_loss(output, unsharp_mask(target)))
    assert torch.isclose(parts["l1_2"], F.l1_loss(output, target))
    assert parts["l1"] > parts["l1_2"]  # nearest upsampling is further from the sharpened bars
    discriminator_step(generator, discriminator, adversarial, inputs, target, r1_weight=0.0)
    # G's adversarial term, then D's update: each on the plain target (real), then the output (fake)
    assert len(discriminator.seen) == 4
    for seen, expected in zip(discriminator.seen, (target, output, target, output)):
        assert torch.equal(seen, expected)


def test_the_sharpened_target_is_computed_once_and_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.Tensor] = []

    def counting(images: torch.Tensor) -> torch.Tensor:
        calls.append(images)
        return unsharp_mask(images)

    monkeypatch.setattr(losses, "unsharp_mask", counting)
    output, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    WeightedLoss([{"type": "l1"}, {"type": "mse", "target": "plain"}])(output, target)
    assert not calls
    WeightedLoss([{"type": "l1", "target": "sharpened"}, {"type": "mse", "target": "sharpened"}])(output, target)
    assert len(calls) == 1 and calls[0] is target


def test_the_target_key_is_checked_when_the_recipe_loads() -> None:
    recipe = load_recipe(ROOT / "recipes" / "resnet_x4.yaml", ["loss=[{type: l1, target: sharpened}, {type: mse}]"])
    assert [term["target"] for term in recipe["loss"]] == ["sharpened", "plain"]
    with pytest.raises(RecipeError) as caught:
        load_recipe(ROOT / "recipes" / "resnet_x4.yaml", ["loss=[{type: l1, target: blurry}]"])
    assert str(caught.value) == (
        "override loss=[{type: l1, target: blurry}]: loss.0.target: expected one of plain|sharpened, got 'blurry' (str)"
    )
    with pytest.raises(ValueError, match=r"^loss.1.target: expected one of plain\|sharpened, got 'usm'$"):
        WeightedLoss([{"type": "l1"}, {"type": "l1", "target": "usm"}])
