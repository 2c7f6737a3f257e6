"""Real-ESRGAN's degradation: our ``realesrgan`` step in a training step, against BasicSR's own functions,
and how closely its draws follow Real-ESRGAN's.

    python bench/real_degradation.py [--parts share basicsr fidelity] [--draws 10000] [--photos DIR]

- ``share``: ``realesr_compact_x4``'s degradation on a batch of 16 targets of 256x256 (mean over ``--repeats``
  seeds, kernels included) times the engine's steps/s training that recipe at that batch and patch (the
  user's path, degradation included, ``auto`` precision; from the engine's own log), i.e. the fraction of
  a training step spent degrading. The issue's ceiling is 15 %.
- ``basicsr``: the same batch through BasicSR 1.4.2's Real-ESRGAN functions in ``RealESRGANModel.feed_data``'s
  order (``USMSharp``, ``filter2D``, ``F.interpolate``, ``random_add_gaussian_noise_pt`` /
  ``random_add_poisson_noise_pt``, ``DiffJPEG(differentiable=False)``), with the kernels drawn per image as
  ``RealESRGANDataset`` draws them (``random_mixed_kernels``, ``circular_lowpass_kernel``; timed apart, as
  BasicSR draws them in its DataLoader workers), alternated with ours. Needs ``basicsr`` (see
  ``bench/architectures.py``; this script adds the ``functional_tensor`` shim BasicSR imports).
- ``fidelity``: ``--draws`` degraded inputs from random ``--size`` crops of ``--photos`` through ours and
  through BasicSR's chain: the PSNR of each input against its target shrunk by MATLAB's bicubic (mean and
  percentiles), and our shares of kernel types, noise types and final orders against the x4plus
  probabilities (tolerance: 3 binomial standard errors).

Machines are noisy: compare only within one run.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.config.shipped import find_recipe
from sr_toolkit.core.imageio import list_images, read_image
from sr_toolkit.core.registry import DEGRADATIONS
from sr_toolkit.core.resize import imresize
from sr_toolkit.data.degrade import build_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from architectures import install_functional_tensor_shim
from engine_overhead import ours

ROOT = Path(__file__).resolve().parents[1]
X4PLUS = {  # options/train_realesrgan_x4plus.yml
    "kernel_list": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "final_sinc_prob": 0.8,
    "resize_prob": [0.2, 0.7, 0.1],
    "resize_range": [0.15, 1.5],
    "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 3],
    "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4,
    "jpeg_range2": [30, 95],
    "scale": 4,
}


def mean_seconds(run: Callable[[int], object], repeats: int) -> float:
    """Mean seconds of ``run(call)`` over ``repeats`` calls after one warm-up; each call draws anew."""
    run(-1)
    started = time.perf_counter()
    for call in range(repeats):
        run(call)
    return (time.perf_counter() - started) / repeats


# ------------------------------------------------------------------------------------------- BasicSR's chain
def basicsr_kernels(count: int) -> tuple[Tensor, Tensor, Tensor]:
    """kernel1, kernel2 and the sinc kernel of ``count`` images, (count, 21, 21) each, as
    ``RealESRGANDataset.__getitem__`` draws them with BasicSR's kernel functions."""
    from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels

    def blur_kernel(sinc_prob: float, sigma: list[float]) -> np.ndarray:
        size = random.choice(range(7, 22, 2))
        if np.random.uniform() < sinc_prob:
            cutoff = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            kernel = circular_lowpass_kernel(cutoff, size, pad_to=False)
        else:
            kernel = random_mixed_kernels(
                X4PLUS["kernel_list"], X4PLUS["kernel_prob"], size, sigma, sigma, [-math.pi, math.pi],
                X4PLUS["betag_range"], X4PLUS["betap_range"], noise_range=None,
            )  # fmt: skip
        pad = (21 - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad)))

    def sinc_kernel() -> np.ndarray:
        if np.random.uniform() < X4PLUS["final_sinc_prob"]:
            return circular_lowpass_kernel(
                np.random.uniform(np.pi / 3, np.pi), random.choice(range(7, 22, 2)), pad_to=21
            )
        pulse = np.zeros((21, 21))
        pulse[10, 10] = 1
        return pulse

    first = [blur_kernel(X4PLUS["sinc_prob"], X4PLUS["blur_sigma"]) for _ in range(count)]
    second = [blur_kernel(X4PLUS["sinc_prob2"], X4PLUS["blur_sigma2"]) for _ in range(count)]
    sinc = [sinc_kernel() for _ in range(count)]
    return tuple(torch.from_numpy(np.stack(k)).float() for k in (first, second, sinc))  # type: ignore[return-value]


