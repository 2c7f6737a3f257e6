"""Score models and interpolation baselines on a folder of clean images, as SR papers do.

    python tools/eval.py --data DIR --scale 4 --models runs/a/model.safetensors --y-channel --out eval/x4

Writes OUTDIR/results.json, results.csv, grids/ and report.html (open it from disk). See the
README's "Evaluation" section for every convention.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sr_toolkit.commands.exit_codes import OK, exit_status
from sr_toolkit.commands.options import add_plugins_option
from sr_toolkit.core.discovery import import_plugins
from sr_toolkit.evaluation.evaluate import IDENTITY, INTERPOLATIONS, Evaluation, Settings
from sr_toolkit.evaluation.report import ReportWriter, results_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", type=Path, required=True, metavar="DIR", help="folder of clean (ground-truth) images")
    add(
        "--lr",
        type=Path,
        metavar="DIR",
        help="folder of input images matched by name (default: inputs made from --data)",
    )
    add(
        "--degradation",
        metavar="RECIPE",
        help="make each image's input from it with this recipe's degradation list (a recipe file or a shipped "
        "recipe's name; its scale must be --scale's; not with --lr); every method gets the same input "
        "(default: MATLAB bicubic)",
    )
    add("--scale", type=int, metavar="S", help="upscaling factor (default: the models' own; 1 = restoration)")
    add(
        "--models",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="model.safetensors files written by tools/train.py",
    )
    add(
        "--baselines",
        nargs="*",
        choices=[*INTERPOLATIONS, IDENTITY],
        help="default: bicubic (scale > 1) or input (scale 1); none when given without names",
    )
    add(
        "--metrics",
        nargs="+",
        default=list(Settings.metrics),
        metavar="NAME",
        help="registered metrics (sr-toolkit list metrics; first-party: psnr ssim ms_ssim mse hf_ratio lpips); "
        f"default: {' '.join(Settings.metrics)}",
    )
    add_plugins_option(parser, "e.g. one that registers a metric")
    add("--y-channel", action="store_true", help="score BT.601 luma (as SR papers do) instead of RGB")
    add("--crop-border", type=int, metavar="N", help="pixels shaved from each side before scoring (default: the scale)")
    add(
        "--seed",
        type=int,
        default=Settings.seed,
        metavar="N",
        help=f"seed of the degradation's random draws, per image with its file name (default: {Settings.seed})",
    )
    add(
        "--tile",
        type=int,
        metavar="N",
        help="run models in tiles of N input pixels (0: never; default: only for outputs over 2048x2048)",
    )
    add("--lpips-net", default="alex", choices=["alex", "vgg", "squeeze"])
    add(
        "--lpips-weights",
        type=Path,
        metavar="FILE",
        help="torchvision ImageNet weights of the LPIPS backbone (default: the torch hub cache)",
    )
    add("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    add("--no-images", action="store_true", help="write the tables only: no grids or slider images")
    add("--out", type=Path, required=True, metavar="DIR", help="output folder")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        data=args.data,
        scale=args.scale,
        lr=args.lr,
        degradation=args.degradation,
        models=tuple(args.models),
        baselines=None if args.baselines is None else tuple(args.baselines),
        metrics=tuple(args.metrics),
        y_channel=args.y_channel,
        crop_border=args.crop_border,
        seed=args.seed,
        tile=args.tile,
        lpips_net=args.lpips_net,
        lpips_weights=args.lpips_weights,
        device=args.device,
    )


@exit_status
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    import_plugins(args.plugins)
    evaluation = Evaluation(settings_from(args))
    for line in [*evaluation.model_lines(), evaluation.caption()]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    writer = ReportWriter(args.out, images=not args.no_images, caption=evaluation.caption())
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(evaluation.pairs))
        for sample in evaluation.samples():
            writer.add(sample)
            progress.update(task, advance=1, description=sample.name)
    results = evaluation.results
    paths = writer.finish(results)
    console.print(results_table(results))
    for note in results.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"wrote {paths['results.json']}, {paths['results.csv']} and {paths['report.html']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return OK


if __name__ == "__main__":
    sys.exit(main())
