"""Real-ESRGAN's second-order degradation as one step, ``realesrgan``, with the x4plus settings by default.

Follows Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data"
(ICCVW 2021): the order of ``RealESRGANModel.feed_data`` (``realesrgan/models/realesrgan_model.py``), the
kernels of ``RealESRGANDataset`` and the values of ``options/train_realesrgan_x4plus.yml``. Each part is a
registered degradation of its own (``random_blur``, ``random_resize``, ``gaussian_noise``,
``poisson_noise``, ``jpeg``, ``sinc_filter``), so a recipe can also spell the chain out step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Generator, Tensor

from sr_toolkit.core.registry import DEGRADATIONS, closest
from sr_toolkit.data.degrade import Degradation, scale_factor
from sr_toolkit.data.sampling import probability, uniform
from sr_toolkit.data.sharpen import unsharp_mask

from .compose import OneOf, apply_by_pick
from .resize import REAL_ESRGAN_MODES, RandomModeResize, RandomResize

LEVEL = 1 / 255
"""One 8-bit level on [0, 1] intensities: Real-ESRGAN gives noise sigmas in levels."""

X4PLUS_FIRST: dict[str, Any] = {
    "blur": {"clip": False},
    "resize": {"up_down_keep": [0.2, 0.7, 0.1], "factor": [0.15, 1.5]},
    "gaussian_prob": 0.5,
    "gaussian_noise": {"sigma": [1 * LEVEL, 30 * LEVEL], "gray_prob": 0.4},
    "poisson_noise": {"scale": [0.05, 3.0], "gray_prob": 0.4},
    "jpeg": {"quality": [30, 95]},
}
"""The first stage of ``train_realesrgan_x4plus.yml``: blur (kernel_list, kernel_prob, sinc_prob 0.1,
blur_sigma [0.2, 3], betag [0.5, 4], betap [1, 2] are ``random_blur``'s defaults), resize, noise, JPEG."""

X4PLUS_SECOND: dict[str, Any] = {
    "blur": {"sigma": [0.2, 1.5], "prob": 0.8, "clip": False},
    "resize": {"up_down_keep": [0.3, 0.4, 0.3], "factor": [0.3, 1.2]},
    "gaussian_prob": 0.5,
    "gaussian_noise": {"sigma": [1 * LEVEL, 25 * LEVEL], "gray_prob": 0.4},
    "poisson_noise": {"scale": [0.05, 2.5], "gray_prob": 0.4},
    "jpeg": {"quality": [30, 95]},
}
"""The second stage: blur (second_blur_prob 0.8), resize relative to the low-resolution size, noise; its
``jpeg`` is the final compression (jpeg_range2)."""

STAGE_KEYS = ("blur", "resize", "gaussian_prob", "gaussian_noise", "poisson_noise", "jpeg")


def merged_stage(name: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` with ``overrides`` laid over them, step by step (a step's mapping is updated, not
    replaced); an unknown key raises ValueError naming ``name.key``."""
    stage = {key: dict(value) if isinstance(value, Mapping) else value for key, value in defaults.items()}
    for key, value in (overrides or {}).items():
        if key not in STAGE_KEYS:
            hints = closest(key, list(STAGE_KEYS))
            guess = f" (did you mean '{hints[0]}'?)" if hints else ""
            raise ValueError(f"{name}.{key}: unknown key{guess}; a stage takes {', '.join(STAGE_KEYS)}")
        if key == "gaussian_prob":
            stage[key] = probability(f"{name}.gaussian_prob", value)
        elif not isinstance(value, Mapping):
            raise ValueError(f"{name}.{key}: expected a mapping of that step's arguments, got {value!r}")
        else:
            stage[key].update(value)
    return stage


class Stage:
    """One round of Real-ESRGAN's degradation: blur, random resize, then Gaussian or Poisson noise (per
    image, Gaussian with probability ``gaussian_prob``); ``jpeg`` is built for the caller to place."""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        def build(step: str, kind: str) -> Any:
            return DEGRADATIONS.build({"type": kind, **settings[step]}, f"{name}.{step}")

        self.blur = build("blur", "random_blur")
        self.resize: RandomResize = build("resize", "random_resize")
        noises = [build("gaussian_noise", "gaussian_noise"), build("poisson_noise", "poisson_noise")]
        self.noise = OneOf(noises, [settings["gaussian_prob"], 1 - settings["gaussian_prob"]])
        self.jpeg = build("jpeg", "jpeg")

    def __repr__(self) -> str:
        return f"Stage(blur={self.blur!r}, resize={self.resize!r}, noise={self.noise!r}, jpeg={self.jpeg!r})"


def quantize(x: Tensor) -> Tensor:
    """``x`` clipped to [0, 1] and rounded to 8-bit levels (still floats in [0, 1])."""
    return torch.round(x.clamp(0, 1) * 255) / 255


@DEGRADATIONS.register("realesrgan")
class RealESRGAN(Degradation):
    """Real-ESRGAN's second-order degradation: (N, C, H, W) targets in [0, 1], C = 1 or 3, to
    (N, C, H // scale, W // scale) inputs on 8-bit levels, on the batch's device, each image with its own
    random parameters, every draw from the step's generator (a resumed run degrades identically).

    In order, as ``RealESRGANModel.feed_data``: the unsharp-masked target (``sharpen``; Real-ESRGAN
    degrades its sharpened ground truth) is blurred, resized by a random factor, given Gaussian or
    Poisson noise and JPEG-compressed (``first``); blurred, resized to the low-resolution size times a
    random factor and given noise again (``second``); then, per image, either resized to H // scale x
    W // scale, filtered by the final sinc (``sinc``, ``sinc_filter``'s arguments) and JPEG-compressed at
    ``second.jpeg``'s quality, or (probability ``1 - jpeg_last_prob``) compressed first and then resized
    and filtered; finally clipped and rounded to 8-bit levels.

    ``first`` and ``second`` override the x4plus values step by step (:data:`X4PLUS_FIRST`,
    :data:`X4PLUS_SECOND`); e.g. ``second: {blur: {prob: 0.5}}`` changes that one argument. Keys:
    ``blur`` (``random_blur``), ``resize`` (``random_resize``; the second stage's factor is relative to the
    low-resolution size), ``gaussian_prob``, ``gaussian_noise``, ``poisson_noise``, ``jpeg``.

    Where this differs from Real-ESRGAN: the choice of Gaussian or Poisson noise, whether the second blur
    applies and which order ends the chain are drawn per image (Real-ESRGAN draws them once per batch;
    the resize factor and mode stay per batch, as the images of a batch share one size); JPEG is the real
    codec at integer qualities (Real-ESRGAN's ``DiffJPEG`` simulates it at fractional ones); resizing
    clips to [0, 1] (Real-ESRGAN clips at the next noise or JPEG step); the training pair pool is not
    implemented; the target is degraded as cut (Real-ESRGAN degrades 400-pixel crops and then cuts).
    """

    def __init__(
        self,
        scale: float,
        first: Mapping[str, Any] | None = None,
        second: Mapping[str, Any] | None = None,
        sinc: Mapping[str, Any] | None = None,
        jpeg_last_prob: float = 0.5,
        sharpen: bool = True,
    ) -> None:
        self.scale = scale_factor(scale)
        self.first = Stage("first", merged_stage("first", X4PLUS_FIRST, first))
        self.second = Stage("second", merged_stage("second", X4PLUS_SECOND, second))
        self.sinc = DEGRADATIONS.build({"type": "sinc_filter", **(sinc or {})}, "sinc")
        self.jpeg_last_prob = probability("jpeg_last_prob", jpeg_last_prob)
        self.sharpen = sharpen
        self._resize_back = RandomModeResize(REAL_ESRGAN_MODES)

    def apply(self, x: Tensor, generator: Generator | None) -> Tensor:
        height, width = x.shape[-2:]
        if self.sharpen:
            x = unsharp_mask(x)
        first, second = self.first, self.second
        x = first.jpeg(first.noise(first.resize(first.blur(x, generator), generator), generator), generator)
        x = second.blur(x, generator)
        x = second.resize.resize(x, generator, (height / self.scale, width / self.scale))
        x = second.noise(x, generator)
        return quantize(self._finish(x, (int(height // self.scale), int(width // self.scale)), generator))

    def _finish(self, x: Tensor, size: tuple[int, int], generator: Generator | None) -> Tensor:
        """Resize back to ``size`` + sinc, then JPEG (per image, probability ``jpeg_last_prob``), or the
        reverse. Draws: the order per image, then the JPEG-last images' steps, then the others'."""
        jpeg_last = uniform((x.shape[0],), generator, x.device) < self.jpeg_last_prob

        def back_and_sinc(images: Tensor) -> Tensor:
            return self.sinc(self._resize_back.resize_to_size(images, size, generator), generator)

        def jpeg(images: Tensor) -> Tensor:
            return self.second.jpeg(images, generator)

        branches = [lambda images: jpeg(back_and_sinc(images)), lambda images: back_and_sinc(jpeg(images))]
        return apply_by_pick(x, (~jpeg_last).long(), branches, "realesrgan")
