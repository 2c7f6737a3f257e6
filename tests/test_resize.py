"""MATLAB-compatible resizing: analytic weights, an independent per-pixel reference, tabulated uint8."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

from sr_toolkit.core.resize import imresize, imresize_8bit, imresize_uint8, modcrop, resize_weights


def arithmetic_pattern(size: int = 16) -> torch.Tensor:
    """A deterministic uint8 image with sharp, irregular edges (values wrap around 255)."""
    i, j = torch.arange(size)[:, None], torch.arange(size)[None]
    return ((i * 37 + j * 23 + (i * j) % 11 * 9) % 256).to(torch.uint8)


def photo_crop() -> torch.Tensor:
    """A 24x36 RGB crop of the astronaut photo as float64 (1, 3, H, W) in [0, 1]."""
    crop = data.astronaut()[100:124, 200:236].astype(np.float64) / 255
    return torch.from_numpy(crop).permute(2, 0, 1)[None]


# ---------------------------------------------------------------- analytic properties


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize(("in_size", "out_size"), [(32, 8), (9, 3), (7, 28), (10, 13)])
def test_weight_rows_sum_to_one(mode: str, in_size: int, out_size: int) -> None:
    weights = resize_weights(in_size, out_size, out_size / in_size, mode)
    assert weights.shape == (out_size, in_size)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(out_size, dtype=torch.float64))


def test_upscale_x2_weights_are_keys_cubic_at_quarter_offsets() -> None:
    # Output pixel 6 (1-based) samples input position 3.25: taps at distances 1.25, 0.25, -0.75, -1.75.
    row = resize_weights(8, 16, 2.0)[5]
    expected = torch.tensor([0, -9 / 128, 111 / 128, 29 / 128, -3 / 128, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(row, expected, rtol=0, atol=1e-15)


def test_bilinear_halving_weights_are_the_widened_triangle() -> None:
    row = resize_weights(8, 4, 0.5, "bilinear")[1]
    expected = torch.tensor([0, 1 / 8, 3 / 8, 3 / 8, 1 / 8, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(row, expected, rtol=0, atol=1e-15)


def test_impulse_downscaled_by_4_spreads_over_the_widened_kernel() -> None:
    impulse = torch.zeros(1, 1, 1, 64, dtype=torch.float64)
    impulse[..., 30] = 1.0
    out = imresize(impulse, size=(1, 16))[0, 0, 0]
    # Output j (0-based) is centred on input 4j + 1.5; the x4-wide cubic reaches 8 pixels each way.
    centres = 4 * torch.arange(16, dtype=torch.float64) + 1.5
    reach = (centres - 30).abs() < 8
    assert torch.all(out[~reach] == 0) and torch.all(out[reach] != 0)
    assert out.argmax() in (7, 8)  # centres 29.5 and 33.5 are the nearest to 30
    assert math.isclose(out.sum().item() * 4, 1.0, rel_tol=1e-3)  # area is preserved


def test_linear_ramp_stays_exactly_linear_in_the_interior() -> None:
    ramp = torch.arange(64, dtype=torch.float64).expand(1, 1, 8, 64)
    out = imresize(ramp, scale=0.25)[0, 0]
    expected = 4 * torch.arange(16, dtype=torch.float64) + 1.5
    torch.testing.assert_close(out[:, 2:-2], expected[2:-2].expand(2, 12), rtol=0, atol=1e-12)
    assert abs(out[0, 0] - expected[0]) > 0.01  # the repeated edge pixel bends the border


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest", "area"])
@pytest.mark.parametrize("scale", [0.25, 1 / 3, 2.0, 4.0])
def test_constant_image_stays_constant(mode: str, scale: float) -> None:
    image = torch.full((2, 3, 12, 9), 0.37, dtype=torch.float64)
    out = imresize(image, scale=scale, mode=mode)
    torch.testing.assert_close(out, torch.full_like(out, 0.37))


def test_nearest_halving_takes_every_second_pixel_starting_at_the_second() -> None:
    image = torch.rand(1, 2, 10, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(imresize(image, scale=0.5, mode="nearest"), image[..., 1::2, 1::2])


def test_area_halving_is_the_block_mean() -> None:
    image = photo_crop()
    blocks = image.reshape(1, 3, 12, 2, 18, 2).mean(dim=(3, 5))
    torch.testing.assert_close(imresize(image, scale=0.5, mode="area"), blocks)


def test_halving_a_4x4_ramp_without_antialiasing() -> None:
    # MATLAB's imresize(reshape(0:15, 4, 4)', 0.5, 'bicubic', 'Antialiasing', false).
    image = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    expected = torch.tensor([[2.1875, 4.3125], [10.6875, 12.8125]], dtype=torch.float64)
    torch.testing.assert_close(imresize(image, scale=0.5, antialias=False)[0, 0], expected)


# ------------------------------------------------------- independent per-pixel reference


def keys_cubic(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def triangle(t: float) -> float:
    return max(0.0, 1 - abs(t))


def box(t: float) -> float:
    return 1.0 if -0.5 <= t < 0.5 else 0.0


REFERENCE_KERNELS = {"bicubic": (keys_cubic, 4), "bilinear": (triangle, 2), "nearest": (box, 1)}


def taps_for(out_index: int, scale: float, in_size: int, mode: str, antialias: bool) -> dict[int, float]:
    """MATLAB's contributions for one output pixel: {0-based input index: normalised weight}."""
    kernel, width = REFERENCE_KERNELS[mode]
    stretch = scale if (scale < 1 and antialias and mode != "nearest") else 1.0
    width = width / stretch
    centre = (out_index + 1) / scale + 0.5 * (1 - 1 / scale)
    first = math.floor(centre - width / 2)
    raw = []
    for tap in range(first, first + math.ceil(width) + 2):
        raw.append((tap, stretch * kernel(stretch * (centre - tap))))
    total = sum(weight for _, weight in raw)
    contributions: dict[int, float] = {}
    for tap, weight in raw:
        index = min(max(tap, 1), in_size) - 1  # clamp: the edge pixel repeats
        contributions[index] = contributions.get(index, 0.0) + weight / total
    return contributions


