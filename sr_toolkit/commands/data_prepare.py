"""Cut a folder's photos into overlapping sub-images, stored in one LMDB file that ``type: prepared`` reads.

  sr-toolkit data prepare PHOTOS OUT                        clean photos (the recipe degrades them)
  sr-toolkit data prepare PHOTOS OUT --downscales 0.75 0.5  plus copies shrunk by each factor
  sr-toolkit data prepare HR OUT --input LR --scale 4       pairs matched by name, cut at the same places

Sub-images are --size pixels square every --step pixels (BasicSR's 480 and 240); the strip left at an
edge gets one more, aligned to the edge, when at least --min-leftover pixels wide. Reading one
sub-image is much faster than decoding a whole photo to crop a patch from it, and the LMDB file is
shared by every DataLoader worker and process through the page cache. Every file is checked first;
each unusable one is skipped with one warning. The set is written to OUT.partial and renamed to OUT
when complete.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sr_toolkit.commands.exit_codes import OK, exit_status
from sr_toolkit.commands.options import positive_int
from sr_toolkit.core.errors import SrToolkitError
from sr_toolkit.data.image_files import (
    Source,
    check_downscales,
    copy_name,
    decode,
    folder_sources,
    pair_folders,
    paired_sources,
    shrink,
    usable_sources,
)
from sr_toolkit.data.prepared import CODECS, Metadata, SubImage, Writer, check_out, encode, record_key
from sr_toolkit.data.scan import default_workers, progress, scan
from sr_toolkit.data.sub_images import check_cut, cut

Cut = tuple[list[SubImage], dict[bytes, bytes]]
"""One photo's sub-images and their LMDB records (key -> PNG bytes)."""

T = TypeVar("T")
R = TypeVar("R")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="the photos (the targets with --input), searched recursively")
    parser.add_argument("out", metavar="OUT", help="the prepared folder to write (must not exist, see --overwrite)")
    parser.add_argument("--input", metavar="LR_DIR", help="low-resolution inputs matched with DIR's photos by name")
    parser.add_argument("--scale", type=positive_int, metavar="N", help="the inputs' factor (with --input)")
    parser.add_argument("--size", type=int, default=480, help="sub-image side in pixels (default: 480)")
    parser.add_argument("--step", type=int, default=240, help="pixels between sub-images (default: 240)")
    parser.add_argument(
        "--min-leftover", type=int, default=48, help="narrowest edge strip given its own sub-image (default: 48)"
    )
    parser.add_argument(
        "--downscales", type=float, nargs="+", default=[], metavar="F", help="also cut copies shrunk by each factor"
    )
    parser.add_argument(
        "--codec",
        choices=CODECS,
        default="png",
        help="png: lossless, about half the raw bytes, ~4 ms to decode a 480x480 sub-image; raw: the pixels "
        "as they are, nothing to decode, about twice the disk (default: png)",
    )
    parser.add_argument("--workers", type=positive_int, default=default_workers(), help="threads cutting and encoding")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT when it is a prepared set")


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The checked options, as stored in the set's metadata. Raises SrToolkitError for a bad combination."""
    if (args.input is None) != (args.scale is None):
        raise SrToolkitError("--input and --scale go together: paired data needs both, clean photos neither")
    if args.input is not None and args.downscales:
        raise SrToolkitError("--downscales: only for clean photos (without --input)")
    scale = args.scale or 1
    try:
        check_cut(args.size, args.step, args.min_leftover, scale)
        downscales = check_downscales(args.downscales)
    except ValueError as exc:
        raise SrToolkitError(str(exc)) from exc
    folders = {"target": str(Path(args.folder).expanduser().resolve())}
    if args.input is not None:
        folders["input"] = str(Path(args.input).expanduser().resolve())
    return {
        "size": args.size,
        "step": args.step,
        "min_leftover": args.min_leftover,
        "scale": args.scale,
        "roles": sorted(folders),
        "downscales": list(downscales),
        "folders": folders,
        "codec": args.codec,
    }


def cut_photo(source: Source, settings: dict[str, Any]) -> Cut:
    """Decode one photo (and its input), cut it at every factor and encode each sub-image (``codec``)."""
    name, files = source
    images = {role: decode(path) for role, path in files.items()}
    places = (settings["size"], settings["step"], settings["min_leftover"], settings["scale"] or 1)
    sub_images: list[SubImage] = []
    records: dict[bytes, bytes] = {}
    for factor in (1.0, *settings["downscales"]):
        copy = copy_name(name, factor)
        for window, crops in cut(shrink(images, factor), *places):
            key = f"{copy}/{window.key()}"
            sizes = {role: (crop.shape[-2], crop.shape[-1]) for role, crop in crops.items()}
            sub_images.append(SubImage(key, copy, sizes))
            records.update({record_key(role, key): encode(crop, settings["codec"]) for role, crop in crops.items()})
    return sub_images, records


def in_order(pool: ThreadPoolExecutor, work: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """``work(item)`` for each item, run in ``pool`` with at most ``ahead`` pending, yielded in order."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def raw_bytes(sources: list[Source], settings: dict[str, Any], sizes: dict[Path, tuple[int, int]]) -> int:
    """A first estimate of the bytes the set takes: every photo's raw pixels at each factor, times the
    overlap of the sub-images (PNG stores about half the raw bytes, which leaves room)."""
    overlap = (settings["size"] / settings["step"]) ** 2
    area = 1 + sum(factor**2 for factor in settings["downscales"])
    pixels = sum(height * width for _, files in sources for height, width in (sizes[p] for p in files.values()))
    return int(3 * pixels * area * overlap)


@exit_status
def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    settings = options(args)
    out = Path(args.out).expanduser()
    check_out(out, args.overwrite)
    folder = Path(args.folder).expanduser()
    if args.input is None:
        sources = folder_sources(folder)
        found_files = len(sources)
    else:
        input_folder = Path(args.input).expanduser()
        matched = pair_folders(input_folder, folder, args.scale)
        sources = paired_sources(matched, input_folder, folder)
        found_files = matched.file_count
    records = scan([path for _, files in sources for path in files.values()])
    # the patch size is not known yet: the dataset leaves out sub-images too small for it
    usable = usable_sources(sources, records, args.scale or 1, lambda height, width: None, str(folder))
    sizes = {path: (record.height, record.width) for path, record in records.items()}
    writer = Writer(out, raw_bytes(usable, settings, sizes))
    sub_images: list[SubImage] = []
    try:
        workers = args.workers
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            progress(sys.stderr.isatty(), len(usable), "cutting photos") as advance,
        ):
            for cut_images, cut_records in in_order(pool, partial(cut_photo, settings=settings), usable, 2 * workers):
                writer.put(cut_records)
                sub_images.extend(cut_images)
                advance()
        writer.finish(Metadata(settings, sub_images), args.overwrite)
    except BaseException:
        writer.abandon()
        raise
    used = f"{len(usable)} pairs" if args.input else f"{len(usable)} photos"
    skipped = found_files - len(usable) * (2 if args.input else 1)
    print(
        f"{out}: {used} used, {skipped} files skipped, {len(sub_images)} sub-images, "
        f"{writer.written / 2**30:.2f} GiB written in {time.perf_counter() - start:.1f} s"
    )
    return OK
