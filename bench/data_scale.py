"""Large training sets: time to the first step, peak memory, and images/s delivered to the training step.

    python bench/data_scale.py [--photos 3000] [--subset 300] [--work /tmp/sr_data_scale] [--parts ...]

Generates ``--photos`` photo-like PNGs of 2040x1350 (DIV2K's size; smooth colour fields with fine
noise, compressing like DIV2K's PNGs) under ``--work`` once, then measures, in one run:

- ``start``: the README's command, ``accelerate launch tools/train.py recipes/compact_x4.yaml`` on the
  folder for one step (``data.val=null``), timed from launch to exit, with an empty scan index (first
  start) and again with the index (second start); peak memory is the largest process's ``ru_maxrss``.
- ``throughput``: the engine (``compact_x4``, ``edsr_x4``; batch 16, two DataLoader workers, ``auto``
  numerics) fed from the folder (each draw decodes its photo: the set is too large to cache), from a
  prepared set of ``--subset`` photos (``sr-toolkit data prepare``), and from the built-in photos held
  on the device (the step alone, nothing to wait for). Prints images/s and the share of the time the
  step waited for its batch, over steps after a warm-up.
- ``basicsr``: the same ``--subset`` photos as input/target pairs (input: bicubic x4) made into
  BasicSR's LMDB path the way its ``scripts/data_preparation`` do (sub-images 480/240 written as PNG by
  OpenCV, then ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``) against ``sr-toolkit data prepare
  --input``: preparation time and size, and images/s delivered by each DataLoader (2 workers, batch
  16, 96-pixel crops, no network). Needs ``basicsr`` (see ``bench/architectures.py``).

These machines are noisy: compare only ratios within one run. Disk: about 4 GB per 1,000 photos,
plus the prepared sets of the subset.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

WIDTH, HEIGHT = 2040, 1350
WARMUP, STEPS = 5, 30
BASES = 40


def generate(folder: Path, count: int) -> None:
    """``count`` distinct photo-like PNGs of WIDTHxHEIGHT named 0001.png... (kept when already there):
    shifted copies of :data:`BASES` smooth colour fields with fine noise (encoding is the cost)."""
    from concurrent.futures import ThreadPoolExecutor

    from torchvision.io import encode_png, write_file

    folder.mkdir(parents=True, exist_ok=True)
    missing = [number for number in range(count) if not (folder / f"{number + 1:04d}.png").exists()]
    bases: dict[int, torch.Tensor] = {}

    def base(number: int) -> torch.Tensor:
        if number not in bases:
            generator = torch.Generator().manual_seed(number)
            coarse = torch.rand(1, 3, HEIGHT // 24, WIDTH // 24, generator=generator) * 255
            image = F.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bicubic", align_corners=False)
            image = image + torch.randn(image.shape, generator=generator) * 3
            bases[number] = image.clamp(0, 255).round().to(torch.uint8)[0]
        return bases[number]

    def make(number: int) -> None:
        path = folder / f"{number + 1:04d}.png"
        shifted = torch.roll(base(number % BASES), (number * 37 % HEIGHT, number * 101 % WIDTH), (1, 2))
        temporary = path.with_suffix(".tmp")
        write_file(str(temporary), encode_png(shifted.contiguous(), compression_level=1))
        temporary.rename(path)

    started = time.perf_counter()
    for number in range(min(BASES, count)):
        base(number)
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(make, missing))
    print(f"photos: {count} in {folder} ({time.perf_counter() - started:.0f} s to make {len(missing)})")


def shrink_folder(source: Path, target: Path, scale: int) -> None:
    """Every photo of ``source`` shrunk by ``scale`` (MATLAB bicubic) into ``target``, same names."""
    from torchvision.io import encode_png, write_file

    from sr_toolkit.core.imageio import list_images
    from sr_toolkit.core.resize import imresize_uint8, modcrop
    from sr_toolkit.data.image_files import decode

    target.mkdir(parents=True, exist_ok=True)
    for path in list_images(source):
        if not (target / path.name).exists():
            small = imresize_uint8(modcrop(decode(path), scale), scale=1 / scale)
            write_file(str(target / path.name), encode_png(small, compression_level=1))


def gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB"


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


# ------------------------------------------------------------------------------------------ start
def start(photos: Path, work: Path) -> None:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # the first start finds no index
    command = [
        "accelerate", "launch", "tools/train.py", "recipes/compact_x4.yaml",
        f"data.train.root={photos}", "data.val=null", "data.num_workers=2", "train.max_steps=1",
        f"output_dir={work / 'runs' / 'start'}",
    ]  # fmt: skip
    print(f"\n## start: {' '.join(command)}")
    measured = [sys.executable, "-c", PEAK_OF_CHILD, *command]
    for label in ("first start (no index)", "second start (index)"):
        started = time.perf_counter()
        result = subprocess.run(measured, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode:
            sys.exit(f"{label}: exit {result.returncode}\n{result.stderr[-3000:]}")
        peak_kib = int(result.stderr.splitlines()[-1])
        print(
            f"{label}: {seconds:.1f} s to the end of step 1; peak memory {peak_kib / 2**20:.2f} GiB (largest process)"
        )
        for line in result.stderr.splitlines():
            if "data:" in line:
                print(f"    {line.strip()[:170]}")


PEAK_OF_CHILD = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)
"""Run the command given after it; print the largest ru_maxrss (KiB) of its processes as stderr's last line."""


