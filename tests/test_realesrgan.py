"""The ``realesrgan`` degradation: Real-ESRGAN's order and x4plus values, sizes and levels, per-image and
per-seed draws, overrides and their errors, recipes that use it, and bit-exact resume with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import machine_numerics
from skimage import data

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.config.shipped import find_recipe
from sr_toolkit.core.errors import RecipeError, RegistryError
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.data.sampling import uniform
from sr_toolkit.data.sharpen import unsharp_mask
from sr_toolkit.training.engine import Trainer
from sr_toolkit_plugins.degradations.resize import REAL_ESRGAN_MODES, RandomModeResize

LEVEL = 1 / 255


def photos(size: int = 96, count: int = 4) -> torch.Tensor:
    """Real photos (astronaut, chelsea, coffee, rocket, again), centre crops of size x size in [0, 1]."""
    images = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    crops = []
    for index in range(count):
        image = images[index % len(images)]
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(torch.from_numpy(image[top : top + size, left : left + size].copy()).permute(2, 0, 1))
    return torch.stack(crops).float() / 255


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def realesrgan(**spec: object):
    return DEGRADATIONS.build({"type": "realesrgan", "scale": 4, **spec})


@pytest.mark.parametrize("size, channels", [((96, 96), 3), ((70, 90), 3), ((64, 48), 1), ((23, 17), 3)])
def test_inputs_have_the_low_resolution_size_and_8_bit_levels(size: tuple[int, int], channels: int) -> None:
    targets = torch.rand(4, channels, *size)
    inputs = realesrgan()(targets, seeded(0))
    assert inputs.shape == (4, channels, size[0] // 4, size[1] // 4) and inputs.dtype == torch.float32
    assert float(inputs.min()) >= 0 and float(inputs.max()) <= 1
    assert torch.equal(inputs, torch.round(inputs * 255) / 255)


def step(kind: str, **arguments: object):
    return DEGRADATIONS.build({"type": kind, **arguments})


def noise(sigma_levels: float, poisson_scale: float):
    """Real-ESRGAN's noise of one stage: Gaussian or Poisson with equal odds, 40 % of each gray."""
    return step(
        "one_of",
        steps=[
            {"type": "gaussian_noise", "sigma": [LEVEL, sigma_levels * LEVEL], "gray_prob": 0.4},
            {"type": "poisson_noise", "scale": [0.05, poisson_scale], "gray_prob": 0.4},
        ],
        weights=[0.5, 0.5],
    )


@pytest.mark.parametrize("jpeg_last", [True, False])
def test_realesrgan_is_real_esrgans_chain_of_registered_steps_with_the_x4plus_values(jpeg_last: bool) -> None:
    # the values of options/train_realesrgan_x4plus.yml, spelled out here; the order of feed_data
    blur1 = step("random_blur", sigma=[0.2, 3.0], betag=[0.5, 4.0], betap=[1.0, 2.0], sinc_prob=0.1, clip=False)
    resize1 = step("random_resize", up_down_keep=[0.2, 0.7, 0.1], factor=[0.15, 1.5])
    blur2 = step("random_blur", sigma=[0.2, 1.5], betag=[0.5, 4.0], betap=[1.0, 2.0], prob=0.8, clip=False)
    resize2 = step("random_resize", up_down_keep=[0.3, 0.4, 0.3], factor=[0.3, 1.2])
    jpeg, sinc = step("jpeg", quality=[30, 95]), step("sinc_filter", prob=0.8, cutoff=[math.pi / 3, math.pi])
    back = RandomModeResize(REAL_ESRGAN_MODES)

    targets = photos(96)
    g = seeded(5)
    x = unsharp_mask(targets)
    x = jpeg(noise(30, 3.0)(resize1(blur1(x, g), g), g), g)
    x = noise(25, 2.5)(resize2.resize(blur2(x, g), g, (24.0, 24.0)), g)
    uniform((4,), g, targets.device)  # the order of the last steps, per image: every image takes `jpeg_last` here
    if not jpeg_last:
        x = jpeg(x, g)
    x = sinc(back.resize_to_size(x, (24, 24), g), g)
    if jpeg_last:
        x = jpeg(x, g)
    expected = torch.round(x.clamp(0, 1) * 255) / 255

    inputs = realesrgan(jpeg_last_prob=1.0 if jpeg_last else 0.0)(targets, seeded(5))
    assert torch.equal(inputs, expected)


