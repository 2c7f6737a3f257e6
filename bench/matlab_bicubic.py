"""How closely :func:`sr_toolkit.core.resize.imresize` reproduces MATLAB's bicubic ``imresize``.

Set5 and Set14 (SelfExSR layout) ship each HR image with the LR image MATLAB made from it,
``imresize(hr, 1/s, 'bicubic')`` on uint8. For each pair this script resizes the HR image with
sr-toolkit, rounds to uint8 and compares with MATLAB's LR: fraction of identical values, largest
difference, PSNR. Two ways are measured: ``imresize`` on the image as float (uint8 / 255, in
float32 and float64) rounded once at the end, and ``imresize_uint8``, which also rounds to uint8
between the two 1-D passes as MATLAB does for uint8 input.

    python bench/matlab_bicubic.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr_toolkit.core.resize import imresize, imresize_uint8

SETS = [("Set5", 2), ("Set5", 3), ("Set5", 4), ("Set14", 4)]


def load(path: Path) -> torch.Tensor:
    """An image file as a uint8 tensor (C, H, W)."""
    array = np.asarray(Image.open(path))
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero and saturate, as MATLAB's conversion to uint8 does."""
    return torch.floor(x * 255 + 0.5).clamp(0, 255).to(torch.uint8)


def compare(ours: torch.Tensor, matlab: torch.Tensor) -> tuple[int, int, float, float]:
    """Identical values, total values, largest absolute difference and PSNR (dB)."""
    diff = ours.int() - matlab.int()
    mse = diff.double().pow(2).mean().item()
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    return int((diff == 0).sum()), diff.numel(), int(diff.abs().max()), psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default, help="folder holding Set5/ and Set14/")
    args = parser.parse_args()

    header = f"{'set':<6} {'x':>2} {'image':<8} " + "  ".join(
        f"{name + ' exact %':>17} {'max':>3} {'PSNR':>6}" for name in ("float32", "float64", "uint8")
    )
    print(header)
    totals: dict[str, list[int]] = {}
    for name, scale in SETS:
        folder = args.data / name / f"image_SRF_{scale}"
        for hr_path in sorted(folder.glob("*_HR.png")):
            hr = load(hr_path)
            matlab = load(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
            results = {
                dtype_name: to_uint8(imresize(hr[None].to(dtype) / 255, scale=1 / scale)[0])
                for dtype_name, dtype in (("float32", torch.float32), ("float64", torch.float64))
            }
            results["uint8"] = imresize_uint8(hr, scale=1 / scale)
            cells = []
            for method, ours in results.items():
                same, count, worst, psnr = compare(ours, matlab)
                total = totals.setdefault(f"{name} x{scale} {method}", [0, 0, 0])
                total[0], total[1], total[2] = total[0] + same, total[1] + count, max(total[2], worst)
                cells.append(f"{100 * same / count:>17.3f} {worst:>3} {psnr:>6.1f}")
            print(f"{name:<6} {scale:>2} {hr_path.name[:7]:<8} " + "  ".join(cells))
    print("\ntotals: exact % of all values, largest difference")
    for key, (same, count, worst) in totals.items():
        print(f"  {key:<22} {100 * same / count:8.3f} %  max {worst}")


if __name__ == "__main__":
    main()
