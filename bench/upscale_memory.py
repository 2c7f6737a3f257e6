"""Peak memory of tiled upscaling: ``tools/upscale.py`` on a large photo, one fresh process per model.

Writes a photo (scikit-image's astronaut, resized to ``--size``) and a model file with random weights per
model, runs ``python tools/upscale.py MODEL PHOTO --out DIR --tile T`` in a child process, and reports its
peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) and wall time. ``--small`` adds a
run on a small photo with the same tile: the difference is what the image size itself costs (the input
and the 8-bit output), the rest is Python, torch and the tile.

    python bench/upscale_memory.py --size 4000x3000 --tile 256 --models srresnet resnet_x4 [--half]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
SCALE = 4


def write_photo(path: Path, width: int, height: int) -> None:
    """The astronaut photo resized to ``width`` x ``height`` (a natural image, so PNG sizes are typical)."""
    Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BICUBIC).save(path)


def write_model(path: Path, name: str) -> None:
    """A model file for ``name`` with its default architecture at x4 and random weights."""
    torch.manual_seed(0)
    spec = {"type": name, "scale": SCALE}
    save_model(path, MODELS.build(spec), {"model": spec, "scale": SCALE, "task": "upscale"})


# Run by a fresh interpreter between us and the command: a child's ru_maxrss counts the pages it shared with
# the process that forked it, so a command forked from a large benchmark process would report that size.
# Writes "PEAK_KIB EXIT_CODE" to the file named first.
WAIT_AND_REPORT = (
    "import os, pathlib, subprocess, sys; child = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(child.pid, 0); "
    "pathlib.Path(sys.argv[1]).write_text(f'{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}')"
)


def upscale_command(model: Path, photo: Path, out: Path, tile: int, half: bool) -> list[str]:
    """The user's ``tools/upscale.py MODEL PHOTO --out OUT --tile T --device cpu [--half]``."""
    command = [sys.executable, str(ROOT / "tools" / "upscale.py"), str(model), str(photo), "--out", str(out)]
    return [*command, "--tile", str(tile), "--device", "cpu", *(["--half"] if half else [])]


def measure(command: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB, wall seconds) of ``command``, run by a fresh interpreter (see ``WAIT_AND_REPORT``);
    raises if it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report"
        subprocess.run([sys.executable, "-c", WAIT_AND_REPORT, str(report), *command], check=True)
        peak_kib, exit_code = map(int, report.read_text().split())
    if exit_code != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {exit_code}")
    return peak_kib / 2**20, time.perf_counter() - started  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the input photo")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=["srresnet", "resnet_x4"])
    parser.add_argument("--half", action="store_true", help="pass --half to tools/upscale.py")
    parser.add_argument("--small", default=None, metavar="WxH", help="also run on a photo of this size")
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None  # the outputs checked here are ours, and larger than Pillow's limit
    sizes = [args.size] + ([args.small] if args.small else [])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for size in sizes:
            write_photo(work / f"photo_{size}.png", *map(int, size.split("x")))
        for name in args.models:
            write_model(work / f"{name}.safetensors", name)
            for size in sizes:
                out = work / f"out_{name}_{size}"
                command = upscale_command(
                    work / f"{name}.safetensors", work / f"photo_{size}.png", out, args.tile, args.half
                )
                peak, seconds = measure(command)
                print(f"{name} {size}: peak RSS {peak:.2f} GiB, {seconds:.0f} s", flush=True)
                with Image.open(out / f"photo_{size}.png") as result:
                    assert result.size == tuple(SCALE * int(n) for n in size.split("x")), result.size
                    megapixels = np.prod(result.size) / 1e6
                rows.append((name, size, megapixels, peak, seconds))
    precision = "bf16" if args.half else "fp32"
    print("\n| model | input | output (MP) | tile | precision | peak RSS (GiB) | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, size, megapixels, peak, seconds in rows:
        print(f"| {name} | {size} | {megapixels:.1f} | {args.tile} | {precision} | {peak:.2f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
