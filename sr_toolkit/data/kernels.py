"""Blur kernels of Real-ESRGAN's degradation model, built for a whole batch on its device, and applied.

Every function takes one parameter value per image (1-D tensors of length N, on one device and in one
float dtype) and returns N kernels (N, K, K) in that dtype, each normalised to sum to 1. ``size`` is the
odd grid width K shared by the batch; ``sizes`` (optional, N odd integers <= K) gives each image its own
support: image i's kernel is built on a ``sizes[i]`` x ``sizes[i]`` grid and zero-padded to K x K, so
kernels of different sizes are applied in one grouped convolution (:func:`apply_kernels`).

Coordinates are pixel offsets from the kernel's centre: x along columns (to the right), y along rows
(downwards), as in BasicSR's ``mesh_grid``. An anisotropic kernel has covariance
``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``: its ``sigma_x`` axis points along
``(cos theta, sin theta)`` in (x, y). Every kernel here is point-symmetric, so correlation (what
``conv2d`` computes) equals convolution.

Definitions follow BasicSR's ``basicsr/data/degradations.py`` (``bivariate_Gaussian``,
``bivariate_generalized_Gaussian``, ``bivariate_plateau``, ``circular_lowpass_kernel``), used by
Real-ESRGAN (Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
Data", ICCVW 2021, section 3.1); this is an independent batched implementation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _offsets(size: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Column (x) and row (y) offsets from the centre of a size x size grid, each (size, size)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size: expected an odd kernel width >= 1, got {size}")
    axis = torch.arange(size, device=like.device, dtype=like.dtype) - size // 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x, y


def normalise(kernels: Tensor, sizes: Tensor | None = None) -> Tensor:
    """``kernels`` (N, K, K) set to zero outside each image's ``sizes[i]`` x ``sizes[i]`` centre, then divided
    by their sums (each kernel then sums to 1)."""
    if sizes is not None:
        x, y = _offsets(kernels.shape[-1], kernels)
        half = (sizes // 2).to(kernels.dtype).view(-1, 1, 1)
        kernels = torch.where((x.abs() <= half) & (y.abs() <= half), kernels, 0.0)
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def quadratic_form(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, size: int) -> Tensor:
    """``p^T Sigma^-1 p`` at every grid offset p = (x, y): (N, size, size), for the covariance
    ``R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T`` (sigma in pixels, theta in radians)."""
    x, y = _offsets(size, sigma_x)
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    along = x * cos + y * sin  # the offset's component along the sigma_x axis
    across = y * cos - x * sin
    return (along / sigma_x.view(-1, 1, 1)) ** 2 + (across / sigma_y.view(-1, 1, 1)) ** 2


def generalized_gaussian(
    sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, beta: Tensor, size: int, sizes: Tensor | None = None
) -> Tensor:
    """Generalized Gaussian kernels ``exp(-(p^T Sigma^-1 p)^beta / 2)``, (N, size, size), normalised.

    ``beta`` = 1 is the Gaussian; below 1 the kernel is sharper-peaked with heavier tails, above 1 flatter
    with a sharper edge. Source: BasicSR's ``bivariate_generalized_Gaussian`` (Pascal et al., "Parameter
    estimation for multivariate generalized Gaussian distributions", IEEE TSP 2013).
    """
    shape = quadratic_form(sigma_x, sigma_y, theta, size) ** beta.view(-1, 1, 1)
    return normalise(torch.exp(-0.5 * shape), sizes)


def gaussian(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, size: int, sizes: Tensor | None = None) -> Tensor:
    """Anisotropic Gaussian kernels ``exp(-p^T Sigma^-1 p / 2)``, (N, size, size), normalised; isotropic when
    ``sigma_y`` equals ``sigma_x`` (theta then has no effect). Source: BasicSR's ``bivariate_Gaussian``."""
    return generalized_gaussian(sigma_x, sigma_y, theta, torch.ones_like(sigma_x), size, sizes)


