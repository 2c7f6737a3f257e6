"""Blur with a different kernel per image: a Gaussian of random width, and Real-ESRGAN's random kernels."""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.kernels import apply_kernels, circular_lowpass, delta, generalized_gaussian, plateau
from sr_toolkit.data.sampling import as_range, categorical, per_image, probability, uniform


@DEGRADATIONS.register("gaussian_blur")
class GaussianBlur(Degradation):
    """Isotropic Gaussian blur of standard deviation `sigma` pixels (kernel radius 3 x the largest)."""

    def __init__(self, sigma: Range = (0.2, 3.0)) -> None:
        self.sigma = as_range("sigma", sigma, 0.0)
        self._radius = max(1, math.ceil(3 * self.sigma[1]))

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, channels, height, width = x.shape
        sigma = per_image(self.sigma, count, generator, x.device).to(x.dtype).clamp(min=1e-6)
        offsets = torch.arange(-self._radius, self._radius + 1, device=x.device, dtype=x.dtype)
        kernels = torch.exp(-(offsets**2) / (2 * sigma[:, None] ** 2))
        kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
        size = 2 * self._radius + 1
        planes = F.pad(x.reshape(1, count * channels, height, width), [self._radius] * 4, mode="replicate")
        planes = F.conv2d(planes, kernels.view(-1, 1, size, 1), groups=count * channels)
        planes = F.conv2d(planes, kernels.view(-1, 1, 1, size), groups=count * channels)
        return planes.view(count, channels, height, width)


KernelType = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
KERNEL_TYPES: tuple[KernelType, ...] = typing.get_args(KernelType)
KernelSize = int | tuple[int, int]

SMALL_SINC = 13
"""Real-ESRGAN's first-stage sinc kernels narrower than this many pixels draw their cutoff from a higher range."""


class KernelDraw(NamedTuple):
    """The kernels drawn for a batch: ``kernels`` (N, K, K), and what each one is, ``names[kinds[i]]``."""

    kernels: Tensor
    kinds: Tensor
    names: tuple[str, ...]


def _kernel_size(value: KernelSize) -> tuple[int, int]:
    bounds = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(bounds) != 2 or any(b < 1 or b % 2 == 0 for b in bounds) or bounds[0] > bounds[1]:
        raise ValueError(f"kernel_size: expected an odd width >= 1 or a [low, high] pair of them, got {value!r}")
    return bounds[0], bounds[1]


def _cutoff(name: str, value: Range) -> tuple[float, float]:
    bounds = as_range(name, value, 0.0, math.pi)
    if bounds[0] <= 0:
        raise ValueError(f"{name}: cutoff frequencies must be > 0 (radians per pixel, pi = Nyquist), got {value!r}")
    return bounds


