"""Image quality metrics computed the way super-resolution papers report them.

Every function takes batches ``(N, C, H, W)`` of floats in [0, 1] with C = 1 or 3, on any device,
and returns one value per image, shape ``(N,)``. By default the inputs are first rounded to 8-bit
levels as a saved PNG holds them (:func:`sr_toolkit.core.imageio.quantize`), so a score matches
the one measured on the saved files. PSNR and SSIM follow the MATLAB conventions of the literature:
luma by ``rgb2ycbcr`` on 8-bit images (rounded as MATLAB rounds), SSIM of Wang et al. (2004) with
an 11x11 Gaussian window (sigma 1.5) and 'valid' filtering.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import lpips
import pytorch_msssim
import torch
import torch.nn.functional as F

from sr_toolkit.core.imageio import quantize as quantize  # re-exported: the rounding every score applies
from sr_toolkit.core.resize import matlab_uint8
from sr_toolkit.core.weights import WeightsChoice, backbone_state_dict

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
MS_SSIM_LEVELS = 5
MS_SSIM_MIN_SIDE = (SSIM_WINDOW - 1) * 2 ** (MS_SSIM_LEVELS - 1) + 1
"""The smallest image side (161 pixels) MS-SSIM accepts: it filters after 4 halvings."""

LpipsNet = Literal["alex", "vgg", "squeeze"]
_LPIPS_BACKBONES = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def _check_images(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected a batch (N, C, H, W) with C = 1 or 3, got shape {tuple(x.shape)}")


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    _check_images(output, "output")
    _check_images(target, "target")
    if output.shape != target.shape:
        raise ValueError(f"output and target differ in shape: {tuple(output.shape)} vs {tuple(target.shape)}")


def _float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float64, moved to the CPU where the device has no float64 (Apple MPS)."""
    if x.device.type == "mps":
        x = x.cpu()
    return x.to(torch.float64)


def rgb_to_y(x: torch.Tensor, round_result: bool = True) -> torch.Tensor:
    """BT.601 luma of RGB images as MATLAB's ``rgb2ycbcr`` gives it, scaled back to [0, 1] units.

    On the 0-255 scale Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]), in [16, 235];
    MATLAB returns it as uint8, so it is rounded (exact ties up) unless ``round_result`` is False.
    The result is Y / 255, shape ``(N, 1, H, W)``. A 1-channel input is returned unchanged.
    """
    _check_images(x, "rgb_to_y input")
    if x.shape[1] == 1:
        return x
    # Integer coefficients (x 1000) in float64 keep 8-bit inputs exact, so exact ties round up.
    rgb = _float64(x) * 255
    weights = rgb.new_tensor([65481.0, 128553.0, 24966.0]).view(1, 3, 1, 1)
    y = 16 + (rgb * weights).sum(dim=1, keepdim=True) / 255000
    if round_result:
        y = matlab_uint8(y)
    return (y / 255).to(device=x.device, dtype=x.dtype)


def shave(x: torch.Tensor, border: int) -> torch.Tensor:
    """Crop ``border`` pixels from each side of the images."""
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return x
    if min(x.shape[-2:]) <= 2 * border:
        raise ValueError(f"crop_border={border} leaves nothing of a {x.shape[-2]}x{x.shape[-1]} image")
    return x[..., border:-border, border:-border]