def reference_resize(
    image: np.ndarray, out_h: int, out_w: int, scale_h: float, scale_w: float, mode: str, antialias: bool
) -> np.ndarray:
    """Loop over every output pixel and every input pixel that contributes to it."""
    channels, in_h, in_w = image.shape
    out = np.zeros((channels, out_h, out_w))
    for i in range(out_h):
        rows = taps_for(i, scale_h, in_h, mode, antialias)
        for j in range(out_w):
            cols = taps_for(j, scale_w, in_w, mode, antialias)
            for c in range(channels):
                acc = 0.0
                for p, wp in rows.items():
                    for q, wq in cols.items():
                        acc += wp * wq * image[c, p, q]
                out[c, i, j] = acc
    return out


REFERENCE_CASES = [
    ("bicubic", {"scale": 0.25}, True),
    ("bicubic", {"scale": 1 / 3}, True),
    ("bicubic", {"scale": 0.25}, False),
    ("bicubic", {"scale": 2.0}, True),
    ("bicubic", {"scale": 4.0}, True),
    ("bicubic", {"size": (7, 13)}, True),
    ("bilinear", {"scale": 0.5}, True),
    ("bilinear", {"size": (30, 20)}, True),
    ("nearest", {"scale": 1 / 3}, True),
    ("nearest", {"scale": 3.0}, True),
]


@pytest.mark.parametrize(("mode", "how", "antialias"), REFERENCE_CASES)
def test_matches_per_pixel_reference(mode: str, how: dict, antialias: bool) -> None:
    image = photo_crop()
    if how.get("scale", 1) > 1:
        image = image[..., :6, :9]  # keep the loop reference quick
    in_h, in_w = image.shape[-2:]
    if "size" in how:
        (out_h, out_w), (scale_h, scale_w) = how["size"], (how["size"][0] / in_h, how["size"][1] / in_w)
    else:
        scale_h = scale_w = how["scale"]
        out_h, out_w = math.ceil(in_h * scale_h - 1e-9), math.ceil(in_w * scale_w - 1e-9)
    expected = reference_resize(image[0].numpy(), out_h, out_w, scale_h, scale_w, mode, antialias)
    out = imresize(image, mode=mode, antialias=antialias, **how)
    assert out.shape == (1, 3, out_h, out_w)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-6)


# --------------------------------------------- uint8 path, tabulated (bit-exact with MATLAB)
# bench/matlab_bicubic.py shows imresize_uint8 reproduces MATLAB's LR images of Set5 (x2, x3, x4)
# and Set14 (x4) bit for bit; these tables pin its output on a synthetic pattern.

PATTERN_DOWN_X4 = [[101, 116, 120, 123], [116, 128, 130, 108], [159, 120, 98, 164], [121, 131, 110, 120]]