# ------------------------------------------------------------------------------------- throughput
def engine_rate(recipe: str, overrides: list[str]) -> tuple[float, float]:
    """(images/s, share of time waiting for batches) of ``recipe``'s engine over STEPS steps after WARMUP."""
    from sr_toolkit.config.recipe import load_recipe
    from sr_toolkit.config.shipped import find_recipe
    from sr_toolkit.training.engine import Trainer

    arrivals: list[float] = []
    waits: list[float] = []
    original = Trainer._batches

    def timed(self: Trainer) -> Iterator[dict[str, Any]]:
        batches = original(self)
        while True:
            asked = time.perf_counter()
            batch = next(batches)
            arrivals.append(time.perf_counter())
            waits.append(arrivals[-1] - asked)
            yield batch

    Trainer._batches = timed  # type: ignore[method-assign]
    try:
        settings = [
            "data.val=null", "data.batch_size=16", "data.num_workers=2", f"train.max_steps={WARMUP + STEPS + 1}",
            "train.log_every=1000", "train.checkpoint_every=100000", f"output_dir={Path('/tmp') / 'sr_data_scale_run'}",
        ]  # fmt: skip
        Trainer(load_recipe(find_recipe(recipe), [*settings, *overrides])).fit()
    finally:
        Trainer._batches = original  # type: ignore[method-assign]
    span = arrivals[WARMUP + STEPS] - arrivals[WARMUP]
    return 16 * STEPS / span, sum(waits[WARMUP + 1 : WARMUP + STEPS + 1]) / span


def prepare(photos: Path, out: Path, *extra: str) -> float:
    """Seconds that ``sr-toolkit data prepare`` takes (kept when ``out`` exists: then 0)."""
    if out.exists():
        return 0.0
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sr_toolkit", "data", "prepare", str(photos), str(out), *extra], check=True)
    return time.perf_counter() - started


def throughput(photos: Path, subset: Path, work: Path) -> None:
    sets = {codec: work / f"prepared_{codec}" for codec in ("png", "raw")}
    for codec, out in sets.items():
        seconds = prepare(subset, out, "--downscales", "0.75", "0.5", "--codec", codec)
        if seconds:
            size = gib(folder_size(out))
            print(f"\nprepared {subset} (downscales 0.75 0.5 as the recipes, {codec}) in {seconds:.0f} s: {size}")
    print(f"\n## throughput: batch 16, 2 workers, auto numerics; images/s over {STEPS} steps after {WARMUP}")
    print(f"{'recipe':<12} {'source':<40} {'images/s':>9} {'waiting':>8} {'vs held':>8}")
    for recipe in ("compact_x4", "edsr_x4"):
        held, _ = engine_rate(recipe, ["data.num_workers=0"])
        print(f"{recipe:<12} {'built-in photos held on the device':<40} {held:9.1f} {'-':>8} {1:8.2f}")
        sources = [(f"folder of {len(list(photos.glob('*.png')))} photos", [f"data.train.root={photos}"])]
        sources += [
            (f"prepared {subset.name}, {codec}", [f"data.train={{type: prepared, root: {out}, patch_size: 96}}"])
            for codec, out in sets.items()
        ]
        for source, overrides in sources:
            rate, waiting = engine_rate(recipe, overrides)
            print(f"{recipe:<12} {source:<40} {rate:9.1f} {waiting:8.0%} {rate / held:8.2f}")


