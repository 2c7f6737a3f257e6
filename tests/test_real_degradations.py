"""Real-ESRGAN's degradation steps (random resize, Gaussian and Poisson noise in colour or gray, JPEG,
WebP, AVIF, chroma subsampling): statistics, sizes, codec round trips, per-image draws, seeds."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, features
from skimage import data

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.data.sampling import per_image

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
HAS_AVIF = features.check("avif")


def photos(size: int = 64, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Four real photos, centre-cropped to size x size: astronaut, chelsea, coffee, rocket."""
    crops = []
    for image in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(torch.from_numpy(image[top : top + size, left : left + size].copy()).permute(2, 0, 1))
    return torch.stack(crops).to(dtype) / 255


def seeded(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def build(**spec: object):
    return DEGRADATIONS.build(spec)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a.double() - b.double()).pow(2).mean()))


# ------------------------------------------------------------------------- Gaussian noise


def test_gaussian_noise_without_gray_prob_draws_as_before() -> None:
    """gray_prob 0 (the default) and gray: true draw exactly what gaussian_noise drew before it existed:
    sigma per image, then the noise, per channel or one plane."""
    image = torch.full((3, 3, 16, 16), 0.5)
    for gray, channels in ((False, 3), (True, 1)):
        generator = seeded(4)
        sigma = per_image((0.01, 0.1), 3, generator, image.device).view(-1, 1, 1, 1)
        expected = (image + sigma * torch.randn((3, channels, 16, 16), generator=generator)).clamp(0, 1)
        out = build(type="gaussian_noise", sigma=[0.01, 0.1], gray=gray)(image, seeded(4))
        assert torch.equal(out, expected)
    gray_prob_1 = build(type="gaussian_noise", sigma=[0.01, 0.1], gray_prob=1.0)(image, seeded(4))
    assert torch.equal(gray_prob_1, out)


def test_gaussian_noise_has_each_images_sigma_and_zero_mean() -> None:
    grey = torch.full((6, 3, 96, 96), 0.5)
    out = build(type="gaussian_noise", sigma=[0.02, 0.08], gray_prob=0.5)(grey, seeded(1))
    noise = out - grey  # no clipping: 0.5 is over 6 sigma from 0 and 1
    drawn = per_image((0.02, 0.08), 6, seeded(1), grey.device)  # the first draw is sigma per image
    # 96 * 96 = 9216 independent values per image at least (gray: one plane): the sample standard
    # deviation's relative standard error is 1 / sqrt(2 * 9216) = 0.74 %; 4 % is over 5 of them.
    torch.testing.assert_close(noise.std(dim=(1, 2, 3)), drawn, rtol=0.04, atol=0)
    # the mean's standard error is sigma / sqrt(9216) <= 0.08 / 96 = 0.00083: 0.004 is about 5 of them
    assert noise.mean(dim=(1, 2, 3)).abs().max() < 0.004
    assert len(set(drawn.tolist())) == 6


def test_gaussian_gray_noise_is_identical_across_channels_for_about_gray_prob_of_images() -> None:
    grey = torch.full((400, 3, 4, 4), 0.5)
    noise = build(type="gaussian_noise", sigma=0.05, gray_prob=0.4)(grey, seeded(2)) - grey
    gray = (noise[:, 0] == noise[:, 1]).all(dim=(1, 2)) & (noise[:, 0] == noise[:, 2]).all(dim=(1, 2))
    colour = (noise[:, 0] != noise[:, 1]).all(dim=(1, 2))
    assert torch.all(gray | colour)  # each image one or the other, never a mix
    # 400 Bernoulli(0.4) draws: standard error 0.0245; 0.1 is four of them
    assert abs(gray.float().mean().item() - 0.4) < 0.1


# -------------------------------------------------------------------------- Poisson noise