PATCH = [
    [156, 197, 238, 23, 221, 6],
    [211, 5, 212, 6, 56, 106],
    [10, 226, 29, 88, 48, 107],
    [65, 34, 102, 71, 139, 108],
    [21, 98, 76, 153, 131, 208],
]
PATCH_UP_X2 = [
    [148, 163, 197, 226, 251, 193, 54, 57, 202, 200, 52, 0],
    [173, 166, 151, 174, 235, 194, 53, 41, 160, 167, 63, 15],
    [227, 171, 52, 61, 201, 196, 49, 6, 68, 95, 89, 86],
    [182, 143, 59, 62, 152, 149, 54, 14, 29, 57, 99, 118],
    [38, 80, 170, 173, 89, 54, 69, 65, 41, 51, 94, 114],
    [0, 51, 174, 179, 67, 32, 74, 87, 69, 72, 97, 108],
    [50, 56, 69, 78, 84, 82, 71, 81, 112, 120, 106, 100],
    [62, 53, 35, 46, 89, 102, 87, 97, 133, 145, 133, 127],
    [27, 41, 71, 84, 80, 94, 125, 138, 133, 146, 177, 192],
    [12, 36, 88, 101, 76, 90, 143, 157, 132, 145, 197, 221],
]
PATCH_TO_7x3 = [
    [190, 156, 92],
    [156, 115, 78],
    [122, 79, 70],
    [103, 76, 81],
    [66, 82, 105],
    [52, 99, 144],
    [55, 116, 177],
]


def test_uint8_tables() -> None:
    pattern = arithmetic_pattern()
    assert pattern[2:7, 2:8].tolist() == PATCH
    patch = torch.tensor(PATCH, dtype=torch.uint8)
    assert imresize_uint8(pattern, scale=0.25).tolist() == PATTERN_DOWN_X4
    assert imresize_uint8(patch, scale=2).tolist() == PATCH_UP_X2
    assert imresize_uint8(patch, size=(7, 3)).tolist() == PATCH_TO_7x3  # columns shrink, so go first


def test_uint8_path_rounds_between_passes() -> None:
    patch = torch.tensor(PATCH, dtype=torch.uint8)
    rounded_once = torch.floor(imresize(patch.double(), scale=2) + 0.5).clamp(0, 255)
    two_pass = imresize_uint8(patch, scale=2).double()
    assert 0 < (two_pass - rounded_once).abs().max() <= 1


# ------------------------------------- uint8 upscaling against an independent two-pass reference


def round_half_away_to_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's conversion of doubles to uint8: round half away from zero, then saturate."""
    return np.clip(np.sign(values) * np.floor(np.abs(values) + 0.5), 0, 255).astype(np.uint8)


def axis_matrix(in_size: int, out_size: int, scale: float, mode: str) -> np.ndarray:
    """The (out, in) weights of one axis, from the per-pixel contributions above (clamped edges)."""
    matrix = np.zeros((out_size, in_size))
    for out_index in range(out_size):
        for index, weight in taps_for(out_index, scale, in_size, mode, antialias=True).items():
            matrix[out_index, index] += weight
    return matrix


def reference_uint8_resize(
    image: np.ndarray, out_h: int, out_w: int, mode: str, rows_first: bool | None = None
) -> np.ndarray:
    """MATLAB's imresize of a uint8 (H, W) image to (out_h, out_w): one axis at a time, the one with
    the smaller scale factor first (the height on a tie) unless ``rows_first`` says otherwise,
    rounded to uint8 after each pass."""
    (in_h, in_w), (scale_h, scale_w) = image.shape, (out_h / image.shape[0], out_w / image.shape[1])
    rows, cols = axis_matrix(in_h, out_h, scale_h, mode), axis_matrix(in_w, out_w, scale_w, mode)
    values = image.astype(np.float64)
    if rows_first is None:
        rows_first = scale_h <= scale_w
    if rows_first:
        return round_half_away_to_uint8(round_half_away_to_uint8(rows @ values).astype(np.float64) @ cols.T)
    return round_half_away_to_uint8(rows @ round_half_away_to_uint8(values @ cols.T).astype(np.float64))