def _prepare(
    output: torch.Tensor, target: torch.Tensor, y_channel: bool, crop_border: int, quantize_inputs: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images in float64, quantised, reduced to luma and cropped as the options ask."""
    _check_pair(output, target)
    images = []
    for x in (output, target):
        x = _float64(x)
        if quantize_inputs:
            x = quantize(x)
        if y_channel:
            x = rgb_to_y(x)
        images.append(shave(x, crop_border))
    return images[0], images[1]


def mse(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize_inputs: bool = True,
) -> torch.Tensor:
    """Mean squared error per image on [0, 1] values, prepared as for :func:`psnr`."""
    x, y = _prepare(output, target, y_channel, crop_border, quantize_inputs)
    return (x - y).pow(2).flatten(1).mean(dim=1)


def psnr(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize_inputs: bool = True,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (data range 1, or 255 on the 8-bit scale).

    Identical images score ``inf``.
    """
    error = mse(output, target, y_channel=y_channel, crop_border=crop_border, quantize_inputs=quantize_inputs)
    return 10 * torch.log10(1 / error)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The normalised 1-D Gaussian of SSIM (11 taps, sigma 1.5)."""
    coords = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - SSIM_WINDOW // 2
    window = torch.exp(-coords.pow(2) / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filtering of each image plane, keeping only the fully covered pixels."""
    batch, channels, height, width = x.shape
    planes = x.reshape(batch * channels, 1, height, width)
    planes = F.conv2d(F.conv2d(planes, window.view(1, 1, -1, 1)), window.view(1, 1, 1, -1))
    return planes.reshape(batch, channels, *planes.shape[-2:])


def ssim(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize_inputs: bool = True,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), the mean over channels for colour.

    11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population
    (co)variances, 'valid' filtering as the reference MATLAB ``ssim_index``; computed in float64.
    """
    x, y = _prepare(output, target, y_channel, crop_border, quantize_inputs)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (after crop_border), "
            f"got {x.shape[-2]}x{x.shape[-1]}"
        )
    window = _gaussian_window(x.dtype, x.device)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    moments = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, xx, yy, xy = moments.chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x.pow(2), yy - mu_y.pow(2), xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
"""The 4-neighbour discrete Laplacian, the high-pass filter of :func:`hf_ratio`."""


def laplacian_energy(x: torch.Tensor) -> torch.Tensor:
    """Energy of the Laplacian per image: the sum, over channels and pixels, of the squared response
    of :data:`LAPLACIAN` with 'valid' filtering (no padding: the outermost pixels only feed their
    neighbours), for (N, C, H, W) images with H, W >= 3; shape (N,), in the input's dtype."""
    batch, channels, height, width = x.shape
    kernel = x.new_tensor(LAPLACIAN).view(1, 1, 3, 3)
    response = F.conv2d(x.reshape(batch * channels, 1, height, width), kernel)
    return response.pow(2).reshape(batch, -1).sum(dim=1)


def hf_ratio(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize_inputs: bool = True,
) -> torch.Tensor:
    """High-frequency energy of the output over that of the target, per image.

    Both images are prepared as for :func:`psnr` (float64, rounded to 8-bit levels, BT.601 luma with
    ``y_channel``, ``crop_border`` pixels shaved), then ``hf_ratio = E(output) / E(target)`` with
    ``E`` :func:`laplacian_energy`: the squared response of the 4-neighbour Laplacian
    ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, 'valid' filtering, summed over channels and pixels.
    By Parseval's theorem ``E`` is the image's power spectrum weighted by the filter's gain
    ``(4 - 2 cos wx - 2 cos wy)^2``: about ``|w|^4`` at low frequencies, 64 at the Nyquist corner,
    so the ratio compares the top of the two spectra and ignores brightness and smooth shading.

    1 means as much fine detail as the target; under 1 smoother (blurred: a PSNR-trained network's
    usual output); over 1 more (sharpened, noisy, or detail a GAN invented). It says how much, not
    whether the detail is right: read it next to PSNR/SSIM. An output identical to the target
    scores exactly 1; a flat target (zero energy) scores 1 against a flat output, else ``inf``.

    The idea: comparing the high-frequency part of the spectra of generated and real images, as
    Durall, Keuper and Keuper (CVPR 2020, "Watch your Up-Convolution: CNN Based Generative Deep
    Neural Networks are Failing to Reproduce Spectral Distributions", arXiv:2003.01826) do for GAN
    images and Luo, Zhu, Xu and Liu (ICCV 2023, "On the Effectiveness of Spectral Discriminators
    for Perceptual Quality Improvement", arXiv:2307.12027, Fig. 1) for Real-ESRNet against
    Real-ESRGAN outputs; the energy of the Laplacian is a standard focus (sharpness) measure, e.g.
    the one Kautsky et al. compare with (Pattern Recognition Letters 23, 2002, "A new
    wavelet-based measure of image focus"). Raises ValueError for images under 3x3 after the crop.
    """
    x, y = _prepare(output, target, y_channel, crop_border, quantize_inputs)
    if min(x.shape[-2:]) < 3:
        raise ValueError(
            f"the HF ratio needs images of at least 3x3 pixels (after crop_border), got {x.shape[-2]}x{x.shape[-1]}"
        )
    energy_x, energy_y = laplacian_energy(x), laplacian_energy(y)
    both_flat = (energy_x == 0) & (energy_y == 0)
    return torch.where(both_flat, torch.ones_like(energy_x), energy_x / energy_y)


def check_ms_ssim_size(x: torch.Tensor) -> None:
    """Raise ValueError when images are too small for MS-SSIM (see ``MS_SSIM_MIN_SIDE``)."""
    height, width = x.shape[-2:]
    if min(height, width) < MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs images whose smaller side is at least {MS_SSIM_MIN_SIDE} pixels "
            f"({MS_SSIM_LEVELS} scales of an {SSIM_WINDOW}x{SSIM_WINDOW} window), got {height}x{width}"
        )