def _draw_sizes(bounds: tuple[int, int], count: int, generator: Generator | None, device: torch.device) -> Tensor:
    """One odd width per image, each of low, low + 2, ..., high equally likely (Real-ESRGAN: 7, 9, ..., 21)."""
    low, high = bounds
    return low + 2 * categorical([1.0] * ((high - low) // 2 + 1), count, generator, device)


def _draw_beta(bounds: tuple[float, float], count: int, generator: Generator | None, device: torch.device) -> Tensor:
    """Real-ESRGAN's shape parameter: per image, with probability 1/2 uniform in [low, 1], else uniform in
    [1, high], so kernels sharper and flatter than beta = 1 are equally likely (uniform in [low, high] when
    the range does not contain 1)."""
    low, high = bounds
    below, above = ((low, 1.0), (1.0, high)) if low <= 1 <= high else (bounds, bounds)
    lower = uniform((count,), generator, device) < 0.5
    return torch.where(lower, per_image(below, count, generator, device), per_image(above, count, generator, device))


class KernelBlur(Degradation):
    """A degradation that filters each image with its own kernel, drawn by :meth:`draw`, in one grouped
    convolution (:func:`sr_toolkit.data.kernels.apply_kernels`); the result is clipped to [0, 1] when
    ``self.clip``."""

    clip: bool

    def draw(
        self, count: int, generator: Generator | None, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> KernelDraw:
        raise NotImplementedError

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        # kernels are built in float64 for float64 images, in float32 otherwise, then cast to the images' dtype
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        out = apply_kernels(x, self.draw(x.shape[0], generator, x.device, dtype).kernels)
        return out.clamp(0, 1) if self.clip else out


@DEGRADATIONS.register("random_blur")
class RandomBlur(KernelBlur):
    """Real-ESRGAN's random blur: per image a Gaussian, generalized Gaussian, plateau or sinc kernel of random size.

    Per image, as Real-ESRGAN's ``RealESRGANDataset`` draws the kernel of one of its two blur stages: with
    probability ``prob`` the image is blurred (else passed through); the kernel width is uniform over the odd
    numbers in ``kernel_size``; with probability ``sinc_prob`` the kernel is a 2-D sinc (circular low-pass)
    of cutoff uniform in ``sinc_cutoff`` radians per pixel (``sinc_cutoff_small`` for widths below 13, too
    short to hold a low cutoff); otherwise its type is drawn from ``kernel_list`` with the weights
    ``kernel_prob``: ``iso``/``aniso`` Gaussian, ``generalized_iso``/``generalized_aniso`` (shape ``betag``),
    ``plateau_iso``/``plateau_aniso`` (shape ``betap``). sigma_x and sigma_y are uniform in ``sigma`` (pixels,
    one range for both axes) and the rotation uniform in [-pi, pi]; isotropic types use sigma_x on both axes;
    beta is drawn as Real-ESRGAN does: with probability 1/2 uniform in [low, 1], else in [1, high].
    Kernels are those of :mod:`sr_toolkit.data.kernels`, applied with reflected borders (mirrored again on
    images smaller than the kernel, so any size works).

    Defaults are the first stage of Real-ESRGAN's ``options/train_realesrgan_x4plus.yml``; its second stage is
    ``sigma: [0.2, 1.5], prob: 0.8`` (Real-ESRGAN draws that 0.8 once per batch, this per image). The result is
    clipped to [0, 1] unless ``clip`` is false (Real-ESRGAN clips only after its noise step; a sinc overshoots).
    """

    def __init__(
        self,
        kernel_list: Sequence[KernelType] = KERNEL_TYPES,
        kernel_prob: Sequence[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
        sigma: Range = (0.2, 3.0),
        betag: Range = (0.5, 4.0),
        betap: Range = (1.0, 2.0),
        sinc_prob: float = 0.1,
        sinc_cutoff: Range = (math.pi / 5, math.pi),
        sinc_cutoff_small: Range = (math.pi / 3, math.pi),
        kernel_size: KernelSize = (7, 21),
        prob: float = 1.0,
        clip: bool = True,
    ) -> None:
        if not kernel_list or any(name not in KERNEL_TYPES for name in kernel_list):
            raise ValueError(
                f"kernel_list: expected a non-empty list of {', '.join(KERNEL_TYPES)}, got {kernel_list!r}"
            )
        if len(kernel_prob) != len(kernel_list) or min(kernel_prob) < 0 or sum(kernel_prob) <= 0:
            raise ValueError(
                f"kernel_prob: expected {len(kernel_list)} non-negative weights (one per kernel_list entry) "
                f"with a positive sum, got {list(kernel_prob)!r}"
            )
        self.kernel_list = list(kernel_list)
        self.kernel_prob = [float(p) for p in kernel_prob]
        self.sigma = as_range("sigma", sigma, 0.0)
        self.betag = as_range("betag", betag, 0.0)
        self.betap = as_range("betap", betap, 0.0)
        self.sinc_prob = probability("sinc_prob", sinc_prob)
        self.sinc_cutoff = _cutoff("sinc_cutoff", sinc_cutoff)
        self.sinc_cutoff_small = _cutoff("sinc_cutoff_small", sinc_cutoff_small)
        self.kernel_size = _kernel_size(kernel_size)
        self.prob = probability("prob", prob)
        self.clip = clip

    def draw(
        self, count: int, generator: Generator | None, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> KernelDraw:
        """``count`` kernels (count, K, K) in ``dtype`` on ``device``, K the largest width of ``kernel_size``;
        kinds index ``(*kernel_list, "sinc", "none")`` ("none": the pass-through kernel of an unblurred image)."""
        size = self.kernel_size[1]
        sizes = _draw_sizes(self.kernel_size, count, generator, device)
        kinds = categorical(self.kernel_prob, count, generator, device)
        sigma_x = per_image(self.sigma, count, generator, device).to(dtype).clamp(min=1e-6)
        sigma_y = per_image(self.sigma, count, generator, device).to(dtype).clamp(min=1e-6)
        theta = per_image((-math.pi, math.pi), count, generator, device).to(dtype)
        betag = _draw_beta(self.betag, count, generator, device).to(dtype)
        betap = _draw_beta(self.betap, count, generator, device).to(dtype)
        sinc = uniform((count,), generator, device) < self.sinc_prob
        wide = per_image(self.sinc_cutoff, count, generator, device)
        narrow = per_image(self.sinc_cutoff_small, count, generator, device)
        cutoff = torch.where(sizes < SMALL_SINC, narrow, wide).to(dtype)
        blurred = uniform((count,), generator, device) < self.prob

        traits = [
            (
                name in ("iso", "generalized_iso", "plateau_iso"),
                name.startswith("generalized"),
                name.startswith("plateau"),
            )
            for name in self.kernel_list
        ]
        isotropic, generalized, flat = torch.tensor(traits, device=device)[kinds].unbind(dim=1)
        sigma_y = torch.where(isotropic, sigma_x, sigma_y)
        theta = torch.where(isotropic, 0.0, theta)
        bell = generalized_gaussian(sigma_x, sigma_y, theta, torch.where(generalized, betag, 1.0), size, sizes)
        kernels = torch.where(flat.view(-1, 1, 1), plateau(sigma_x, sigma_y, theta, betap, size, sizes), bell)
        kernels = torch.where(sinc.view(-1, 1, 1), circular_lowpass(cutoff, size, sizes), kernels)
        kernels = torch.where(blurred.view(-1, 1, 1), kernels, delta(count, size, device, dtype))
        labels = torch.where(blurred, torch.where(sinc, len(self.kernel_list), kinds), len(self.kernel_list) + 1)
        return KernelDraw(kernels, labels, (*self.kernel_list, "sinc", "none"))


@DEGRADATIONS.register("sinc_filter")
class SincFilter(KernelBlur):
    """Real-ESRGAN's final sinc filter: per image, with probability `prob`, a 2-D sinc low-pass (ringing).

    Per image, as ``RealESRGANDataset`` draws its ``sinc_kernel``: with probability ``prob`` a circular
    low-pass kernel (:func:`sr_toolkit.data.kernels.circular_lowpass`) of width uniform over the odd numbers
    in ``kernel_size`` and cutoff uniform in ``cutoff`` radians per pixel (pi = Nyquist); otherwise the
    pass-through kernel, in the same grouped convolution. It imitates the ringing and overshoot artefacts
    of sharpened, resampled and compressed photos. Defaults: Real-ESRGAN x4plus's ``final_sinc_prob`` 0.8
    and cutoff [pi/3, pi]. Borders reflect (at any image size); the result is
    clipped to [0, 1] unless ``clip`` is false.
    """

    def __init__(
        self,
        prob: float = 0.8,
        cutoff: Range = (math.pi / 3, math.pi),
        kernel_size: KernelSize = (7, 21),
        clip: bool = True,
    ) -> None:
        self.prob = probability("prob", prob)
        self.cutoff = _cutoff("cutoff", cutoff)
        self.kernel_size = _kernel_size(kernel_size)
        self.clip = clip

    def draw(
        self, count: int, generator: Generator | None, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> KernelDraw:
        """``count`` kernels (count, K, K) in ``dtype`` on ``device``, K the largest width of ``kernel_size``;
        kinds index ``("sinc", "none")``."""
        size = self.kernel_size[1]
        sizes = _draw_sizes(self.kernel_size, count, generator, device)
        cutoff = per_image(self.cutoff, count, generator, device).to(dtype)
        chosen = uniform((count,), generator, device) < self.prob
        kernels = torch.where(
            chosen.view(-1, 1, 1), circular_lowpass(cutoff, size, sizes), delta(count, size, device, dtype)
        )
        return KernelDraw(kernels, (~chosen).long(), ("sinc", "none"))
