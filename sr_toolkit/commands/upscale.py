"""Upscale or restore images with a trained model: ``python tools/upscale.py MODEL INPUT... --out DIR``.

INPUT is any mix of image files and folders (searched recursively). The task and scale come from the
model file. Outputs keep their names (and, under a folder input, their sub-folders), as PNG unless
``--ext`` says otherwise, and their kind: gray, gray + alpha, RGB or RGBA as the input, 16 bits per
channel when the input has 16 (or ``--16bit`` asks), else 8. Where the format cannot hold that (JPEG
and BMP have no alpha, only PNG is written with 16 bits) a warning says so once, and alpha is laid
over white or 16 bits become 8. An unreadable input gets one error line and the others still
complete; the exit code is 1 when any input failed, 2 when the model (or the command line) is unusable.

Without ``--tile``, an image whose one pass would take more than half the memory available on the device
runs in tiles sized to fit, with one line saying so (models that tile exactly only: see
:func:`sr_toolkit.inference.tiling.auto_tile`). An image that still runs out of memory gets one error line with a
smaller ``--tile`` to try, and the others still complete.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sr_toolkit.commands.exit_codes import FAILED, OK, exit_status
from sr_toolkit.core.errors import DataError, SrToolkitError, first_line
from sr_toolkit.core.image_writer import ALPHA_FORMATS, save_pixels
from sr_toolkit.core.imageio import IMAGE_EXTENSIONS, Decoded, composite, decode_image, list_images, split_alpha
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.inference.tiling import guessed_overlap, tile_count
from sr_toolkit.inference.upscaling import (
    MEMORY_SHARE,
    bytes_per_output_pixel,
    is_out_of_memory,
    load_model,
    plan_memory,
    prepare,
    upscale_batch,
)


class OutOfMemory(SrToolkitError):
    """An image ran out of memory in the network; the message says which ``--tile`` to try."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a model.safetensors written by tools/train.py")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        help="run the model on tiles of this many input pixels a side: memory then grows "
        "with the tile, not the image (default: whole images, or tiles sized to fit "
        "the memory available where one pass would not)",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        metavar="N",
        help="context pixels read around each tile (default: the model's receptive field, "
        "which makes tiled and untiled results equal)",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda, cuda:1, ... (default: cuda when available)",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="half precision: float16 on GPUs, bfloat16 on CPUs (fast only on CPUs with AMX or AVX-512 BF16)",
    )
    parser.add_argument(
        "--ext",
        default="png",
        choices=sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS),
        help="output format (default: png)",
    )
    parser.add_argument(
        "--16bit",
        dest="sixteen_bit",
        action="store_true",
        help="write 16-bit PNG (the network's full precision) also for 8-bit inputs "
        "(16-bit inputs always give 16-bit PNG)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse larger inputs (default: Pillow's decompression-bomb limit, "
        f"{Image.MAX_IMAGE_PIXELS} pixels); raise it for large trusted files",
    )
    args = parser.parse_args(argv)
    if args.sixteen_bit and args.ext != "png":
        parser.error("--16bit writes PNG only: leave out --ext or use --ext png")
    for name, least in (("tile", 1), ("tile_overlap", 0), ("max_pixels", 1)):
        value = getattr(args, name)
        if value is not None and value < least:
            parser.error(f"--{name.replace('_', '-')}: expected a number of pixels >= {least}, got {value}")
    return args


def jobs(inputs: list[Path], out: Path, ext: str) -> Iterator[tuple[Path, Path | None, str | None]]:
    """(input, output, None) per image to process, or (input, None, why) for an input that cannot be."""
    claimed: dict[Path, Path] = {}
    for source in inputs:
        try:
            pairs = (
                [(path, path.relative_to(source)) for path in list_images(source)]
                if source.is_dir()
                else [(source, Path(source.name))]
            )
        except DataError as exc:
            yield source, None, str(exc)
            continue
        if not pairs:
            yield source, None, f"{source}: no images in this folder"
        for path, name in pairs:
            target = out / name.with_suffix(f".{ext}")
            if target in claimed:
                yield path, None, f"{path}: its output {target} would overwrite that of {claimed[target]}"
                continue
            claimed[target] = path
            yield path, target, None


def fit_format(
    image: Decoded, ext: str, sixteen_bit: bool, warn: Callable[[str], None]
) -> tuple[torch.Tensor, torch.dtype]:
    """The (C, H, W) pixels in [0, 1] and integer dtype to write ``image`` as an ``ext`` file.

    Alpha is laid over white where the format has none, and 16 bits (the input's, or ``sixteen_bit``)
    become 8 outside PNG; ``warn`` is told each time (one line, which the caller may say once).
    """
    pixels = image.pixels
    image_format = Image.registered_extensions()[f".{ext}"]
    if image_format not in ALPHA_FORMATS and split_alpha(pixels)[1] is not None:
        warn(f"{image_format} cannot store alpha: inputs with alpha are laid over white")
        pixels = composite(pixels, 1.0)
    deep = sixteen_bit or image.bits == 16
    if deep and image_format != "PNG":
        warn(f"{image_format} is written with 8 bits per channel: 16-bit inputs lose their low bits")
    return pixels, torch.uint16 if deep and image_format == "PNG" else torch.uint8