def plateau(
    sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, beta: Tensor, size: int, sizes: Tensor | None = None
) -> Tensor:
    """Plateau-shaped kernels ``1 / (1 + (p^T Sigma^-1 p)^beta)``, (N, size, size), normalised: flat-topped
    with a polynomial tail, flatter as ``beta`` grows. Source: BasicSR's ``bivariate_plateau``."""
    shape = quadratic_form(sigma_x, sigma_y, theta, size) ** beta.view(-1, 1, 1)
    return normalise(1 / (1 + shape), sizes)


def circular_lowpass(cutoff: Tensor, size: int, sizes: Tensor | None = None) -> Tensor:
    """2-D sinc kernels, the ideal circular low-pass filter of cutoff frequency ``cutoff`` (radians per
    pixel, pi = Nyquist) sampled on the grid and truncated: ``cutoff J1(cutoff r) / (2 pi r)`` at radius r,
    ``cutoff^2 / (4 pi)`` at the centre (the limit), (N, size, size), normalised. It has negative lobes, so
    it rings at edges. Source: BasicSR's ``circular_lowpass_kernel``.
    """
    x, y = _offsets(size, cutoff)
    radius = torch.sqrt(x**2 + y**2)
    omega = cutoff.view(-1, 1, 1)
    safe = torch.where(radius > 0, radius, 1.0)  # keeps the centre's 0/0 out of the graph
    ring = omega * torch.special.bessel_j1(omega * safe) / (2 * math.pi * safe)
    return normalise(torch.where(radius > 0, ring, omega**2 / (4 * math.pi)), sizes)


def delta(count: int, size: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """``count`` pass-through kernels (count, size, size): 1 at the centre, 0 elsewhere."""
    kernels = torch.zeros(count, size, size, device=device, dtype=dtype)
    kernels[:, size // 2, size // 2] = 1
    return kernels


def reflect_indices(length: int, pad: int, device: torch.device) -> Tensor:
    """Indices that pad ``length`` positions by ``pad`` on both sides, mirrored about the edge pixels
    (OpenCV's BORDER_REFLECT_101, torch's ``reflect``), folding again where ``pad`` reaches the length."""
    positions = torch.arange(-pad, length + pad, device=device)
    if length == 1:
        return torch.zeros_like(positions)
    period = 2 * (length - 1)
    folded = positions.remainder(period)
    return torch.where(folded < length, folded, period - folded)


def reflect_pad(planes: Tensor, pad: int) -> Tensor:
    """(N, C, H, W) ``planes`` padded by ``pad`` on every side, mirrored about the edge pixels: torch's
    ``F.pad(mode="reflect")`` where it applies (``pad`` < H and W), folded again beyond that."""
    height, width = planes.shape[-2:]
    if pad < min(height, width):
        return F.pad(planes, [pad] * 4, mode="reflect")
    rows = planes.index_select(-2, reflect_indices(height, pad, planes.device))
    return rows.index_select(-1, reflect_indices(width, pad, planes.device))


def apply_kernels(x: Tensor, kernels: Tensor) -> Tensor:
    """Filter each image of ``x`` (N, C, H, W) with its own kernel ``kernels[i]`` (N, K, K), K odd, the same
    kernel on every channel, as one grouped ``conv2d`` in ``x``'s dtype on ``x``'s device; borders are
    reflected (:func:`reflect_pad`; ``F.pad(mode="reflect")`` as BasicSR's ``filter2D`` wherever the image
    is larger than K // 2, mirrored again on smaller ones). Returns (N, C, H, W), not clipped.

    Raises ValueError when the kernels do not match the batch.
    """
    count, channels, height, width = x.shape
    size = kernels.shape[-1]
    if kernels.shape != (count, size, size) or size % 2 == 0:
        raise ValueError(
            f"kernels: expected ({count}, K, K) with K odd for a batch of {count}, got {tuple(kernels.shape)}"
        )
    planes = reflect_pad(x.reshape(1, count * channels, height, width), size // 2)
    weights = kernels.to(x.dtype).repeat_interleave(channels, dim=0).unsqueeze(1)
    return F.conv2d(planes, weights, groups=count * channels).view(count, channels, height, width)
