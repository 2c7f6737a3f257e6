"""PSNR-Y / SSIM-Y of trained models and bicubic on Set5 / Set14, with the literature's conventions.

LR inputs are made from the HR images with MATLAB-exact bicubic downscaling (uint8, as MATLAB's
``imresize`` gives them); outputs are quantised to 8 bits; PSNR and SSIM are computed on the
BT.601 Y channel with ``scale`` pixels shaved from each border. A grayscale image is scored on
its own values (the mean of the model's three output channels).

    python bench/sr_benchmark.py runs/resnet_x4/model.safetensors [more.safetensors] [--sets Set5 Set14]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from sr_toolkit import metrics
from sr_toolkit.imageio import list_images, read_image
from sr_toolkit.model_file import load_model
from sr_toolkit.resize import imresize, imresize_uint8, modcrop

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@torch.no_grad()
def score(hr: torch.Tensor, sr: torch.Tensor, scale: int) -> tuple[float, float]:
    """PSNR-Y and SSIM-Y of one image pair (C, H, W) in [0, 1]."""
    if hr.shape[0] == 1:
        sr = sr.mean(0, keepdim=True)
    args = {"y_channel": True, "crop_border": scale}
    return metrics.psnr(sr[None], hr[None], **args).item(), metrics.ssim(sr[None], hr[None], **args).item()


@torch.no_grad()
def evaluate(models: dict[str, torch.nn.Module], folder: Path, scale: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ("bicubic", *models)}
    paths = list_images(folder)
    for path in [p for p in paths if "_HR." in p.name] or paths:
        hr = modcrop(read_image(path, mode="keep"), scale)
        lr = imresize_uint8((hr * 255).round().to(torch.uint8)[None], scale=1 / scale)[0].float() / 255
        results["bicubic"].append(score(hr, metrics.quantize(imresize(lr[None], scale=scale)[0]), scale))
        rgb = lr.expand(3, -1, -1) if lr.shape[0] == 1 else lr
        for name, model in models.items():
            results[name].append(score(hr, metrics.quantize(model(rgb[None]).float()[0]), scale))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    models = {path.parent.name if path.stem == "model" else path.stem: load_model(path) for path in args.models}
    table = Table("set", "method", "PSNR-Y (dB)", "SSIM-Y", "gain over bicubic (dB)")
    for name in args.sets:
        folder = args.data / name / f"image_SRF_{args.scale}"
        results = evaluate(models, folder, args.scale)
        base = sum(p for p, _ in results["bicubic"]) / len(results["bicubic"])
        for method, values in results.items():
            psnr = sum(p for p, _ in values) / len(values)
            ssim = sum(s for _, s in values) / len(values)
            table.add_row(name, method, f"{psnr:.2f}", f"{ssim:.4f}", f"{psnr - base:+.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
