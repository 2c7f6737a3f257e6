"""Bicubic PSNR-Y / SSIM-Y on Set5 and Set14 by sr_toolkit.evaluation.evaluate, against the published values.

The inputs are made from the HR images by MATLAB-style bicubic downscaling (as tools/eval.py does by
default), and again read from the MATLAB-made LR files next to them (``--lr``); both must come within
0.05 dB and 0.002 SSIM of the numbers SR papers print for bicubic (Kim et al., VDSR, CVPR 2016, Table 3).

    python bench/set5_bicubic.py [--data ../shared/data]

Exits with status 1 when a value is out of tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sr_toolkit.evaluation.evaluate import Evaluation, Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PUBLISHED = {  # (set, scale): (PSNR-Y dB, SSIM-Y) of bicubic upscaling, border = scale
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}
PSNR_TOLERANCE = 0.05
SSIM_TOLERANCE = 0.002


def bicubic_means(folder: Path, scale: int, lr: Path | None) -> tuple[float, float]:
    """Mean PSNR-Y and SSIM-Y of bicubic upscaling over the HR images of ``folder``."""
    settings = Settings(folder, scale=scale, lr=lr, baselines=("bicubic",), y_channel=True, device="cpu")
    means = Evaluation(settings).run().mean("bicubic")
    return means["psnr"], means["ssim"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding Set5/ and Set14/")
    args = parser.parse_args()
    columns = ("set", "scale", "inputs", "PSNR-Y (dB)", "published", "diff", "SSIM-Y", "published", "diff", "ok")
    table = Table(*columns, title="bicubic, Y channel, border = scale")
    failures = 0
    for (name, scale), (psnr_ref, ssim_ref) in PUBLISHED.items():
        folder = args.data / name / f"image_SRF_{scale}"
        if not folder.is_dir():
            table.add_row(name, f"x{scale}", "missing", *[""] * 7)
            continue
        for label, lr in (("made here", None), ("MATLAB LR", folder)):
            psnr, ssim = bicubic_means(folder, scale, lr)
            ok = abs(psnr - psnr_ref) <= PSNR_TOLERANCE and abs(ssim - ssim_ref) <= SSIM_TOLERANCE
            failures += not ok
            table.add_row(
                name,
                f"x{scale}",
                label,
                f"{psnr:.3f}",
                f"{psnr_ref:.2f}",
                f"{psnr - psnr_ref:+.3f}",
                f"{ssim:.4f}",
                f"{ssim_ref:.4f}",
                f"{ssim - ssim_ref:+.4f}",
                "yes" if ok else "NO",
            )
    Console().print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