def ms_ssim(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize_inputs: bool = True,
) -> torch.Tensor:
    """Multi-scale SSIM per image (Wang et al. 2003) by pytorch-msssim, data range 1, in float64."""
    x, y = _prepare(output, target, y_channel, crop_border, quantize_inputs)
    check_ms_ssim_size(x)
    # pytorch-msssim scores channels separately then averages them; one plane per batch item
    # gives the same values without its grouped convolution, which is slow in float64 on CPUs.
    batch, channels, height, width = x.shape
    planes = [image.reshape(batch * channels, 1, height, width) for image in (x, y)]
    values = pytorch_msssim.ms_ssim(*planes, data_range=1.0, size_average=False)
    return values.view(batch, channels).mean(dim=1)


def build_lpips(
    net: LpipsNet = "alex", weights: WeightsChoice = "pretrained", weights_path: str | Path | None = None
) -> lpips.LPIPS:
    """An LPIPS model in eval mode: lpips' own linear layers on a torchvision backbone.

    The backbone's ImageNet weights are resolved by :func:`sr_toolkit.core.weights.backbone_state_dict`
    (``weights_path``, the torch hub cache or a download); ``weights="random"`` keeps a random
    backbone, for tests only.
    """
    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {', '.join(_LPIPS_BACKBONES)}, got {net!r}")
    state = backbone_state_dict(_LPIPS_BACKBONES[net], weights=weights, weights_path=weights_path, purpose="LPIPS")
    with warnings.catch_warnings():  # lpips builds the random backbone with torchvision's old API
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if state is not None:
        _load_lpips_backbone(model, state)
    return model.eval().requires_grad_(False)


def _load_lpips_backbone(model: lpips.LPIPS, state: dict[str, torch.Tensor]) -> None:
    """Copy torchvision ``features.<i>.*`` weights into lpips' slices, which keep the index ``i``."""
    mapped = {
        f"{slice_name}.{key}": state[f"features.{key}"]
        for slice_name, block in model.net.named_children()
        for key in block.state_dict()
    }
    model.net.load_state_dict(mapped)


def lpips_distance(
    output: torch.Tensor, target: torch.Tensor, model: lpips.LPIPS, *, quantize_inputs: bool = True
) -> torch.Tensor:
    """LPIPS distance per image (lower is more similar); inputs in [0, 1] are scaled to [-1, 1].

    Grayscale images are repeated to three channels; the inputs are moved to the model's device.
    """
    _check_pair(output, target)
    device = next(model.parameters()).device
    images = []
    for x in (output, target):
        x = x.to(device=device, dtype=torch.float32)
        if quantize_inputs:
            x = quantize(x)
        images.append(x.expand(-1, 3, -1, -1) * 2 - 1)
    return model(images[0], images[1]).flatten()