class BasicSRChain:
    """``RealESRGANModel.feed_data``'s degradation (before its crop and pool) on BasicSR's functions, on the CPU."""

    def __init__(self) -> None:
        from basicsr.utils import DiffJPEG, USMSharp

        self.jpeger = DiffJPEG(differentiable=False)
        self.usm = USMSharp()

    def __call__(self, gt: Tensor, kernels: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt
        from basicsr.utils.img_process_util import filter2D

        o = X4PLUS
        kernel1, kernel2, sinc_kernel = kernels
        height, width = gt.shape[-2:]

        def resize(out: Tensor, resize_prob: list[float], resize_range: list[float], size=None) -> Tensor:
            kind = random.choices(["up", "down", "keep"], resize_prob)[0]
            scale = {
                "up": lambda: np.random.uniform(1, resize_range[1]),
                "down": lambda: np.random.uniform(resize_range[0], 1),
                "keep": lambda: 1,
            }[kind]()
            mode = random.choice(["area", "bilinear", "bicubic"])
            if size is None:
                return F.interpolate(out, scale_factor=scale, mode=mode)
            return F.interpolate(out, size=(int(size[0] * scale), int(size[1] * scale)), mode=mode)

        def noise(out: Tensor, stage: str) -> Tensor:
            if np.random.uniform() < o[f"gaussian_noise_prob{stage}"]:
                return random_add_gaussian_noise_pt(
                    out,
                    sigma_range=o[f"noise_range{stage}"],
                    clip=True,
                    rounds=False,
                    gray_prob=o[f"gray_noise_prob{stage}"],
                )
            return random_add_poisson_noise_pt(
                out,
                scale_range=o[f"poisson_scale_range{stage}"],
                gray_prob=o[f"gray_noise_prob{stage}"],
                clip=True,
                rounds=False,
            )

        def jpeg(out: Tensor, quality_range: list[float]) -> Tensor:
            quality = out.new_zeros(out.size(0)).uniform_(*quality_range)
            return self.jpeger(torch.clamp(out, 0, 1), quality=quality)

        def back_and_sinc(out: Tensor) -> Tensor:
            mode = random.choice(["area", "bilinear", "bicubic"])
            out = F.interpolate(out, size=(height // o["scale"], width // o["scale"]), mode=mode)
            return filter2D(out.contiguous(), sinc_kernel)  # CPU interpolate keeps DiffJPEG's channels-last strides

        out = filter2D(self.usm(gt), kernel1)
        out = jpeg(noise(resize(out, o["resize_prob"], o["resize_range"]), ""), o["jpeg_range"])
        if np.random.uniform() < o["second_blur_prob"]:
            out = filter2D(out.contiguous(), kernel2)
        out = resize(out, o["resize_prob2"], o["resize_range2"], (height / o["scale"], width / o["scale"]))
        out = noise(out, "2")
        if np.random.uniform() < 0.5:
            out = jpeg(back_and_sinc(out), o["jpeg_range2"])
        else:
            out = back_and_sinc(jpeg(out, o["jpeg_range2"]))
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


# ------------------------------------------------------------------------------------------------ the parts
def photos_batch(folder: Path, count: int, size: int, rng: random.Random) -> Tensor:
    """``count`` random ``size`` x ``size`` crops of random photos of ``folder``, (count, 3, size, size) in [0, 1]."""
    files = list_images(folder)
    crops = []
    for _ in range(count):
        image = read_image(rng.choice(files))
        while min(image.shape[-2:]) < size:
            image = read_image(rng.choice(files))
        top, left = rng.randrange(image.shape[-2] - size + 1), rng.randrange(image.shape[-1] - size + 1)
        crops.append(image[:3, top : top + size, left : left + size])
    return torch.stack(crops)


def share(batch: Tensor, repeats: int, steps: int) -> None:
    recipe = load_recipe(find_recipe("realesr_compact_x4"), ["data.train.patch_size=256"])
    pipeline = build_pipeline(recipe["degradation"])
    seconds = mean_seconds(lambda call: pipeline(batch, torch.Generator().manual_seed(call)), repeats)
    rate = ours(recipe, steps, warmup=max(2, steps // 4))
    print(f"realesr_compact_x4's degradation on 16 x 256x256: {seconds:.3f} s (mean of {repeats} draws); its engine "
          f"step at batch 16, patch 256: {rate:.3f} steps/s ({1 / rate:.3f} s, degradation included); the "
          f"degradation's share of a step: {100 * seconds * rate:.1f} %")  # fmt: skip


def against_basicsr(pipeline: Callable[[Tensor, torch.Generator], Tensor], batch: Tensor, repeats: int) -> None:
    install_functional_tensor_shim()
    chain = BasicSRChain()
    count = batch.shape[0]
    kernel_seconds = mean_seconds(lambda call: basicsr_kernels(count), repeats)
    kernels = basicsr_kernels(count)
    pipeline(batch, torch.Generator().manual_seed(0)), chain(batch, kernels)  # warm-up
    ours_times, theirs_times = [], []
    for call in range(repeats):
        started = time.perf_counter()
        pipeline(batch, torch.Generator().manual_seed(call))
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        chain(batch, kernels)
        theirs_times.append(time.perf_counter() - started)
    ours_s, theirs_s = statistics.mean(ours_times), statistics.mean(theirs_times)
    print(f"batch {count} x {batch.shape[-1]}x{batch.shape[-2]}, means of {repeats} alternated calls (new draws each):")
    print(f"  ours (kernels included)       {ours_s:.3f} s")
    print(f"  BasicSR chain (kernels apart) {theirs_s:.3f} s, its kernels {kernel_seconds:.3f} s more")
    with_kernels = (theirs_s + kernel_seconds) / ours_s
    print(f"  BasicSR / ours: {theirs_s / ours_s:.2f} without its kernels, {with_kernels:.2f} with")


class Counting:
    """Wraps a degradation step; counts the images it was given."""

    def __init__(self, step: Callable[[Tensor, torch.Generator | None], Tensor]) -> None:
        self.step, self.images = step, 0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        self.images += x.shape[0]
        return self.step(x, generator)


def fidelity(pipeline, folder: Path, draws: int, size: int, batch: int) -> None:
    install_functional_tensor_shim()
    chain = BasicSRChain()
    rng = random.Random(0)
    labels: dict[str, Counter] = {"first": Counter(), "second": Counter(), "sinc": Counter()}
    for name, blur in (("first", pipeline.first.blur), ("second", pipeline.second.blur), ("sinc", pipeline.sinc)):
        draw = blur.draw

        def recording(count, generator, device, dtype=torch.float32, draw=draw, name=name):
            result = draw(count, generator, device, dtype)
            labels[name].update(result.names[int(label)] for label in result.kinds)
            return result

        blur.draw = recording
    for stage in (pipeline.first, pipeline.second):
        stage.noise.steps = [Counting(step) for step in stage.noise.steps]
    psnr: dict[str, list[float]] = {"ours": [], "BasicSR": []}
    seeds = iter(range(10**9))
    started = time.perf_counter()
    for first in range(0, draws, batch):
        targets = photos_batch(folder, min(batch, draws - first), size, rng)
        reference = imresize(targets, scale=1 / 4).clamp(0, 1)
        for name, inputs in (
            ("ours", pipeline(targets, torch.Generator().manual_seed(next(seeds)))),
            ("BasicSR", chain(targets, basicsr_kernels(targets.shape[0]))),
        ):
            error = (inputs.double() - reference.double()).pow(2).flatten(1).mean(1)
            psnr[name].extend((10 * torch.log10(1 / error)).tolist())
    print(f"{draws} draws of {size}x{size} crops of {folder} ({time.perf_counter() - started:.0f} s)")
    print("PSNR (dB) of the degraded input against the target shrunk by MATLAB bicubic:")
    for name, values in psnr.items():
        q = np.percentile(values, [10, 50, 90])
        print(f"  {name:8s} mean {np.mean(values):6.2f}  p10 {q[0]:6.2f}  median {q[1]:6.2f}  p90 {q[2]:6.2f}")
    print(f"  difference of means (ours - BasicSR): {np.mean(psnr['ours']) - np.mean(psnr['BasicSR']):+.2f} dB")
    kinds = X4PLUS["kernel_list"]
    weights = dict(zip(kinds, X4PLUS["kernel_prob"], strict=True))
    expected = {
        "first": {**{k: 0.9 * weights[k] for k in kinds}, "sinc": 0.1},
        "second": {**{k: 0.8 * 0.9 * weights[k] for k in kinds}, "sinc": 0.08, "none": 0.2},
        "sinc": {"sinc": 0.8, "none": 0.2},
    }
    print("shares of our draws against x4plus (3 binomial standard errors):")
    for name, counter in labels.items():
        total = sum(counter.values())
        for kind, p in expected[name].items():
            got = counter[kind] / total
            tolerance = 3 * math.sqrt(p * (1 - p) / total)
            verdict = "ok" if abs(got - p) <= tolerance else "OUT"
            print(f"  {name:6s} {kind:18s} {got:.4f} expected {p:.4f} +- {tolerance:.4f} {verdict}")
    for name, stage in (("first", pipeline.first), ("second", pipeline.second)):
        gaussian, poisson = (step.images for step in stage.noise.steps)
        total = gaussian + poisson
        tolerance = 3 * math.sqrt(0.25 / total)
        verdict = "ok" if abs(gaussian / total - 0.5) <= tolerance else "OUT"
        print(f"  {name:6s} gaussian noise     {gaussian / total:.4f} expected 0.5000 +- {tolerance:.4f} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["share", "basicsr", "fidelity"])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared/data/BSDS200")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=128, help="crop side of the fidelity draws")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, default=16, help="engine steps of the share part")
    args = parser.parse_args()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    pipeline = DEGRADATIONS.build({"type": "realesrgan", "scale": 4})
    batch = photos_batch(args.photos, 16, 256, random.Random(1))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "share" in args.parts:
        share(batch, args.repeats, args.steps)
    if "basicsr" in args.parts:
        against_basicsr(pipeline, batch, args.repeats)
    if "fidelity" in args.parts:
        fidelity(pipeline, args.photos, args.draws, args.size, batch=16)


if __name__ == "__main__":
    main()