def random_uint8(height: int = 7, width: int = 9) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_upscaling_equals_the_two_pass_reference(mode: str, scale: int) -> None:
    image = random_uint8()
    expected = reference_uint8_resize(image, 7 * scale, 9 * scale, mode)
    out = imresize_uint8(torch.from_numpy(image), scale=scale, mode=mode)
    assert np.array_equal(out.numpy(), expected)
    as_floats = imresize_8bit(torch.from_numpy(image).float() / 255, scale=scale, mode=mode)
    assert as_floats.dtype == torch.float32 and torch.equal(as_floats, out.float() / 255)
    float_once = imresize(torch.from_numpy(image).double(), scale=scale, mode=mode)
    rounded_once = round_half_away_to_uint8(float_once.numpy())
    if mode == "nearest":  # copies pixels: nothing to round
        assert np.array_equal(rounded_once, expected)
    else:  # what the baselines computed before, and the columns-first order, give other bytes
        assert 0.03 < np.mean(rounded_once != expected) < 0.5
        assert not np.array_equal(reference_uint8_resize(image, 7 * scale, 9 * scale, mode, False), expected)


@pytest.mark.parametrize("size", [(14, 27), (21, 18)])
def test_uint8_upscaling_resizes_the_smaller_factor_first(size: tuple[int, int]) -> None:
    # (14, 27): the height grows x2, the width x3, so rows go first; (21, 18): columns go first.
    image = random_uint8()
    expected = reference_uint8_resize(image, *size, "bicubic")
    assert np.array_equal(imresize_uint8(torch.from_numpy(image), size=size).numpy(), expected)
    other_order = reference_uint8_resize(image, *size, "bicubic", rows_first=size[0] > 14)
    assert not np.array_equal(other_order, expected)  # so the order matters on this image


def test_upscaling_does_not_widen_the_kernel() -> None:
    # x4: output pixel 1 sits at input position 0.625; the plain cubic reaches input pixels -1..2.
    row = resize_weights(8, 32, 4.0)[0]
    raw = [keys_cubic(0.625 - tap) for tap in (-1, 0, 1, 2)]
    expected = torch.tensor([raw[0] + raw[1] + raw[2], raw[3], 0, 0, 0, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(row, expected / sum(raw), rtol=0, atol=1e-15)


# ----------------------------------------------------------------- shapes, dtypes, errors


def test_upscale_x4_shapes_and_sizes() -> None:
    image = torch.rand(2, 3, 5, 7)
    assert imresize(image, scale=4).shape == (2, 3, 20, 28)
    assert imresize(image, size=(9, 11)).shape == (2, 3, 9, 11)
    assert imresize(torch.rand(3, 10, 10), scale=1 / 3).shape == (3, 4, 4)  # ceil, like MATLAB
    assert imresize(torch.rand(3, 30, 30), scale=1 / 3).shape == (3, 10, 10)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest", "area"])
def test_float32_and_float64_agree(mode: str) -> None:
    image = photo_crop()
    out64 = imresize(image, scale=0.5, mode=mode)
    out32 = imresize(image.float(), scale=0.5, mode=mode)
    assert out64.dtype == torch.float64 and out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-5)


def test_gradient_is_the_transposed_resize() -> None:
    image = photo_crop().requires_grad_(True)
    imresize(image, scale=0.25).sum().backward()
    rows, cols = resize_weights(24, 6, 0.25), resize_weights(36, 9, 0.25)
    expected = torch.outer(rows.sum(dim=0), cols.sum(dim=0)).expand(1, 3, 24, 36)
    torch.testing.assert_close(image.grad, expected)


def test_output_is_not_clamped() -> None:
    step = torch.zeros(1, 1, 4, 8, dtype=torch.float64)
    step[..., 4:] = 1.0
    out = imresize(step, scale=4)
    assert out.min() < 0 and out.max() > 1


def test_modcrop() -> None:
    image = torch.rand(2, 3, 13, 10)
    assert modcrop(image, 4).shape == (2, 3, 12, 8)
    torch.testing.assert_close(modcrop(image, 4), image[..., :12, :8])
    assert modcrop(image, 1).shape == image.shape
    with pytest.raises(ValueError, match="scale"):
        modcrop(image, 2.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.5, "mode": "lanczos"}, "mode"),
        ({}, "exactly one of scale and size"),
        ({"scale": 0.5, "size": (2, 2)}, "exactly one of scale and size"),
        ({"scale": -2.0}, "scale"),
        ({"size": (0, 3)}, "size"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        imresize(torch.rand(1, 1, 8, 8), **kwargs)


def test_wrong_dtypes_raise() -> None:
    with pytest.raises(ValueError, match="float"):
        imresize(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), scale=0.5)
    with pytest.raises(ValueError, match="uint8"):
        imresize_uint8(torch.zeros(1, 1, 8, 8), scale=0.5)
    with pytest.raises(ValueError, match="float"):
        imresize_8bit(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), scale=2)
