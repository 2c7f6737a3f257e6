"""Unsharp masking of image batches on their device, as Real-ESRGAN sharpens its ground truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sr_toolkit.data.kernels import reflect_indices

USM_KERNEL_SIZE = 51
"""Side of the Gaussian kernel, in pixels: Real-ESRGAN's ``radius`` 50, made odd."""


def gaussian_kernel_1d(size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The normalised 1-D Gaussian of ``size`` taps (odd) with the standard deviation OpenCV's
    ``cv2.getGaussianKernel(size, 0)`` derives from the size, ``0.3 ((size - 1) / 2 - 1) + 0.8`` pixels
    (8.0 for 51 taps; OpenCV tabulates sizes up to 7 instead), computed in float64 as OpenCV does."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(device=device, dtype=dtype)


def gaussian_blur(images: Tensor, size: int = USM_KERNEL_SIZE) -> Tensor:
    """Each channel of (N, C, H, W) ``images`` blurred by the ``size``-tap Gaussian of
    :func:`gaussian_kernel_1d` in both directions (the separable form of OpenCV's ``GaussianBlur`` with
    ``sigma`` 0), edges mirrored as :func:`~sr_toolkit.data.kernels.reflect_indices` does; any H, W >= 1."""
    count, channels, height, width = images.shape
    kernel = gaussian_kernel_1d(size, images.device, images.dtype)
    pad = size // 2
    planes = count * channels  # one depthwise (grouped) convolution: on CPUs several times one-plane convs
    taps = kernel.expand(planes, size).reshape(planes, 1, size)
    stack = images.reshape(1, planes, height, width).index_select(2, reflect_indices(height, pad, images.device))
    stack = F.conv2d(stack, taps.unsqueeze(3), groups=planes)
    stack = F.conv2d(
        stack.index_select(3, reflect_indices(width, pad, images.device)), taps.unsqueeze(2), groups=planes
    )
    return stack.view(count, channels, height, width)


def unsharp_mask(images: Tensor, weight: float = 0.5, threshold: float = 10.0) -> Tensor:
    """Real-ESRGAN's unsharp-masked ground truth of (N, C, H, W) ``images`` in [0, 1], same shape, device
    and dtype, in [0, 1].

    With ``blur`` the 51x51 Gaussian blur of :func:`gaussian_blur` (sigma 8 pixels) and ``residual = images -
    blur``: ``sharp = clamp(images + weight * residual, 0, 1)``; ``mask`` is 1 where ``|residual| * 255 >
    threshold`` (per channel, in 8-bit levels), else 0; ``soft = gaussian_blur(mask)``; the result is ``soft *
    sharp + (1 - soft) * images``, so flat regions stay as they are. Computed with autocast off (a bfloat16
    blur would flip mask pixels); deterministic. Follows BasicSR's ``basicsr/utils/img_process_util.py``
    ``USMSharp`` (radius 50, weight 0.5, threshold 10), which Real-ESRGAN applies to its targets. Each image
    is sharpened as given, edges mirrored: on training patches, pixels within 25 of a patch edge can differ
    from Real-ESRGAN's, which sharpens 400-pixel crops and then cuts its 256-pixel patches from them.
    """
    with torch.autocast(images.device.type, enabled=False):
        residual = images - gaussian_blur(images)
        mask = (residual.abs() * 255 > threshold).to(images.dtype)
        soft = gaussian_blur(mask)
        sharp = (images + weight * residual).clamp(0, 1)
        return soft * sharp + (1 - soft) * images
