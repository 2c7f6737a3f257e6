"""Real-ESRGAN's blur kernels (sr_toolkit.data.kernels) and the random_blur / sinc_filter degradations:
closed forms, normalisation, orientation, per-image sizes, applying, and the distributions drawn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, special

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.data import kernels

CPU = torch.device("cpu")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64)


def quadratic(sigma_x: float, sigma_y: float, theta: float, x: int, y: int) -> float:
    """p^T Sigma^-1 p with Sigma = R diag(sigma_x^2, sigma_y^2) R^T, by matrix inverse (independent of the code)."""
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    offset = np.array([x, y], dtype=np.float64)
    return float(offset @ np.linalg.inv(covariance) @ offset)


POINTS = [(1, 0), (0, 1), (2, 1), (-3, 2), (4, -4), (0, 5)]  # (x = column, y = row) offsets from the centre


@pytest.mark.parametrize(
    ("family", "shape"),
    [
        ("gaussian", lambda q, beta: math.exp(-q / 2)),
        ("generalized_gaussian", lambda q, beta: math.exp(-(q**beta) / 2)),
        ("plateau", lambda q, beta: 1 / (1 + q**beta)),
    ],
)
def test_kernel_values_follow_the_closed_form(family: str, shape) -> None:
    sigma_x, sigma_y, theta, beta = 2.2, 0.9, 0.7, 1.7
    parameters = [one(sigma_x), one(sigma_y), one(theta)] + ([] if family == "gaussian" else [one(beta)])
    kernel = getattr(kernels, family)(*parameters, 13)
    assert kernel.shape == (1, 13, 13) and kernel.dtype == torch.float64
    assert abs(kernel.sum().item() - 1) < 1e-12
    centre = kernel[0, 6, 6].item()
    for x, y in POINTS:
        expected = shape(quadratic(sigma_x, sigma_y, theta, x, y), beta)
        assert kernel[0, 6 + y, 6 + x].item() / centre == pytest.approx(expected, rel=1e-10)


def test_generalized_gaussian_of_beta_one_is_the_gaussian_and_plateau_differs() -> None:
    args = (torch.tensor([1.5, 3.0]), torch.tensor([0.6, 2.0]), torch.tensor([0.3, -1.2]))
    gauss = kernels.gaussian(*args, 21)
    torch.testing.assert_close(kernels.generalized_gaussian(*args, torch.ones(2), 21), gauss)
    flatter = kernels.generalized_gaussian(*args, torch.full((2,), 4.0), 21)
    top, tail = (flatter[:, 10, x] / flatter[:, 10, 10] for x in (11, 20))  # q < 1 at x = 1, q > 1 at x = 10
    assert torch.all(top > gauss[:, 10, 11] / gauss[:, 10, 10])  # beta > 1: a flatter top ...
    assert torch.all(tail < gauss[:, 10, 20] / gauss[:, 10, 10])  # ... and a thinner tail
    assert not torch.allclose(kernels.plateau(*args, torch.ones(2), 21), gauss)


def test_isotropic_is_the_anisotropic_kernel_with_equal_sigmas() -> None:
    sigma = 1.8
    x = torch.arange(-7, 8, dtype=torch.float64)
    radial = torch.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2 * sigma**2))
    for theta in (0.0, 0.4, -2.5):
        kernel = kernels.gaussian(one(sigma), one(sigma), one(theta), 15)[0]
        torch.testing.assert_close(kernel, radial / radial.sum(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("theta", [0.0, 0.35, 1.2, -0.8, 2.9])
def test_anisotropic_kernel_has_its_long_axis_along_theta(theta: float) -> None:
    kernel = kernels.gaussian(one(2.5), one(0.8), one(theta), 21)[0]
    axis = torch.arange(-10, 11, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")  # x along columns, y along rows
    moments = torch.stack(
        [
            torch.stack([(kernel * x * x).sum(), (kernel * x * y).sum()]),
            torch.stack([(kernel * x * y).sum(), (kernel * y * y).sum()]),
        ]
    )
    values, vectors = torch.linalg.eigh(moments)
    long = vectors[:, 1]  # eigh sorts ascending: the larger spread last
    angle = math.atan2(long[1].item(), long[0].item())
    difference = (angle - theta) % math.pi
    assert min(difference, math.pi - difference) < 0.01  # truncation at 4 sigma bends the axis by far less
    assert values[1].item() == pytest.approx(2.5**2, rel=0.01) and values[0].item() == pytest.approx(0.8**2, rel=0.01)
    if theta == 0.0:  # the convention pinned down: the sigma_x axis runs along image rows, i.e. across columns
        assert kernel[10, 13] > 10 * kernel[13, 10]


def test_sinc_matches_the_bessel_closed_form() -> None:
    cutoff = 1.9
    kernel = kernels.circular_lowpass(one(cutoff), 15)[0]
    assert abs(kernel.sum().item() - 1) < 1e-12
    assert kernel.min() < 0  # the negative lobes of an ideal low-pass
    centre = kernel[7, 7].item()
    for x, y in POINTS:
        radius = math.hypot(x, y)
        expected = 2 * special.j1(cutoff * radius) / (cutoff * radius)  # [w J1(w r) / (2 pi r)] / [w^2 / (4 pi)]
        # torch.special.bessel_j1 in float64 is off scipy's by up to 5e-7 (worst near 5 < z < 8), so 2 J1(z)/z by < 1e-6
        assert kernel[7 + y, 7 + x].item() / centre == pytest.approx(expected, rel=0, abs=1e-6)
    torch.testing.assert_close(kernel, kernel.T)
    torch.testing.assert_close(kernel, kernel.flip(0))


def test_per_image_sizes_zero_pad_each_kernel_to_the_batch_width() -> None:
    sigma, sizes = torch.tensor([3.0, 3.0, 1.0]), torch.tensor([7, 21, 11])
    builders = {
        "gaussian": lambda index, width, grid: kernels.gaussian(
            sigma[index], sigma[index], torch.zeros_like(sigma[index]), grid, width
        ),
        "sinc": lambda index, width, grid: kernels.circular_lowpass(sigma[index] - 0.5, grid, width),
    }
    for make in builders.values():
        padded = make(slice(None), sizes, 21)
        assert padded.shape == (3, 21, 21)
        torch.testing.assert_close(padded.sum(dim=(1, 2)), torch.ones(3))
        for index, width in enumerate(sizes.tolist()):
            expected = torch.zeros(21, 21)
            start = (21 - width) // 2
            expected[start : start + width, start : start + width] = make(slice(index, index + 1), None, width)[0]
            torch.testing.assert_close(padded[index], expected)


def test_even_width_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        kernels.gaussian(one(1.0), one(1.0), one(0.0), 8)


# ------------------------------------------------------------------------------- applying


def test_each_image_is_filtered_with_its_own_kernel_on_every_channel() -> None:
    count, size = 3, 9
    impulses = torch.zeros(count, 3, 15, 15, dtype=torch.float64)
    impulses[:, :, 7, 7] = 1
    drawn = kernels.gaussian(
        torch.tensor([0.7, 1.5, 3.0]), torch.tensor([0.5, 2.0, 1.0]), torch.tensor([0.2, 1.0, -2.0]), size
    )
    drawn = drawn.double()
    out = kernels.apply_kernels(impulses, drawn)
    for image in range(count):
        for channel in range(3):  # correlation of an impulse: the kernel point-reflected, which is itself
            torch.testing.assert_close(out[image, channel, 3:12, 3:12], drawn[image])


def test_apply_kernels_is_scipy_correlation_with_mirrored_borders() -> None:
    images = torch.rand(2, 3, 20, 17, generator=seeded(0), dtype=torch.float64)
    drawn = kernels.gaussian(torch.tensor([2.0, 0.6]), torch.tensor([0.7, 1.2]), torch.tensor([0.5, 2.0]), 11)
    drawn = drawn.double()
    out = kernels.apply_kernels(images, drawn)
    for image in range(2):
        for channel in range(3):
            expected = ndimage.correlate(images[image, channel].numpy(), drawn[image].numpy(), mode="mirror")
            np.testing.assert_allclose(out[image, channel].numpy(), expected, atol=1e-12)


def test_delta_kernel_is_the_identity() -> None:
    images = torch.rand(4, 3, 24, 24, generator=seeded(1))
    assert torch.equal(kernels.apply_kernels(images, kernels.delta(4, 21, CPU)), images)


@pytest.mark.parametrize(
    "spec", [{"type": "random_blur", "clip": False}, {"type": "sinc_filter", "prob": 1.0, "clip": False}]
)
def test_blur_of_a_constant_image_is_constant(spec: dict) -> None:
    flat = torch.full((16, 3, 24, 24), 0.37)
    out = DEGRADATIONS.build(spec)(flat, seeded(2))
    torch.testing.assert_close(out, flat, rtol=0, atol=1e-6)  # normalised kernels, also the sinc's negative lobes


def test_apply_kernels_refuses_mismatched_kernels() -> None:
    with pytest.raises(ValueError, match="kernels"):
        kernels.apply_kernels(torch.rand(2, 3, 16, 16), kernels.delta(3, 5, CPU))
    with pytest.raises(ValueError, match="kernels"):
        kernels.apply_kernels(torch.rand(2, 3, 16, 16), torch.ones(2, 4, 4) / 16)


@pytest.mark.parametrize("height, width", [(10, 16), (4, 3), (1, 7), (11, 11)])
def test_apply_kernels_mirror_images_smaller_than_the_kernel_as_numpy_pads(height: int, width: int) -> None:
    # a kernel whose only tap is its top-left corner copies the padded image's top-left window, so the
    # output is the padding itself; numpy's reflect pad mirrors again where the pad exceeds the image
    image = torch.rand(1, 2, height, width, dtype=torch.float64)
    corner = torch.zeros(1, 21, 21, dtype=torch.float64)
    corner[0, 0, 0] = 1
    padded = np.pad(image.numpy(), [(0, 0), (0, 0), (10, 10), (10, 10)], mode="reflect")
    np.testing.assert_array_equal(kernels.apply_kernels(image, corner).numpy(), padded[:, :, :height, :width])


# ------------------------------------------------------------------------ the degradations


def build(**spec: object):
    return DEGRADATIONS.build({"type": "random_blur", **spec})


def test_defaults_are_real_esrgan_x4plus_first_stage_and_final_sinc() -> None:
    blur = build()
    assert blur.kernel_list == ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
    assert blur.kernel_prob == [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    assert (blur.sigma, blur.betag, blur.betap, blur.sinc_prob) == ((0.2, 3.0), (0.5, 4.0), (1.0, 2.0), 0.1)
    assert blur.sinc_cutoff == (math.pi / 5, math.pi) and blur.sinc_cutoff_small == (math.pi / 3, math.pi)
    assert (blur.kernel_size, blur.prob) == ((7, 21), 1.0)
    final = DEGRADATIONS.build({"type": "sinc_filter"})
    assert (final.prob, final.cutoff, final.kernel_size) == (0.8, (math.pi / 3, math.pi), (7, 21))


def test_same_seed_same_kernels_and_each_image_its_own() -> None:
    blur = build()
    first = blur.draw(16, seeded(3), CPU)
    assert torch.equal(first.kernels, blur.draw(16, seeded(3), CPU).kernels)
    assert not torch.equal(first.kernels, blur.draw(16, seeded(4), CPU).kernels)
    flat = first.kernels.flatten(1)
    assert len({tuple(row.tolist()) for row in flat}) == 16
    torch.testing.assert_close(first.kernels.sum(dim=(1, 2)), torch.ones(16))
    image = torch.rand(1, 3, 32, 32, generator=seeded(0)).expand(16, -1, -1, -1)
    out = blur(image, seeded(3))
    assert len({round(float(picture.std()), 6) for picture in out}) == 16


def test_kernel_types_sizes_and_sinc_are_drawn_with_real_esrgans_shares() -> None:
    count = 4000
    drawn = build(sigma=3.0, betag=[0.5, 1.0]).draw(count, seeded(5), CPU)  # no tap of a support underflows
    shares = torch.bincount(drawn.kinds, minlength=8).double() / count
    expected = [0.9 * p for p in (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)] + [0.1, 0.0]
    assert drawn.names[6:] == ("sinc", "none")
    for share, probability in zip(shares.tolist(), expected):  # 4 binomial standard deviations
        assert abs(share - probability) <= 4 * math.sqrt(probability * (1 - probability) / count)
    widths = (drawn.kernels[:, 10, :] != 0).sum(dim=1)
    counts = torch.bincount(widths, minlength=22)[7::2] / count
    assert set(widths.tolist()) == set(range(7, 22, 2))
    assert torch.all((counts - 1 / 8).abs() < 4 * math.sqrt(1 / 8 * 7 / 8 / count))


def test_isotropic_types_are_isotropic_and_sigma_spans_its_range() -> None:
    drawn = build(kernel_list=["iso", "aniso"], kernel_prob=[1, 1], sinc_prob=0.0).draw(1000, seeded(6), CPU)
    iso = drawn.kernels[drawn.kinds == 0].double()
    aniso = drawn.kernels[drawn.kinds == 1]
    torch.testing.assert_close(iso, iso.transpose(1, 2))
    assert (aniso - aniso.transpose(1, 2)).abs().amax(dim=(1, 2)).gt(1e-4).float().mean() > 0.9
    sigma = torch.sqrt(-1 / (2 * torch.log(iso[:, 10, 11] / iso[:, 10, 10])))  # k(1, 0) / k(0, 0) = exp(-1 / 2 s^2)
    assert sigma.min() >= 0.2 - 1e-6 and sigma.max() <= 3.0 + 1e-4
    assert sigma.min() < 0.3 and sigma.max() > 2.9


def test_beta_is_drawn_half_below_and_half_above_one() -> None:
    sigma, count = 1.5, 2000

    def betas(bounds: list[float]) -> torch.Tensor:
        blur = build(kernel_list=["generalized_iso"], kernel_prob=[1], sigma=sigma, betag=bounds, sinc_prob=0.0)
        k = blur.draw(count, seeded(7), CPU, torch.float64).kernels
        # k(2, 0) / k(0, 0) = exp(-(4 / sigma^2)^beta / 2)
        return torch.log(-2 * torch.log(k[:, 10, 12] / k[:, 10, 10])) / math.log(4 / sigma**2)

    beta = betas([0.5, 4.0])
    assert beta.min() >= 0.5 - 1e-9 and beta.max() <= 4.0 + 1e-9
    below = (beta < 1).double().mean().item()
    assert abs(below - 0.5) < 4 * math.sqrt(0.25 / count)
    assert abs(beta[beta > 1].mean().item() - 2.5) < 0.1  # uniform on [1, 4] above one
    outside = betas([2.0, 3.0])  # a range without 1: uniform over it
    assert outside.min() >= 2 - 1e-9 and outside.max() <= 3 + 1e-9 and abs(outside.mean().item() - 2.5) < 0.05


def test_sinc_cutoff_depends_on_the_kernel_width() -> None:
    blur = build(sinc_prob=1.0, sinc_cutoff=0.5, sinc_cutoff_small=2.0)
    drawn = blur.draw(200, seeded(8), CPU, torch.float64)
    assert torch.all(drawn.kinds == 6)
    widths = (drawn.kernels[:, 10, :] != 0).sum(dim=1)
    ratio = drawn.kernels[:, 10, 11] / drawn.kernels[:, 10, 10]  # 2 J1(w) / w at radius 1
    small = torch.tensor(2 * special.j1(2.0) / 2.0, dtype=torch.float64)
    large = torch.tensor(2 * special.j1(0.5) / 0.5, dtype=torch.float64)
    torch.testing.assert_close(ratio[widths < 13], small.expand(int((widths < 13).sum())))
    torch.testing.assert_close(ratio[widths >= 13], large.expand(int((widths >= 13).sum())))


def test_prob_passes_images_through_unchanged() -> None:
    images = torch.rand(64, 3, 24, 24, generator=seeded(9))
    blur = build(prob=0.5)
    out, drawn = blur(images, seeded(10)), blur.draw(64, seeded(10), CPU)
    kept = drawn.kinds == 7
    assert 16 < int(kept.sum()) < 48
    assert torch.equal(out[kept], images[kept])
    assert torch.all((out[~kept] - images[~kept]).abs().amax(dim=(1, 2, 3)) > 0)


def test_sinc_filter_draws_with_its_probability_and_rings() -> None:
    final = DEGRADATIONS.build({"type": "sinc_filter"})
    drawn = final.draw(2000, seeded(11), CPU)
    assert abs((drawn.kinds == 0).double().mean().item() - 0.8) < 4 * math.sqrt(0.16 / 2000)
    torch.testing.assert_close(drawn.kernels[drawn.kinds == 1], kernels.delta(int((drawn.kinds == 1).sum()), 21, CPU))
    step = torch.zeros(1, 3, 24, 24)
    step[..., 12:] = 1
    raw = DEGRADATIONS.build({"type": "sinc_filter", "prob": 1.0, "clip": False})(step, seeded(0))
    assert raw.max() > 1 and raw.min() < 0  # ringing on both sides of the edge
    clipped = DEGRADATIONS.build({"type": "sinc_filter", "prob": 1.0})(step, seeded(0))
    torch.testing.assert_close(clipped, raw.clamp(0, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_any_float_dtype_and_channels_last(dtype: torch.dtype) -> None:
    images = torch.rand(4, 3, 24, 24, generator=seeded(12)).to(dtype).contiguous(memory_format=torch.channels_last)
    for spec in ({"type": "random_blur"}, {"type": "sinc_filter"}):
        out = DEGRADATIONS.build(spec)(images, seeded(13))
        assert out.shape == images.shape and out.dtype == dtype
        reference = DEGRADATIONS.build(spec)(images.double(), seeded(13))
        tolerance = 0.03 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(out.double(), reference, rtol=0, atol=tolerance)


@pytest.mark.parametrize(
    ("spec", "argument"),
    [
        ({"kernel_list": ["iso", "gaussian"]}, "kernel_list"),
        ({"kernel_list": ["iso"], "kernel_prob": [0.5, 0.5]}, "kernel_prob"),
        ({"kernel_prob": [1, 1, 1, 1, 1, -1]}, "kernel_prob"),
        ({"sigma": -0.5}, "sigma"),
        ({"betap": [2, 1]}, "betap"),
        ({"sinc_prob": 1.5}, "sinc_prob"),
        ({"sinc_cutoff": [0, 1]}, "sinc_cutoff"),
        ({"sinc_cutoff_small": [1, 4]}, "sinc_cutoff_small"),
        ({"kernel_size": [7, 20]}, "kernel_size"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"prob": -0.1}, "prob"),
        ({"type": "sinc_filter", "cutoff": 60}, "cutoff"),
        ({"type": "sinc_filter", "kernel_size": [9, 7]}, "kernel_size"),
    ],
)
def test_bad_values_raise_naming_the_argument(spec: dict, argument: str) -> None:
    with pytest.raises(RegistryError, match=argument):
        DEGRADATIONS.build({"type": "random_blur", **spec})
