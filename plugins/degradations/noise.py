"""Sensor noise: additive Gaussian noise and Poisson (shot) noise, in colour or gray, drawn per image.

Both follow the PyTorch noise functions of BasicSR's ``basicsr/data/degradations.py``
(``random_add_gaussian_noise_pt``, ``random_add_poisson_noise_pt``), which Real-ESRGAN
(Wang et al., ICCVW 2021) uses in both stages of its degradation: per image a strength and whether
the noise is gray, noise added to the image and the result clipped to [0, 1]. "Gray" noise is one
noise plane added equally to every channel, so it changes brightness but not colour.
"""

from __future__ import annotations

import torch
from torch import Generator, Tensor
from torchvision.transforms.functional import rgb_to_grayscale

from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.typecheck import Range
from sr_toolkit.data.degrade import Degradation
from sr_toolkit.data.sampling import as_range, normal, per_image, poisson, probability, uniform


def gray_flags(gray_prob: float, count: int, generator: Generator | None, device: torch.device) -> Tensor | None:
    """Which images get gray noise, as a (N, 1, 1, 1) bool tensor; None when ``gray_prob`` is 0 or 1,
    which is decided without a draw (so gray_prob 0 and 1 leave the random stream as it was)."""
    if gray_prob in (0.0, 1.0):
        return None
    return (uniform((count,), generator, device) < gray_prob).view(-1, 1, 1, 1)


def shared_across_channels(noise: Tensor, flags: Tensor | None) -> Tensor:
    """``noise`` with the images ``flags`` marks given their first channel's noise on every channel."""
    return noise if flags is None else torch.where(flags, noise[:, :1], noise)


@DEGRADATIONS.register("gaussian_noise")
class GaussianNoise(Degradation):
    """Additive Gaussian noise of standard deviation `sigma` (on [0, 1] intensities, drawn per image),
    clipped to [0, 1]; (N, C, H, W) in, the same shape and dtype out.

    ``gray_prob``: the probability that an image gets gray noise (one noise plane on every channel)
    rather than independent noise per channel, decided per image. ``gray: true`` is the older switch for
    ``gray_prob: 1`` (every image gray); with any other ``gray_prob`` it raises ValueError.

    Follows BasicSR's ``random_add_gaussian_noise_pt`` (clip, no rounding), where sigma is in 8-bit
    levels: Real-ESRGAN's ``noise_range: [1, 30]`` and ``gray_noise_prob: 0.4`` are
    ``sigma: [0.00392, 0.1176]`` (1/255 to 30/255) and ``gray_prob: 0.4`` here. Unlike BasicSR, each
    image's gray noise plane is its own (BasicSR draws one plane for the whole batch).

    Draws, in order: sigma per image, the gray flags (only when 0 < gray_prob < 1), then the noise
    ((N, C, H, W), or (N, 1, H, W) when every image is gray).
    """

    def __init__(self, sigma: Range = (0.0, 0.1), gray: bool = False, gray_prob: float = 0.0) -> None:
        self.sigma = as_range("sigma", sigma, 0.0)
        if gray and gray_prob not in (0, 1):
            raise ValueError(f"gray: true means gray_prob 1; give one of them, got gray_prob {gray_prob!r}")
        self.gray_prob = 1.0 if gray else probability("gray_prob", gray_prob)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, channels, height, width = x.shape
        sigma = per_image(self.sigma, count, generator, x.device).to(x.dtype).view(-1, 1, 1, 1)
        flags = gray_flags(self.gray_prob, count, generator, x.device)
        shape = (count, 1 if self.gray_prob == 1 else channels, height, width)
        noise = shared_across_channels(normal(shape, generator, x.device, x.dtype), flags)
        return (x + sigma * noise).clamp(0, 1)


def shot_noise(levels: Tensor, generator: Generator | None) -> Tensor:
    """Poisson noise on images of 8-bit ``levels`` (floats 0..255, (N, C, H, W)), in [0, 1] units.

    As BasicSR's ``generate_poisson_noise_pt``: an image with ``k`` distinct levels (over all its
    channels) is taken to hold ``v = 2 ** ceil(log2(k))`` photons at full scale, so a pixel of
    intensity ``q`` becomes ``Poisson(q v) / v`` and the noise has variance ``q / v``. The levels are
    counted with a per-image histogram on the device (BasicSR calls ``torch.unique`` per image).
    """
    count = levels.shape[0]
    indices = levels.reshape(count, -1).long()
    seen = torch.zeros(count, 256, device=levels.device, dtype=levels.dtype).scatter_(1, indices, 1.0)
    photons = torch.exp2(torch.ceil(torch.log2(seen.sum(dim=1)))).view(-1, 1, 1, 1)
    intensity = levels / 255
    return poisson(intensity * photons, generator) / photons - intensity


@DEGRADATIONS.register("poisson_noise")
class PoissonNoise(Degradation):
    """Poisson (shot) noise scaled by `scale` (drawn per image), added and clipped to [0, 1];
    (N, C, H, W) in with C = 1 or 3, the same shape and dtype out; other channel counts raise ValueError.

    The noise is drawn on the image rounded to 8 bits (see :func:`shot_noise`: its variance at
    intensity ``q`` is ``scale**2 q / v`` for an image with ``v`` photons at full scale), multiplied
    by ``scale`` and added to the unrounded image. ``gray_prob``: the probability, per image, that the
    noise is drawn once on the image's luma (torchvision's ``rgb_to_grayscale``, BT.601 weights, as in
    BasicSR; rounded to 8 bits) and added to every channel, rather than drawn per channel.

    Follows BasicSR's ``random_add_poisson_noise_pt`` (clip, no rounding); Real-ESRGAN x4plus uses
    ``poisson_scale_range: [0.05, 3]`` (first stage) and ``[0.05, 2.5]`` (second) with
    ``gray_noise_prob: 0.4``. BasicSR draws both colour and gray noise for the whole batch when any
    image is gray; here each image draws one or the other.

    Computed in float32 (float64 stays float64). Draws, in order: scale per image, the gray flags
    (only when 0 < gray_prob < 1), then the Poisson counts ((N, C, H, W), or (N, 1, H, W) when every
    image is gray).
    """

    def __init__(self, scale: Range = (0.05, 3.0), gray_prob: float = 0.0) -> None:
        self.scale = as_range("scale", scale, 0.0)
        self.gray_prob = probability("gray_prob", gray_prob)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        count, channels = x.shape[:2]
        if channels not in (1, 3):
            raise ValueError(f"poisson_noise needs 1 or 3 channels, got {channels}")
        work = x if x.dtype == torch.float64 else x.float()
        scale = per_image(self.scale, count, generator, x.device).to(work.dtype).view(-1, 1, 1, 1)
        flags = gray_flags(self.gray_prob, count, generator, x.device)
        levels = torch.round(work.clamp(0, 1) * 255)
        if self.gray_prob > 0:
            luma = torch.round(rgb_to_grayscale(work.clamp(0, 1)).clamp(0, 1) * 255)
            levels = luma if flags is None else torch.where(flags, luma.expand_as(levels), levels)
        noise = shared_across_channels(shot_noise(levels, generator), flags)
        return (work + scale * noise).clamp(0, 1).to(x.dtype)