# ---------------------------------------------------------------------------------------- basicsr
def basicsr_prepare(hr: Path, lr: Path, out: Path, scale: int) -> float:
    """BasicSR's documented LMDB path: extract_subimages.py (OpenCV, PNG level 3) then make_lmdb_from_imgs."""
    import cv2
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    started = time.perf_counter()
    for folder, size, step in ((hr, 480, 240), (lr, 480 // scale, 240 // scale)):
        subs = out / f"{folder.name}_sub"
        subs.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            h, w = image.shape[:2]
            tops = list(range(0, h - size + 1, step)) + ([h - size] if (h - size) % step else [])
            lefts = list(range(0, w - size + 1, step)) + ([w - size] if (w - size) % step else [])
            for index, (y, x) in enumerate((y, x) for y in tops for x in lefts):
                crop = image[y : y + size, x : x + size]
                cv2.imwrite(str(subs / f"{path.stem}_s{index + 1:03d}.png"), crop, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        names = sorted(file.name for file in subs.glob("*.png"))
        keys = [Path(name).stem for name in names]
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            make_lmdb_from_imgs(str(subs), str(out / f"{folder.name}.lmdb"), names, keys, n_thread=2)
        shutil.rmtree(subs)
    return time.perf_counter() - started


def loader_rate(dataset: torch.utils.data.Dataset, batches: int = 40) -> float:
    """Images/s a DataLoader (2 workers, batch 16) delivers, after 5 warm-up batches."""
    from sr_toolkit.data.batches import DrawSampler

    is_ours = hasattr(dataset, "images")
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=16,
        num_workers=2,
        persistent_workers=True,
        sampler=DrawSampler(16) if is_ours else torch.utils.data.RandomSampler(dataset, num_samples=10**7),
    )
    iterator = iter(loader)
    for _ in range(5):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return 16 * batches / (time.perf_counter() - started)


def basicsr(subset: Path, work: Path) -> None:
    from architectures import install_functional_tensor_shim

    install_functional_tensor_shim()
    from basicsr.data.paired_image_dataset import PairedImageDataset

    from sr_toolkit.core.registry import DATASETS

    lr = work / "subset_x4"
    shrink_folder(subset, lr, 4)
    ours_out, theirs_out = work / "prepared_pairs", work / "basicsr_lmdb"
    shutil.rmtree(ours_out, ignore_errors=True)
    shutil.rmtree(theirs_out, ignore_errors=True)
    print(f"\n## against BasicSR's LMDB path: {subset} ({len(list(subset.glob('*.png')))} photos) with {lr}")
    theirs_seconds = basicsr_prepare(subset, lr, theirs_out, 4)
    ours_seconds = prepare(subset, ours_out, "--input", str(lr), "--scale", "4")
    ours_size, theirs_size = gib(folder_size(ours_out)), gib(folder_size(theirs_out))
    print(f"prepare: ours {ours_seconds:.0f} s, {ours_size}; BasicSR {theirs_seconds:.0f} s, {theirs_size}; "
          f"BasicSR / ours {theirs_seconds / ours_seconds:.2f}")  # fmt: skip
    theirs = PairedImageDataset(
        {
            "dataroot_gt": str(theirs_out / f"{subset.name}.lmdb"),
            "dataroot_lq": str(theirs_out / f"{lr.name}.lmdb"),
            "io_backend": {"type": "lmdb"},
            "gt_size": 96,
            "use_hflip": True,
            "use_rot": True,
            "scale": 4,
            "phase": "train",
        }
    )
    ours = DATASETS.build({"type": "prepared", "root": str(ours_out), "patch_size": 96, "scale": 4})
    rates = {}
    for _ in range(2):  # alternated
        for name, dataset in (("ours", ours), ("BasicSR", theirs)):
            rates.setdefault(name, []).append(loader_rate(dataset))
    ours_rate, theirs_rate = (max(rates[name]) for name in ("ours", "BasicSR"))
    print(f"DataLoader, 2 workers, batch 16, 96-px crops: ours {ours_rate:.0f} images/s, BasicSR {theirs_rate:.0f}; "
          f"ours / BasicSR {ours_rate / theirs_rate:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=3000)
    parser.add_argument("--subset", type=int, default=300, help="photos prepared (disk: ~3x their PNG size)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sr_data_scale"))
    parser.add_argument("--parts", nargs="+", default=["start", "throughput", "basicsr"])
    args = parser.parse_args()
    photos, subset = args.work / "photos", args.work / f"subset{args.subset}"
    os.environ["SR_TOOLKIT_CACHE_DIR"] = str(args.work / "cache")  # every part shares the scan index
    generate(photos, args.photos)
    if not subset.exists():
        subset.mkdir(parents=True)
        for path in sorted(photos.glob("*.png"))[: args.subset]:
            os.link(path, subset / path.name)
    print(f"photos: {gib(folder_size(photos))} on disk; lscpu: {cpu_model()}")
    if "start" in args.parts:
        start(photos, args.work)
    if "throughput" in args.parts:
        throughput(photos, subset, args.work)
    if "basicsr" in args.parts:
        basicsr(subset, args.work)


def cpu_model() -> str:
    found = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in found.splitlines() if line.startswith("Model name")), "?")
    flags = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {flag}" in found]
    return f"{model} ({os.cpu_count()} CPUs; {' '.join(flags)})"


if __name__ == "__main__":
    main()