def test_same_seed_same_inputs_other_seed_other_inputs_each_image_its_own() -> None:
    one = photos(96, count=1)
    targets = one.expand(6, -1, -1, -1).contiguous()  # one photo six times
    pipeline = realesrgan()
    a, b, c = pipeline(targets, seeded(1)), pipeline(targets, seeded(1)), pipeline(targets, seeded(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(not torch.equal(a[0], a[index]) for index in range(1, 6))


def psnr_to_bicubic(inputs: torch.Tensor, targets: torch.Tensor) -> float:
    reference = torch.nn.functional.interpolate(targets, size=inputs.shape[-2:], mode="area")
    return float(10 * torch.log10(1 / (inputs - reference).pow(2).mean()))


def test_settings_move_the_degradation_the_expected_way() -> None:
    targets = photos(128)
    mild = realesrgan(
        first={"blur": {"sigma": [0.2, 0.2], "sinc_prob": 0.0}, "resize": {"up_down_keep": [0, 0, 1]},
               "gaussian_prob": 1.0, "gaussian_noise": {"sigma": [0, 0]}, "jpeg": {"quality": [95, 95]}},
        second={"blur": {"prob": 0.0}, "resize": {"up_down_keep": [0, 0, 1]}, "gaussian_prob": 1.0,
                "gaussian_noise": {"sigma": [0, 0]}, "jpeg": {"quality": [95, 95]}},
        sinc={"prob": 0.0},
        sharpen=False,
    )  # fmt: skip
    default = realesrgan()
    mild_psnr = psnr_to_bicubic(mild(targets, seeded(3)), targets)
    default_psnr = psnr_to_bicubic(default(targets, seeded(3)), targets)
    assert default_psnr < mild_psnr - 3


def test_overrides_change_only_the_named_arguments() -> None:
    pipeline = realesrgan(second={"blur": {"prob": 0.5}, "jpeg": {"quality": [60, 70]}}, sinc={"prob": 0.2})
    assert pipeline.second.blur.prob == 0.5 and pipeline.second.blur.sigma == (0.2, 1.5)
    assert pipeline.second.jpeg.quality == (60.0, 70.0) and pipeline.first.jpeg.quality == (30.0, 95.0)
    assert pipeline.sinc.prob == 0.2 and pipeline.first.blur.sigma == (0.2, 3.0)


@pytest.mark.parametrize(
    "spec, named",
    [
        ({"first": {"bogus": {}}}, "first.bogus: unknown key"),
        ({"second": {"blur": 0.5}}, "second.blur: expected a mapping"),
        ({"second": {"blur": {"sigma": [3, 1]}}}, "second.blur.*sigma"),
        ({"first": {"gaussian_prob": 2}}, "first.gaussian_prob"),
        ({"second": {"poisson_noise": {"scale": [-1, 0]}}}, "second.poisson_noise.*scale"),
        ({"first": {"resize": {"factors": [0.5, 1]}}}, "first.resize.*factors"),
        ({"sinc": {"prob": -1}}, "sinc.*prob"),
        ({"jpeg_last_prob": 1.5}, "jpeg_last_prob"),
        ({"scale": 0.5}, "scale"),
    ],
)
def test_bad_settings_raise_naming_the_key(spec: dict, named: str) -> None:
    with pytest.raises(RegistryError, match=named):
        DEGRADATIONS.build({"type": "realesrgan", "scale": 4, **spec}, "degradation.0")


def test_a_recipe_gives_its_scale_and_composes_with_the_reports_corruptions(tmp_path: Path) -> None:
    recipe = tmp_path / "skin.yaml"
    recipe.write_text(
        "base: realesr_compact_x4.yaml\nscale: 2\n"
        "degradation: [{type: darken, amount: [0.2, 0.2]}, {type: realesrgan}, {type: salt_pepper}]\n"
    )
    loaded = load_recipe(recipe)
    pipeline = build_pipeline(loaded["degradation"])
    assert pipeline.steps[1].scale == 2
    targets = photos(64)
    inputs = pipeline(targets, seeded(0))
    assert inputs.shape == (4, 3, 32, 32)
    # darkened by a fifth before the degradation: the mean level follows (noise and JPEG keep it)
    darken = {"type": "darken", "amount": [0.2, 0.2]}
    dark = build_pipeline([darken, {"type": "realesrgan", "scale": 2}])(targets, seeded(1))
    plain = build_pipeline([{"type": "realesrgan", "scale": 2}])(targets, seeded(1))
    assert float(dark.mean()) == pytest.approx(0.8 * float(plain.mean()), rel=0.05)


@pytest.mark.parametrize(
    "setting, named",
    [
        ("first: {blurr: {}}", r"first\.blurr: unknown key \(did you mean 'blur'\?\)"),
        ("sinc: {prb: 0.5}", r"sinc\.prb: degradation 'sinc_filter' has no argument 'prb'"),
        ("first: {jpeg: {quality: [60, 150]}}", r"first\.jpeg: degradation 'jpeg': quality"),
    ],
)
def test_loading_a_recipe_checks_inside_the_step(tmp_path: Path, setting: str, named: str) -> None:
    # what --print-recipe and every command do before any image is read
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"base: realesr_compact_x4.yaml\ndegradation: [{{type: realesrgan, {setting}}}]\n")
    with pytest.raises(RecipeError, match=rf"^{recipe}: degradation\.0: degradation 'realesrgan': {named}"):
        load_recipe(recipe)
    override = "degradation.0.second.blur.prob=2"
    with pytest.raises(RecipeError, match=rf"^override {override}: degradation\.0: .*second\.blur: .*prob"):
        load_recipe(find_recipe("realesr_compact_x4"), [override])


@pytest.mark.parametrize("name", ["realesrnet_x4", "realesrgan_x4", "realesr_compact_x4"])
def test_shipped_real_world_recipes_load_with_the_pipeline(name: str) -> None:
    recipe = load_recipe(find_recipe(name))
    assert [spec["type"] for spec in recipe["degradation"]] == ["realesrgan"]
    assert recipe["scale"] == 4 and build_pipeline(recipe["degradation"]).steps[0].scale == 4


TINY = """
task: upscale
scale: 4
model: {type: compact, num_feat: 8, num_conv: 2}
degradation: [{type: realesrgan}]
data:
  train: {type: builtin, split: train, patch_size: 48}
  batch_size: 4
loss: [{type: l1, target: sharpened}, {type: l1, weight: 0.5}]
optimizer: {type: adam, lr: 1.0e-3}
scheduler: {type: step, step_size: 2, warmup_steps: 1}
train: {max_steps: 6, log_every: 1, val_every: 100, checkpoint_every: 3, ema: 0.9}
"""


def train(recipe: Path, *overrides: str, resume: bool = False) -> Trainer:
    trainer = Trainer(load_recipe(recipe, list(overrides)), resume=resume)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("numerics", machine_numerics())
def test_resume_with_the_realesrgan_pipeline_is_bit_exact(tmp_path: Path, numerics: str) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    precision = f"train.mixed_precision={numerics}"
    full = train(recipe, f"output_dir={tmp_path / 'full'}", precision)
    train(recipe, f"output_dir={tmp_path / 'half'}", precision, "train.max_steps=3")
    resumed = train(recipe, f"output_dir={tmp_path / 'half'}", precision, resume=True)
    assert resumed.state.step == 6
    models = [(trainer.accelerator.unwrap_model(trainer.model), trainer.ema) for trainer in (full, resumed)]
    for a, b in zip(*models):
        expected, got = a.state_dict(), b.state_dict()
        assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    losses = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(record["loss"]) for record in losses if "loss" in record)
