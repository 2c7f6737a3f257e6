"""Degradation plugins: statistics, per-image ranges, determinism, composition and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.resize import imresize, imresize_uint8
from sr_toolkit.data.degrade import build_pipeline


def to_batch(*images: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.stack([torch.from_numpy(image.copy()).permute(2, 0, 1) for image in images]).to(dtype) / 255


def photos(size: int = 64, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Four real photos, centre-cropped to size x size: astronaut, chelsea, coffee, rocket."""
    crops = []
    for image in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(image[top : top + size, left : left + size])
    return to_batch(*crops, dtype=dtype)


def astronaut_256() -> torch.Tensor:
    """The astronaut photo at 256x256 (every second pixel), as a batch of one."""
    return to_batch(data.astronaut()[::2, ::2])


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(**spec: object):
    return DEGRADATIONS.build(spec)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


# ------------------------------------------------------------------ the report's four


def test_salt_pepper_sets_exactly_amount_of_pixels_black_or_white() -> None:
    image = 0.1 + 0.8 * astronaut_256()  # no pixel is already black or white
    out = build(type="salt_pepper", amount=0.4)(image, seeded(0))
    changed = (out != image).any(dim=1)
    assert int(changed.sum()) == round(0.4 * 256 * 256)
    values = out.permute(0, 2, 3, 1)[changed]
    assert torch.all((values == 0).all(dim=1) | (values == 1).all(dim=1))  # all channels together
    white = (values[:, 0] == 1).float().mean().item()
    assert 0.48 < white < 0.52
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[~changed], image.permute(0, 2, 3, 1)[~changed])


def test_color_noise_sets_amount_of_pixels_to_random_colours() -> None:
    image = astronaut_256()
    out = build(type="color_noise", amount=0.3)(image, seeded(1))
    changed = (out != image).any(dim=1)
    assert abs(changed.float().mean().item() - 0.3) < 0.01
    colours = out.permute(0, 2, 3, 1)[changed]
    assert abs(colours.mean().item() - 0.5) < 0.01  # uniform in [0, 1]
    assert (colours[:, 0] != colours[:, 1]).float().mean() > 0.99  # colours, not greys


def test_darken_scales_intensities() -> None:
    image = photos()
    out = build(type="darken", amount=0.3)(image, seeded(0))
    torch.testing.assert_close(out, image * 0.7)
    assert abs(out.mean().item() / image.mean().item() - 0.7) < 1e-5


def test_brighten_scales_and_clips_at_white() -> None:
    image = photos()
    out = build(type="brighten", amount=0.5)(image, seeded(0))
    torch.testing.assert_close(out, (image * 1.5).clamp(max=1))
    assert (out == 1).float().mean() > (image == 1).float().mean() + 0.05
    dim = 0.6 * image  # nothing clips: the mean scales exactly
    assert abs(build(type="brighten", amount=0.5)(dim).mean().item() / dim.mean().item() - 1.5) < 1e-5


def test_default_amounts_are_the_reports_30_to_60_percent() -> None:
    for name in ("salt_pepper", "color_noise", "darken", "brighten"):
        assert build(type=name).amount == (0.3, 0.6)


# ---------------------------------------------------------------- ranges, seeds, dtypes


def test_ranges_are_sampled_per_image() -> None:
    batch = photos()[:1].expand(8, -1, -1, -1).contiguous()
    factors = (build(type="darken", amount=[0.2, 0.8])(batch, seeded(3)) / batch.clamp(min=1e-3)).amax(dim=(1, 2, 3))
    assert torch.all((factors >= 0.2 - 1e-6) & (factors <= 0.8 + 1e-6))
    assert len(set(factors.round(decimals=4).tolist())) == 8

    flat = torch.full((8, 3, 64, 64), 0.5)
    fractions = (build(type="salt_pepper", amount=[0.3, 0.6])(flat, seeded(3)) != 0.5).any(dim=1)
    fractions = fractions.float().mean(dim=(1, 2))
    assert torch.all((fractions >= 0.3 - 1e-3) & (fractions <= 0.6 + 1e-3))
    assert len(set(fractions.tolist())) == 8


