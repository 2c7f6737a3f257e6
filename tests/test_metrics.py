"""Metrics against scikit-image and MATLAB's conventions, on real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_msssim
import torch
import torchvision
from PIL import Image
from scipy import ndimage
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import METRICS
from sr_toolkit.core.weights import WeightsUnavailableError
from sr_toolkit.evaluation import metrics


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 image (H, W) or (H, W, C) as a batch of one (1, C, H, W) in [0, 1]."""
    array = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255


def add_noise(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).round().astype(np.uint8)


def blur(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(image, sigma=(1.2, 1.2, 0)).astype(np.uint8)


def bicubic_round_trip(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((width // 4, height // 4), Image.BICUBIC)
    return np.asarray(small.resize((width, height), Image.BICUBIC))


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    channel_axis = 2 if a.ndim == 3 else None
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=channel_axis,
    )


def matlab_y(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr(uint8)(:, :, 1), in exact integer arithmetic: round(16 + T * rgb / 255)."""
    numerator = image.astype(np.int64) @ np.array([65481, 128553, 24966])
    return (16 + (numerator + 127500) // 255000).astype(np.uint8)


CASES = [
    pytest.param(data.astronaut, add_noise, id="astronaut-noise"),
    pytest.param(data.coffee, blur, id="coffee-blur"),
    pytest.param(data.chelsea, bicubic_round_trip, id="chelsea-bicubic"),
]


@pytest.mark.parametrize(("photo", "degrade"), CASES)
def test_psnr_and_ssim_match_skimage_on_rgb(photo, degrade):
    target = photo()
    output = degrade(target)
    ours_psnr = metrics.psnr(to_tensor(output), to_tensor(target)).item()
    ours_ssim = metrics.ssim(to_tensor(output), to_tensor(target)).item()
    assert ours_psnr == pytest.approx(peak_signal_noise_ratio(target, output, data_range=255), abs=1e-6)
    assert ours_ssim == pytest.approx(skimage_ssim(target, output), abs=1e-6)
    assert 15 < ours_psnr < 45 and 0.3 < ours_ssim < 0.99  # a real degradation, not a trivial pair


@pytest.mark.parametrize(("photo", "degrade"), CASES)
def test_psnr_and_ssim_match_skimage_on_matlab_luma(photo, degrade):
    target = photo()
    output = degrade(target)
    y_out, y_target = matlab_y(output), matlab_y(target)
    ours_psnr = metrics.psnr(to_tensor(output), to_tensor(target), y_channel=True).item()
    ours_ssim = metrics.ssim(to_tensor(output), to_tensor(target), y_channel=True).item()
    assert ours_psnr == pytest.approx(peak_signal_noise_ratio(y_target, y_out, data_range=255), abs=1e-6)
    assert ours_ssim == pytest.approx(skimage_ssim(y_target, y_out), abs=1e-6)
    assert ours_psnr != pytest.approx(metrics.psnr(to_tensor(output), to_tensor(target)).item(), abs=0.01)


def test_crop_border_scores_the_inner_region_only():
    target = data.astronaut()
    output = add_noise(target)
    output[:8] = 0  # ruin a band the crop removes
    border = 8
    inner_t, inner_o = target[border:-border, border:-border], output[border:-border, border:-border]
    cropped_psnr = metrics.psnr(to_tensor(output), to_tensor(target), crop_border=border).item()
    cropped_ssim = metrics.ssim(to_tensor(output), to_tensor(target), crop_border=border).item()
    assert cropped_psnr == pytest.approx(peak_signal_noise_ratio(inner_t, inner_o, data_range=255), abs=1e-6)
    assert cropped_ssim == pytest.approx(skimage_ssim(inner_t, inner_o), abs=1e-6)
    assert cropped_psnr > metrics.psnr(to_tensor(output), to_tensor(target)).item() + 1


def test_rgb_to_y_matches_matlab_integer_arithmetic_and_skimage():
    for photo in (data.astronaut(), data.coffee()):
        ours = (metrics.rgb_to_y(to_tensor(photo).double())[0, 0] * 255).numpy()
        np.testing.assert_array_equal(ours, matlab_y(photo))
        # skimage uses MATLAB's constants; its float rounding may only differ at exact .5 ties
        skimage_y = np.floor(color.rgb2ycbcr(photo)[..., 0] + 0.5)
        numerator = photo.astype(np.int64) @ np.array([65481, 128553, 24966])
        ties = numerator % 255000 == 127500
        np.testing.assert_array_equal(ours[~ties], skimage_y[~ties])


def test_rgb_to_y_known_values_and_unrounded_option():
    pixels = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]) / 255.0
    batch = pixels.T.reshape(1, 3, 1, 5).double()
    # MATLAB: rgb2ycbcr(uint8([0 0 0; 255 255 255; 255 0 0; 0 255 0; 0 0 255])) luma column
    assert (metrics.rgb_to_y(batch) * 255).flatten().tolist() == [16, 235, 81, 145, 41]
    unrounded = (metrics.rgb_to_y(batch, round_result=False) * 255).flatten()
    torch.testing.assert_close(unrounded, torch.tensor([16, 235, 81.481, 144.553, 40.966]).double())
    assert metrics.rgb_to_y(batch).shape == (1, 1, 1, 5)


def test_grayscale_images_are_scored_on_their_own_values():
    target = data.camera()
    output = add_noise(target)
    ours_psnr = metrics.psnr(to_tensor(output), to_tensor(target)).item()
    assert ours_psnr == pytest.approx(peak_signal_noise_ratio(target, output, data_range=255), abs=1e-6)
    assert metrics.ssim(to_tensor(output), to_tensor(target)).item() == pytest.approx(
        skimage_ssim(target, output), abs=1e-6
    )
    assert metrics.psnr(to_tensor(output), to_tensor(target), y_channel=True).item() == ours_psnr
    gray = to_tensor(target)
    assert metrics.rgb_to_y(gray) is gray


def test_identical_images_score_inf_psnr_and_unit_ssim():
    image = to_tensor(data.chelsea()[:192, :192])
    assert metrics.psnr(image, image.clone()).item() == math.inf
    assert metrics.ssim(image, image.clone()).item() == pytest.approx(1.0, abs=1e-12)
    assert metrics.ms_ssim(image, image.clone()).item() == pytest.approx(1.0, abs=1e-6)


def test_inputs_are_quantised_to_8_bit_levels_unless_told_not_to():
    image = to_tensor(data.chelsea())
    off_level = image + 0.3 / 255  # rounds back to the same 8-bit level
    assert metrics.psnr(off_level, image).item() == math.inf
    assert metrics.psnr(off_level, image, quantize_inputs=False).item() == pytest.approx(
        10 * math.log10(255**2 / 0.3**2), abs=0.1
    )
    assert torch.equal(metrics.quantize(torch.tensor([-0.1, 0.5, 1.2])), torch.tensor([0.0, 128 / 255, 1.0]))


def test_batch_gives_one_value_per_image():
    crop = np.s_[:192, :192]
    targets = torch.cat([to_tensor(data.astronaut()[crop]), to_tensor(data.coffee()[crop])])
    outputs = torch.cat([to_tensor(add_noise(data.astronaut()[crop])), targets[1:]])
    for metric in (metrics.psnr, metrics.ssim, metrics.ms_ssim):
        values = metric(outputs, targets)
        assert values.shape == (2,)
        assert values[0].item() == pytest.approx(metric(outputs[:1], targets[:1]).item(), abs=1e-9)
    assert metrics.psnr(outputs, targets)[1].item() == math.inf


@pytest.mark.parametrize(
    ("output", "target", "message"),
    [
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31), "differ in shape"),
        (torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32), "C = 1 or 3"),
        (torch.rand(3, 32, 32), torch.rand(3, 32, 32), "N, C, H, W"),
    ],
)
def test_bad_inputs_raise_clear_errors(output, target, message):
    with pytest.raises(ValueError, match=message):
        metrics.psnr(output, target)


def test_ssim_rejects_images_smaller_than_its_window_after_crop():
    image = torch.rand(1, 3, 20, 20)
    assert metrics.ssim(image, image, crop_border=4).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(image, image, crop_border=5)
    with pytest.raises(ValueError, match="crop_border=10 leaves nothing"):
        metrics.psnr(image, image, crop_border=10)


def test_ms_ssim_ranks_degradations_and_rejects_small_images():
    photo = data.astronaut()[:192, :192]
    target = to_tensor(photo)
    mild = metrics.ms_ssim(to_tensor(blur(photo)), target).item()
    strong = metrics.ms_ssim(to_tensor(add_noise(add_noise(photo))), target).item()
    assert 0 < strong < mild < 1
    noisy = to_tensor(add_noise(photo))
    reference = pytorch_msssim.ms_ssim(
        metrics.quantize(noisy.double()), target.double(), data_range=1.0, size_average=False
    )
    torch.testing.assert_close(metrics.ms_ssim(noisy, target), reference)
    assert metrics.MS_SSIM_MIN_SIDE == 161
    smallest = torch.rand(1, 3, 161, 200)
    assert metrics.ms_ssim(smallest, smallest).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"at least 161 pixels.*got 160x200"):
        metrics.ms_ssim(torch.rand(1, 3, 160, 200), torch.rand(1, 3, 160, 200))


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return str(path)


def test_lpips_loads_the_backbone_from_weights_path(alexnet_file):
    model = metrics.build_lpips("alex", weights_path=alexnet_file)
    saved = torch.load(alexnet_file, weights_only=True)
    assert torch.equal(model.net.slice1[0].weight, saved["features.0.weight"])
    assert torch.equal(getattr(model.net.slice5, "10").bias, saved["features.10.bias"])
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_is_zero_for_identical_images_and_positive_otherwise(alexnet_file):
    model = metrics.build_lpips("alex", weights_path=alexnet_file)
    target = to_tensor(data.chelsea()[:128, :128])
    batch = torch.cat([target, to_tensor(add_noise(data.chelsea()[:128, :128]))])
    distances = metrics.lpips_distance(batch, target.expand(2, -1, -1, -1), model)
    assert distances.shape == (2,)
    assert distances[0].item() == pytest.approx(0.0, abs=1e-7)
    assert distances[1].item() > 1e-3
    gray = to_tensor(data.camera()[:64, :64])
    assert metrics.lpips_distance(gray, gray, model).item() == pytest.approx(0.0, abs=1e-7)


def test_lpips_offline_without_weights_raises_one_actionable_line(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        metrics.build_lpips("alex")
    message = str(error.value)
    assert "\n" not in message
    assert "LPIPS" in message and "weights_path=" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_lpips_weight_files_are_checked(tmp_path, alexnet_file):
    with pytest.raises(WeightsUnavailableError, match="is not a file"):
        metrics.build_lpips("alex", weights_path=tmp_path / "missing.pth")
    with pytest.raises(WeightsUnavailableError, match="does not hold torchvision vgg16 weights"):
        metrics.build_lpips("vgg", weights_path=alexnet_file)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="not a readable PyTorch state dict"):
        metrics.build_lpips("alex", weights_path=tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="contradicts weights_path"):
        metrics.build_lpips("alex", weights="random", weights_path=alexnet_file)


def test_registered_metrics_build_from_specs_and_compute():
    target = to_tensor(data.astronaut()[:200, :200])
    output = to_tensor(add_noise(data.astronaut()[:200, :200]))
    psnr_y = METRICS.build({"type": "psnr", "y_channel": True, "crop_border": 4})
    assert (psnr_y.name, psnr_y.higher_is_better) == ("psnr_y", True)
    assert torch.equal(psnr_y(output, target), metrics.psnr(output, target, y_channel=True, crop_border=4))
    ssim = METRICS.build({"type": "ssim"})
    assert ssim.name == "ssim" and torch.equal(ssim(output, target), metrics.ssim(output, target))
    ms_ssim = METRICS.build({"type": "ms_ssim"})
    assert ms_ssim.higher_is_better and torch.equal(ms_ssim(output, target), metrics.ms_ssim(output, target))
    with pytest.raises(RegistryError, match="crop_border must be >= 0"):
        METRICS.build({"type": "psnr", "crop_border": -1})


def test_registered_lpips_builds_with_weights_path_or_explicit_random(alexnet_file):
    target = to_tensor(data.coffee()[:96, :96])
    lpips_metric = METRICS.build({"type": "lpips", "weights_path": alexnet_file})
    assert (lpips_metric.name, lpips_metric.higher_is_better) == ("lpips", False)
    assert lpips_metric(target, target).shape == (1,)
    random_metric = METRICS.build({"type": "lpips", "weights": "random"})
    assert random_metric(target, 1 - target).item() > 0
    with pytest.raises(RegistryError, match=r"one of pretrained|random"):
        METRICS.build({"type": "lpips", "weights": "imagenet"})


def numpy_laplacian_energy(image: np.ndarray) -> float:
    """Sum over channels of the squared 4-neighbour Laplacian at the pixels whose neighbours all exist."""
    planes = image.astype(np.float64) / 255
    planes = planes[..., None] if planes.ndim == 2 else planes
    centre = planes[1:-1, 1:-1]
    laplacian = planes[:-2, 1:-1] + planes[2:, 1:-1] + planes[1:-1, :-2] + planes[1:-1, 2:] - 4 * centre
    return float((laplacian**2).sum())


def test_hf_ratio_is_one_for_the_target_below_for_blur_above_for_noise():
    target = data.astronaut()[:120, :150]
    ratio = {
        name: metrics.hf_ratio(to_tensor(output), to_tensor(target)).item()
        for name, output in (("same", target), ("blurred", blur(target)), ("noisy", add_noise(target)))
    }
    assert ratio["same"] == 1.0
    # The blur keeps exp(-1.44 |w|^2) of the energy at frequency w, under 3 % beyond half the Nyquist
    # frequency where most of the Laplacian's weight lies; the noise adds 20 (12/255)^2 = 0.044 per pixel.
    assert ratio["blurred"] < 0.5 and ratio["noisy"] > 2
    for name, output in (("blurred", blur(target)), ("noisy", add_noise(target))):
        expected = numpy_laplacian_energy(output) / numpy_laplacian_energy(target)
        assert ratio[name] == pytest.approx(expected, rel=1e-12)


def test_hf_ratio_on_luma_after_the_crop_equals_numpy():
    target = data.coffee()[:100, :120]
    output = bicubic_round_trip(target)
    value = metrics.hf_ratio(to_tensor(output), to_tensor(target), y_channel=True, crop_border=4).item()
    crop = (slice(4, -4), slice(4, -4))
    expected = numpy_laplacian_energy(matlab_y(output)[crop]) / numpy_laplacian_energy(matlab_y(target)[crop])
    assert value == pytest.approx(expected, rel=1e-12) and value < 1
    built = METRICS.build({"type": "hf_ratio", "y_channel": True, "crop_border": 4})
    assert (built.name, built.higher_is_better, built.ideal) == ("hf_ratio_y", None, 1.0)
    assert built(to_tensor(output), to_tensor(target)).item() == value


def test_hf_ratio_of_checkerboards_is_the_squared_amplitude_ratio():
    # A checkerboard is the Nyquist frequency: the Laplacian is -8 times its deviation from the mean.
    board = np.indices((16, 20)).sum(axis=0) % 2 * 2 - 1  # +-1
    low, high = ((128 + amplitude * board).astype(np.uint8) for amplitude in (32, 64))
    assert metrics.hf_ratio(to_tensor(low), to_tensor(high)).item() == pytest.approx(0.25, rel=1e-12)
    assert metrics.hf_ratio(to_tensor(high), to_tensor(low)).item() == pytest.approx(4.0, rel=1e-12)


def test_hf_ratio_of_a_flat_target_and_of_too_small_images():
    flat = np.full((12, 12), 90, np.uint8)
    assert metrics.hf_ratio(to_tensor(flat), to_tensor(flat)).item() == 1.0
    assert metrics.hf_ratio(to_tensor(add_noise(flat[..., None])[..., 0]), to_tensor(flat)).item() == math.inf
    with pytest.raises(ValueError, match="at least 3x3 pixels"):
        metrics.hf_ratio(to_tensor(flat), to_tensor(flat), crop_border=5)