def choose_tile(
    model: torch.nn.Module,
    source: Path,
    height: int,
    width: int,
    args: argparse.Namespace,
    bytes_per_pixel: float | None,
    say: Callable[[str], None],
) -> int | None:
    """``--tile`` when given, else the tile that fits the memory available (None: one pass), said in one
    line when there is one. ``bytes_per_pixel``: the model's, None only with ``--tile``."""
    if bytes_per_pixel is None:
        return args.tile
    plan = plan_memory(
        model, height, width, device=args.device, bytes_per_pixel=bytes_per_pixel, overlap=args.tile_overlap
    )
    if plan.tile is not None:
        say(
            f"{source}: tiles of {plan.tile} px: one pass over {width}x{height} would take about "
            f"{gib(plan.needed)} ({bytes_per_pixel:.0f} bytes per output pixel), more than {MEMORY_SHARE:.0%} "
            f"of the {gib(plan.available)} available"
        )
    return plan.tile


def gib(size: float) -> str:
    """A size in bytes, in GiB to two decimals."""
    return f"{size / 2**30:.2f} GiB"


def smaller_tile(tile: int | None, height: int, width: int) -> int:
    """A tile to try after running out of memory: half the tile that ran, or of the image's longer side
    when it ran in one pass (each halving takes a pass about a quarter of the memory)."""
    return max((tile or max(height, width)) // 2, 1)


def process(
    model: torch.nn.Module,
    source: Path,
    target: Path,
    args: argparse.Namespace,
    progress: Progress,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    bytes_per_pixel: float | None,
) -> None:
    """Read, upscale and write one image, keeping its kind as far as ``args.ext`` allows, in tiles as
    :func:`choose_tile` says; raises on failure (:class:`OutOfMemory` when the network runs out)."""
    image, dtype = fit_format(decode_image(source, max_pixels=args.max_pixels), args.ext, args.sixteen_bit, warn)
    scale = contract_of(model).scale
    channels, height, width = image.shape
    tile = choose_tile(model, source, height, width, args, bytes_per_pixel, say)
    # (H, W, C) integer pixels, written through a (C, H, W) view: the file is encoded from it as it is
    pixels = torch.empty((1, height * scale, width * scale, channels), dtype=dtype)
    count = tile_count(model, height, width, tile)
    tiles = progress.add_task(f"  tiles of {source.name}", total=count, visible=count > 1)
    try:
        upscale_batch(
            model,
            image[None],
            scale=scale,
            tile=tile,
            overlap=args.tile_overlap,
            out=pixels.permute(0, 3, 1, 2),
            on_tile=lambda: progress.advance(tiles),
        )
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        where = f"in tiles of {tile} px" if tile else f"in one pass over {width}x{height} pixels"
        raise OutOfMemory(f"{source}: out of memory {where}: try --tile {smaller_tile(tile, height, width)}") from None
    finally:
        progress.remove_task(tiles)
    del image
    save_pixels(pixels[0].numpy(), target)


@exit_status
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)

    def say(line: str) -> None:
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    warned: set[str] = set()

    def warn_once(line: str) -> None:
        if line not in warned:
            warned.add(line)
            say(f"warning: {line}")

    if args.max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, args.max_pixels)
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SrToolkitError(f"--device {args.device}: CUDA is not available on this machine")
        model = prepare(load_model(args.model), device, args.half)
        bytes_per_pixel = None if args.tile is not None else bytes_per_output_pixel(model)
    except (RuntimeError, ValueError) as exc:  # torch's own: a device it cannot parse or use, a model failing on it
        raise SrToolkitError(str(exc)) from exc
    contract = contract_of(model)
    task = f"upscale x{contract.scale}" if contract.task == "upscale" else contract.task
    precision = " in half precision" if args.half else ""
    say(f"{args.model}: {contract.architecture}, {task}, on {device}{precision}")
    if args.tile is not None and contract.halo is None and args.tile_overlap is None:
        args.tile_overlap = guessed_overlap(contract)
        say(
            f"warning: model '{contract.architecture}' declares no 'halo' (receptive-field radius): tiles overlap "
            f"by {args.tile_overlap} px, which may leave seams; pass --tile-overlap to be sure"
        )
    if args.tile is not None and contract.halo is not None and not contract.exact_tiling:
        say(
            f"warning: this model {contract.tiling_caveat}: tiles will not match the whole-image result "
            "(visible seams); leave out --tile to avoid them"
        )
    work = list(jobs(args.inputs, args.out, args.ext))
    failed = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        images = progress.add_task("images", total=sum(target is not None for _, target, _ in work))
        for source, target, problem in work:
            try:
                if target is None:
                    raise DataError(problem)
                try:
                    process(model, source, target, args, progress, say, warn_once, bytes_per_pixel)
                finally:
                    progress.advance(images)
            except (SrToolkitError, ValueError, OSError, MemoryError) as exc:
                failed += 1
                say(f"error: {describe_failure(source, exc)}")
    say(f"{len(work) - failed} written to {args.out}" + (f", {failed} failed" if failed else ""))
    return FAILED if failed else OK


def describe_failure(source: Path, exc: Exception) -> str:
    """One line naming the input and what went wrong with it."""
    message = first_line(exc)
    if isinstance(exc, MemoryError):
        message = "out of memory"
    elif "too large" in message:
        message += " (--max-pixels raises the limit)"
    return message if str(source) in message else f"{source}: {message}"


if __name__ == "__main__":
    sys.exit(main())