RANDOM_SPECS = [
    {"type": "salt_pepper"},
    {"type": "color_noise"},
    {"type": "darken"},
    {"type": "brighten"},
    {"type": "gaussian_noise", "sigma": [0.01, 0.1]},
    {"type": "gaussian_noise", "sigma": 0.05, "gray": True},
    {"type": "gaussian_blur"},
    {"type": "random_blur"},
    {"type": "sinc_filter"},
    {"type": "jpeg"},
    {"type": "random_order", "steps": [{"type": "darken"}, {"type": "gaussian_noise"}]},
    {"type": "one_of", "steps": [{"type": "salt_pepper"}, {"type": "color_noise"}]},
]


@pytest.mark.parametrize("spec", RANDOM_SPECS, ids=lambda spec: spec["type"])
def test_seeded_generator_reproduces_and_other_seeds_differ(spec: dict) -> None:
    degrade, image = DEGRADATIONS.build(spec), photos()
    first, again = degrade(image, seeded(7)), degrade(image, seeded(7))
    assert torch.equal(first, again)
    assert not torch.equal(first, degrade(image, seeded(8)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec", [*RANDOM_SPECS, {"type": "downscale", "scale": 1}], ids=lambda s: s["type"])
def test_shape_dtype_and_range_are_preserved(spec: dict, dtype: torch.dtype) -> None:
    image = photos(dtype=dtype)
    out = DEGRADATIONS.build(spec)(image, seeded(0))
    assert out.shape == image.shape and out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 1


def test_default_generator_is_used_without_one() -> None:
    image = photos()
    torch.manual_seed(5)
    first = build(type="color_noise")(image)
    torch.manual_seed(5)
    assert torch.equal(first, build(type="color_noise")(image))


# ------------------------------------------------------------------------- the extras


def test_gaussian_noise_has_the_requested_deviation() -> None:
    grey = torch.full((2, 3, 128, 128), 0.5)
    noise = build(type="gaussian_noise", sigma=0.05)(grey, seeded(0)) - grey
    assert abs(noise.std().item() - 0.05) < 0.001 and abs(noise.mean().item()) < 0.001
    luminance = build(type="gaussian_noise", sigma=0.05, gray=True)(grey, seeded(0)) - grey
    torch.testing.assert_close(luminance[:, 0], luminance[:, 2])
    assert luminance.std() > 0.04


def test_gaussian_blur_matches_scipy_and_removes_high_frequencies() -> None:
    image = photos(dtype=torch.float64)
    out = build(type="gaussian_blur", sigma=1.0)(image, seeded(0))
    expected = ndimage.gaussian_filter(image.numpy(), sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)

    def detail(x: torch.Tensor) -> float:  # energy of the discrete Laplacian
        centre = x[..., 1:-1, 1:-1]
        lap = 4 * centre - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
        return lap.pow(2).mean().item()

    strong = build(type="gaussian_blur", sigma=2.5)(image, seeded(0))
    assert detail(strong) < detail(out) < 0.5 * detail(image)
    torch.testing.assert_close(build(type="gaussian_blur", sigma=0.0)(image), image)


def test_gaussian_blur_draws_a_width_per_image() -> None:
    batch = photos()[:1].expand(6, -1, -1, -1)
    out = build(type="gaussian_blur", sigma=[0.5, 3.0])(batch, seeded(2))
    assert len({round(float(image.std()), 5) for image in out}) == 6


def test_jpeg_loses_more_at_lower_quality() -> None:
    image = photos()
    scores = [psnr(build(type="jpeg", quality=q)(image), image) for q in (10, 50, 95)]
    assert scores[0] < scores[1] < scores[2] < 60
    assert scores[0] > 20  # still the same picture
    grey = photos()[:, :1]
    assert build(type="jpeg", quality=30)(grey).shape == grey.shape
    with pytest.raises(ValueError, match="channels"):
        build(type="jpeg")(torch.rand(1, 4, 16, 16))


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest", "area"])
def test_downscale_shapes_for_each_mode(mode: str) -> None:
    image = photos()[..., :48]
    out = build(type="downscale", scale=4, mode=mode)(image)
    assert out.shape == (4, 3, 16, 12) and out.dtype == image.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert build(type="downscale", scale=3, mode=mode)(image).shape == (4, 3, 22, 16)  # ceil, as MATLAB


def test_downscale_is_clamped_matlab_bicubic() -> None:
    image = photos(dtype=torch.float64)
    out = build(type="downscale", scale=2)(image)
    raw = imresize(image, scale=0.5)
    assert raw.min() < 0 or raw.max() > 1  # bicubic overshoots on these photos ...
    torch.testing.assert_close(out, raw.clamp(0, 1))  # ... and the degradation clips


def test_downscale_quantize_gives_matlabs_uint8_result() -> None:
    image = photos()
    out = build(type="downscale", scale=4, quantize=True)(image)
    levels = torch.round(image * 255).to(torch.uint8)
    torch.testing.assert_close(out, imresize_uint8(levels, scale=0.25).float() / 255)
    torch.testing.assert_close(out * 255, torch.round(out * 255))


# ------------------------------------------------------------------------ composition

BLACK = {"type": "darken", "amount": 1.0}
WHITE = {"type": "brighten", "amount": 10.0}


def test_one_of_applies_one_step_per_image() -> None:
    grey = torch.full((64, 3, 8, 8), 0.5)
    out = build(type="one_of", steps=[BLACK, WHITE])(grey, seeded(0))
    black = (out == 0).all(dim=(1, 2, 3))
    white = (out == 1).all(dim=(1, 2, 3))
    assert torch.all(black | white) and 16 < int(black.sum()) < 48
    weighted = build(type="one_of", steps=[BLACK, WHITE], weights=[0.0, 1.0])(grey, seeded(0))
    assert torch.all(weighted == 1)


def test_one_of_rejects_steps_of_different_sizes() -> None:
    mixed = build(type="one_of", steps=[{"type": "downscale", "scale": 2}, {"type": "darken"}])
    with pytest.raises(ValueError, match="same size"):
        mixed(torch.rand(32, 3, 8, 8), seeded(0))


def test_random_order_changes_the_order_between_calls() -> None:
    image = torch.full((1, 3, 4, 4), 0.8)
    steps = [{"type": "darken", "amount": 0.5}, {"type": "brighten", "amount": 1.0}]
    degrade = build(type="random_order", steps=steps)
    outcomes = {round(degrade(image, seeded(seed))[0, 0, 0, 0].item(), 4) for seed in range(12)}
    assert outcomes == {0.8, 0.5}  # darken then brighten, or brighten (clipped at 1) then darken


def test_build_pipeline_applies_specs_in_order() -> None:
    image = photos()
    assert build_pipeline([])(image) is image
    pipeline = build_pipeline([{"type": "darken", "amount": 0.5}, {"type": "downscale", "scale": 2}])
    torch.testing.assert_close(pipeline(image, seeded(0)), imresize(image * 0.5, scale=0.5).clamp(0, 1))
    steps = [{"type": "jpeg"}, {"type": "gaussian_noise"}]
    nested = build_pipeline([{"type": "random_order", "steps": steps}])
    assert nested(image, seeded(0)).shape == image.shape


def test_repr_shows_the_arguments() -> None:
    assert repr(build(type="salt_pepper", amount=[0.3, 0.6])) == "SaltPepper(amount=[0.3, 0.6])"
    assert repr(build(type="darken", amount=0.5)) == "Darken(amount=0.5)"
    nested = build(type="one_of", steps=[{"type": "jpeg", "quality": [10, 20]}])
    assert repr(nested) == "OneOf(steps=[Jpeg(quality=[10.0, 20.0])], weights=None)"


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "argument"),
    [
        ({"type": "salt_pepper", "amount": 1.5}, "amount"),
        ({"type": "darken", "amount": [0.6, 0.3]}, "amount"),
        ({"type": "color_noise", "amount": -0.1}, "amount"),
        ({"type": "jpeg", "quality": 0}, "quality"),
        ({"type": "jpeg", "quality": [50, 101]}, "quality"),
        ({"type": "downscale", "scale": 4, "mode": "lanczos"}, "mode"),
        ({"type": "downscale", "scale": 0.5}, "scale"),
        ({"type": "gaussian_blur", "sigma": -1}, "sigma"),
        ({"type": "gaussian_noise", "sigma": "big"}, "sigma"),
        ({"type": "one_of", "steps": [BLACK, WHITE], "weights": [1.0]}, "weights"),
        ({"type": "one_of", "steps": []}, "steps"),
        ({"type": "random_order", "steps": [{"type": "darken", "amount": 1.5}]}, r"steps\.0.*amount"),
        ({"type": "random_order", "steps": [{"type": "blurr"}]}, "blur"),
    ],
)
def test_bad_values_raise_naming_the_argument(spec: dict, argument: str) -> None:
    with pytest.raises(RegistryError, match=argument):
        DEGRADATIONS.build(spec)


def test_non_batch_input_raises() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        build(type="darken")(torch.rand(3, 8, 8))