def banded(levels: list[int], ramp: list[int]) -> torch.Tensor:
    """A (3, 97, 255) image: row 0 holds the 8-bit ``ramp`` levels (cycled), the rest three bands of 85
    columns at ``levels``; so the image's distinct levels are ``ramp``'s (with ``levels`` among them)."""
    image = torch.empty(97, 255)
    image[0] = torch.tensor(ramp * (255 // len(ramp) + 1))[:255].float()
    for band, level in enumerate(levels):
        image[1:, 85 * band : 85 * (band + 1)] = level
    return (image / 255).expand(3, -1, -1)


def test_poisson_noise_variance_is_proportional_to_intensity() -> None:
    levels = [51, 136, 204]
    image = banded(levels, list(range(256)))[None]  # 256 levels: 256 photons at full scale
    for scale in (0.5, 1.0):
        noise = build(type="poisson_noise", scale=scale)(image, seeded(0)) - image
        for band, level in enumerate(levels):
            values = noise[0, :, 1:, 85 * band : 85 * (band + 1)]
            q = level / 255
            # Poisson(256 q) / 256 * scale: variance scale**2 q / 256. 24,480 values per band: the
            # sample variance's relative standard error is sqrt((2 + 1/(256 q)) / 24480) < 1 %, so 5 %
            # is over 5 of them; the mean's is at most sqrt(0.8 / 256 / 24480) = 3.6e-4, 1.5e-3 over 4.
            torch.testing.assert_close(values.var().item(), scale**2 * q / 256, rtol=0.05, atol=0)
            assert abs(values.mean().item()) < 1.5e-3


def test_poisson_noise_counts_each_images_levels() -> None:
    """An image with 16 distinct levels holds 16 photons at full scale: 16 times the variance of one
    with 256 levels, at the same intensity (BasicSR's vals = 2 ** ceil(log2(unique levels)))."""
    rich = banded([51, 136, 204], list(range(256)))
    poor = banded([51, 136, 204], list(range(0, 256, 17)))  # 16 levels, the bands' among them
    noise = build(type="poisson_noise", scale=1.0)(torch.stack([rich, poor]), seeded(1))
    band = noise[:, :, 1:, :85] - 0.2  # the 51 / 255 = 0.2 band: noisy values rarely reach 1
    variances = band.var(dim=(1, 2, 3))
    torch.testing.assert_close(variances, torch.tensor([0.2 / 256, 0.2 / 16]), rtol=0.05, atol=0)


def test_poisson_noise_scale_is_drawn_per_image() -> None:
    batch = banded([51, 136, 204], list(range(256)))[None].repeat(4, 1, 1, 1)
    noise = build(type="poisson_noise", scale=[0.2, 1.0])(batch, seeded(2)) - batch
    drawn = per_image((0.2, 1.0), 4, seeded(2), batch.device)  # the first draw: scale per image
    # the 136 / 255 band: standard deviation scale * sqrt(q / 256); 24,480 values, relative error < 0.5 %
    measured = noise[:, :, 1:, 85:170].std(dim=(1, 2, 3)) / (136 / 255 / 256) ** 0.5
    torch.testing.assert_close(measured, drawn, rtol=0.03, atol=0)
    assert len(set(drawn.tolist())) == 4


def test_poisson_gray_noise_is_identical_across_channels() -> None:
    image = 0.3 + 0.4 * photos()  # no clipping: Poisson noise here stays well within +-0.3
    out = build(type="poisson_noise", scale=1.0, gray_prob=1.0)(image, seeded(3))
    noise = out - image
    torch.testing.assert_close(noise[:, 0], noise[:, 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(noise[:, 0], noise[:, 2], atol=1e-6, rtol=0)
    assert noise.abs().mean() > 0.005
    mixed = build(type="poisson_noise", scale=1.0, gray_prob=0.5)(image.repeat(8, 1, 1, 1), seeded(3))
    spread = (mixed - image.repeat(8, 1, 1, 1)).diff(dim=1).abs().amax(dim=(1, 2, 3))
    gray = spread < 1e-6
    assert 0 < int(gray.sum()) < 32  # some images gray, the others colour (32 Bernoulli(0.5) draws)
    assert torch.all(spread[~gray] > 0.01)


def test_poisson_noise_needs_gray_or_rgb() -> None:
    with pytest.raises(ValueError, match="channels"):
        build(type="poisson_noise")(torch.rand(1, 4, 8, 8))
    gray = build(type="poisson_noise", gray_prob=0.5)(torch.rand(2, 1, 8, 8), seeded(0))
    assert gray.shape == (2, 1, 8, 8)


# ----------------------------------------------------------------------------------- resize


def test_random_resize_directions_and_sizes() -> None:
    image = torch.rand(1, 1, 200, 100)
    resize = build(type="random_resize")  # Real-ESRGAN x4plus: up 0.2, down 0.7, keep 0.1 in [0.15, 1.5]
    sizes = [tuple(resize(image, seeded(seed)).shape[-2:]) for seed in range(300)]
    up = [size for size in sizes if size[0] > 200]
    down = [size for size in sizes if size[0] < 200]
    assert all(size[0] <= 300 for size in up) and all(size[0] >= 30 for size in down)
    assert all(size[1] == size[0] // 2 for size in sizes)  # one factor for both sides
    # 300 categorical draws: standard errors 0.023 (0.2), 0.026 (0.7), 0.017 (0.1); 0.08 is over 3 of them
    # (an enlargement by less than 1.005 keeps 200 rows: 1 % of enlargements)
    assert abs(len(up) / 300 - 0.2) < 0.08 and abs(len(down) / 300 - 0.7) < 0.08
    assert abs((300 - len(up) - len(down)) / 300 - 0.1) < 0.08
    assert len(set(sizes)) > 100  # the factor is continuous


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic", "nearest"])
def test_random_resize_uses_torch_interpolate_in_the_mode(mode: str) -> None:
    image = photos()
    out = build(type="random_resize", up_down_keep=[0, 1, 0], factor=[0.5, 1], modes=[mode])(image, seeded(5))
    height, width = out.shape[-2:]
    assert 32 <= height <= 64 and height == width
    corners = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    expected = F.interpolate(image, size=(height, width), mode=mode, **corners).clamp(0, 1)
    torch.testing.assert_close(out, expected)


def test_random_resize_draws_each_mode_per_batch() -> None:
    image = photos()
    resize = build(type="random_resize", up_down_keep=[1, 0, 0], factor=[0.5, 1.5])
    seen = set()
    for seed in range(24):
        out = resize(image, seeded(seed))
        assert out.shape[-1] > 64  # these seeds all enlarge by at least 65 / 64
        for mode in ("area", "bilinear", "bicubic"):
            corners = {"align_corners": False} if mode != "area" else {}
            expected = F.interpolate(image, size=out.shape[-2:], mode=mode, **corners).clamp(0, 1)
            if torch.equal(out, expected):
                seen.add(mode)
    assert seen == {"area", "bilinear", "bicubic"}  # P(a mode missing in 24 draws) < 3 * (2/3)**24 = 2e-4


def test_random_resize_keep_and_base() -> None:
    image = photos()
    assert build(type="random_resize", up_down_keep=[0, 0, 1])(image, seeded(0)) is image
    resize = build(type="random_resize", up_down_keep=[0.3, 0.4, 0.3], factor=[0.3, 1.2])
    for seed in range(20):  # Real-ESRGAN's second stage: relative to the final size, here 64 / 4
        out = resize.resize(image, seeded(seed), base=(16.0, 16.0))
        assert 4 <= out.shape[-2] == out.shape[-1] <= 19


def test_resize_to_gives_the_input_size_over_scale_whatever_the_steps() -> None:
    image = torch.rand(2, 3, 66, 70)
    assert build(type="resize_to", scale=4)(image, seeded(0)).shape == (2, 3, 16, 17)  # floor, as ori_h // 4
    steps = [{"type": "random_resize"}, {"type": "gaussian_noise", "sigma": 0.02}]
    back = build(type="resize_to", scale=4, steps=steps)
    assert {back(image, seeded(seed)).shape for seed in range(10)} == {(2, 3, 16, 17)}
    out = build(type="resize_to", scale=1, steps=steps)(image, seeded(1))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1


# ----------------------------------------------------------------------------- compression


def pillow_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """What the jpeg step gave before it used torchvision: Pillow's writer and reader, one image."""
    buffer = io.BytesIO()
    pixels = torch.round(image * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return torch.from_numpy(np.asarray(Image.open(buffer)).copy()).permute(2, 0, 1).float() / 255


def test_jpeg_on_the_cpu_equals_pillows_jpeg() -> None:
    image = photos()
    for quality in (10, 50, 95):
        out = build(type="jpeg", quality=quality)(image, seeded(0))
        expected = torch.stack([pillow_jpeg(single, quality) for single in image])
        assert torch.equal(out, expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("codec", ["jpeg", "webp", *(["avif"] if HAS_AVIF else [])])
def test_codec_round_trips_on_the_device(codec: str, device: str) -> None:
    image = photos().to(device)
    scores = [psnr(build(type=codec, quality=q)(image, seeded(0, device)), image) for q in (10, 50, 100)]
    assert 20 < scores[0] < scores[1] < scores[2]  # always the same picture, better at higher quality
    assert scores[2] > 33  # quality 100: close (WebP keeps 4:2:0 colour even then)
    out = build(type=codec)(image.double(), seeded(0, device))
    assert out.dtype == torch.float64 and out.device == image.device and out.shape == image.shape
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out * 255, torch.round(out * 255))  # 8-bit levels
    grey = image[:, :1]
    assert build(type=codec, quality=30)(grey, seeded(0, device)).shape == grey.shape
    with pytest.raises(ValueError, match="channels"):
        build(type=codec)(torch.rand(1, 4, 16, 16, device=device))


@pytest.mark.parametrize("codec", ["jpeg", "webp", *(["avif"] if HAS_AVIF else [])])
def test_codec_quality_is_drawn_per_image(codec: str) -> None:
    batch = photos()[:1].expand(6, -1, -1, -1)
    out = build(type=codec, quality=[10, 95])(batch, seeded(6))
    qualities = torch.round(per_image((10, 95), 6, seeded(6), batch.device)).int().tolist()
    for image, quality in zip(out, qualities):  # each image is the round trip at its own quality
        torch.testing.assert_close(image[None], build(type=codec, quality=quality)(batch[:1]), atol=0, rtol=0)
    assert len(set(qualities)) > 3 and len({round(psnr(image, batch[0]), 6) for image in out}) > 3


def test_chroma_subsampling_keeps_gray_images_and_luma() -> None:
    grey = photos().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    torch.testing.assert_close(build(type="chroma_subsample")(grey), grey, atol=1e-6, rtol=0)
    image = 0.2 + 0.6 * photos(dtype=torch.float64)  # no clipping
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    for subsampling, (rows, columns) in (("4:2:0", (2, 2)), ("4:2:2", (1, 2))):
        out = build(type="chroma_subsample", subsampling=subsampling)(image)
        torch.testing.assert_close((out * weights).sum(dim=1), (image * weights).sum(dim=1))
        chroma = out - (out * weights).sum(dim=1, keepdim=True)  # R-Y, G-Y, B-Y: constant over each block
        blocks = chroma.unfold(2, rows, rows).unfold(3, columns, columns)
        torch.testing.assert_close(blocks, blocks[..., :1, :1].expand_as(blocks))
        assert 25 < psnr(out, image) < 50  # colour edges soften
    odd = build(type="chroma_subsample")(torch.rand(2, 3, 7, 9))
    assert odd.shape == (2, 3, 7, 9) and odd.min() >= 0 and odd.max() <= 1
    one = torch.rand(2, 1, 8, 8)
    assert build(type="chroma_subsample")(one) is one  # a gray batch has no chroma


# ------------------------------------------------------------------ seeds, shapes, errors

SPECS = [
    {"type": "gaussian_noise", "sigma": [0.01, 0.1], "gray_prob": 0.4},
    {"type": "poisson_noise", "gray_prob": 0.4},
    {"type": "random_resize"},
    {"type": "resize_to", "scale": 2, "steps": [{"type": "random_resize"}]},
    {"type": "jpeg"},
    {"type": "webp"},
    *([{"type": "avif", "speed": 8}] if HAS_AVIF else []),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["type"])
def test_same_seed_same_batch_other_seed_other_batch(spec: dict) -> None:
    degrade, image = DEGRADATIONS.build(spec), photos()
    first, again = degrade(image, seeded(7)), degrade(image, seeded(7))
    assert torch.equal(first, again)
    other = degrade(image, seeded(8))
    assert first.shape != other.shape or not torch.equal(first, other)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("spec", [*SPECS, {"type": "chroma_subsample"}], ids=lambda spec: spec["type"])
def test_dtype_channels_and_range_are_kept(spec: dict, dtype: torch.dtype) -> None:
    image = photos(dtype=dtype)
    out = DEGRADATIONS.build(spec)(image, seeded(0))
    assert out.dtype == dtype and out.shape[:2] == image.shape[:2]
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("spec", "argument"),
    [
        ({"type": "gaussian_noise", "gray_prob": 1.5}, "gray_prob"),
        ({"type": "gaussian_noise", "gray": True, "gray_prob": 0.4}, "gray"),
        ({"type": "poisson_noise", "scale": -1}, "scale"),
        ({"type": "poisson_noise", "gray_prob": -0.1}, "gray_prob"),
        ({"type": "random_resize", "factor": [0.5, 0.9]}, "factor"),
        ({"type": "random_resize", "factor": [0, 1.5]}, "factor"),
        ({"type": "random_resize", "up_down_keep": [-1, 1, 1]}, "up_down_keep"),
        ({"type": "random_resize", "up_down_keep": [1, 1]}, "up_down_keep"),
        ({"type": "random_resize", "modes": ["lanczos"]}, "modes"),
        ({"type": "random_resize", "modes": []}, "modes"),
        ({"type": "resize_to", "scale": 0.5}, "scale"),
        ({"type": "resize_to", "scale": 4, "steps": [{"type": "jpeg", "quality": 0}]}, r"steps\.0.*quality"),
        ({"type": "webp", "quality": [50, 101]}, "quality"),
        ({"type": "avif", "speed": 11}, "speed" if HAS_AVIF else "AVIF"),
        ({"type": "chroma_subsample", "subsampling": "4:4:4"}, "subsampling"),
    ],
)
def test_bad_values_raise_naming_the_argument(spec: dict, argument: str) -> None:
    with pytest.raises(RegistryError, match=argument):
        DEGRADATIONS.build(spec)
