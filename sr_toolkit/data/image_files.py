"""The base of dataset plugins whose images are files, checked up front by a parallel, remembered scan.

A plugin subclasses :class:`FileDataset` and passes ``super().__init__`` its :data:`Source` list
(each image's name and files by role); everything else (skipping bad files, caching, downscaled
copies, the deterministic crops of :class:`~sr_toolkit.data.patches.PatchDataset`) comes with it.

Every file is decoded once by :func:`sr_toolkit.data.scan.scan` (on all cores, remembered in an
index so later starts and the other processes of a distributed run skip it), which finds the
unusable ones up front (empty, truncated, not an image, too small for the patch, an input of the
wrong size): each is skipped with one warning instead of failing mid-training. The decoded images
are then kept in memory as uint8 when they fit (``cache: auto``, see :func:`cache_budget`);
otherwise each draw decodes its file again, in the DataLoader's workers (``data.num_workers``).

Clean training images can also be used at smaller sizes (``downscales``): each factor adds a copy
of every image shrunk by MATLAB's bicubic ``imresize`` (antialiased, rounded to uint8). A shrunk
photo has more detail per pixel and fewer compression and sensor artefacts, which widens a small
training set (Real-ESRGAN's multi-scale DF2K is made the same way, with copies at 3/4, 1/2, 1/3).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import torch

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.imageio import list_images, read_image, to_uint8
from sr_toolkit.core.resize import imresize_uint8, output_sizes
from sr_toolkit.data import pairing
from sr_toolkit.data.patches import PatchDataset, Split, logger
from sr_toolkit.data.prepared import refuse_prepared
from sr_toolkit.data.scan import FileRecord, default_workers, scan

Source = tuple[str, dict[str, Path]]
TooSmall = Callable[[int, int], str | None]
"""One image: its name and the files it is read from, by role ("target", and "input" when paired)."""


def decode(path: Path) -> torch.Tensor:
    """The image at ``path`` as a uint8 (3, H, W) tensor (grayscale replicated, alpha dropped)."""
    return to_uint8(read_image(path, mode="RGB"))


def shrink(images: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """The images scaled by ``factor`` (MATLAB bicubic on uint8); unchanged when ``factor`` is 1."""
    if factor == 1:
        return images
    return {role: imresize_uint8(image, scale=factor) for role, image in images.items()}


def copy_name(name: str, factor: float) -> str:
    """The name of image ``name``'s copy at ``factor`` of its size: ``name@0.5``, or ``name`` at 1."""
    return name if factor == 1 else f"{name}@{factor:g}"


def check_downscales(downscales: Sequence[float]) -> tuple[float, ...]:
    """``downscales`` as a tuple of distinct factors strictly between 0 and 1, or a ValueError naming the bad one."""
    factors = tuple(downscales)
    for factor in factors:
        if not 0 < factor < 1:
            raise ValueError(f"downscales: each factor must be between 0 and 1 (exclusive), got {factor!r}")
    if len(set(factors)) != len(factors):
        raise ValueError(f"downscales: factors repeat in {list(factors)}")
    return factors


def skip(message: str) -> None:
    """Log one warning line about an unusable file."""
    logger.warning("skipping %s", message)


Cache = Literal["auto"] | bool
CACHE_SHARE = 0.5
"""The share of the memory available at start that ``cache: auto`` lets the decoded images of all
local training processes take."""


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux; free pages elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cache_budget() -> int:
    """Bytes one process may cache with ``cache: auto``: :data:`CACHE_SHARE` of the available memory,
    shared by the processes of this machine (``LOCAL_WORLD_SIZE``, set by ``accelerate launch``)."""
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return int(CACHE_SHARE * available_memory() / processes)


def source_problem(
    files: dict[str, Path], records: dict[Path, FileRecord], scale: int, too_small: TooSmall
) -> str | None:
    """Why a source (files by role, as their scan found them) cannot be trained on, as one line
    naming its files; None when it can. An input must be the target's size, cut to a multiple of
    ``scale``, divided by ``scale``; ``too_small(height, width)`` judges the target's size."""
    for path in files.values():
        if not records[path].usable:
            return f"{path}: {records[path].problem}"
    target = records[files["target"]]
    problem = too_small(target.height, target.width)
    if "input" in files:
        problem = input_size_problem(records[files["input"]], target, scale) or problem
    return f"{' with '.join(str(path) for path in files.values())}: {problem}" if problem else None


def usable_sources(
    sources: Sequence[Source], records: dict[Path, FileRecord], scale: int, too_small: TooSmall, where: str
) -> list[Source]:
    """The sources :func:`source_problem` finds nothing wrong with, in order; each other one skipped
    with one warning. Raises DataError naming ``where`` when none is left."""
    usable = []
    for source in sources:
        problem = source_problem(source[1], records, scale, too_small)
        if problem:
            skip(problem)
        else:
            usable.append(source)
    if not usable:
        found = f"all {len(sources)} skipped, see the warnings above" if sources else "none found"
        raise DataError(f"{where}: no usable images ({found})")
    return usable


def input_size_problem(got: FileRecord, target: FileRecord, scale: int) -> str | None:
    """Why a decoded input does not fit its decoded target at ``scale`` (it must be the target's
    size, cut to a multiple of ``scale``, divided by ``scale``), or None when it does."""
    want_height, want_width = target.height // scale, target.width // scale
    if (got.height, got.width) == (want_height, want_width):
        return None
    return (
        f"input is {got.width}x{got.height}, expected {want_width}x{want_height} "
        f"(target {target.width}x{target.height} divided by scale {scale})"
    )


class FileDataset(PatchDataset):
    """Images read from files, scanned at construction; ``where`` names their folder(s) in errors.

    ``cache``: ``"auto"`` keeps the decoded images in memory when they take at most
    :func:`cache_budget` (one log line says which), ``True`` always, ``False`` never (each draw then
    decodes its file). ``downscales`` (training split only) adds, per factor, a copy of every image at
    that fraction of its size, named ``name@factor``; a copy too small for the patch is left out with
    one log line. Raises DataError when no file is usable.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        where: str,
        split: Split,
        patch_size: int | None,
        augment: bool,
        seed: int,
        scale: int,
        cache: Cache,
        downscales: Sequence[float] = (),
    ) -> None:
        super().__init__(split, patch_size, augment, seed, scale)
        if cache not in ("auto", True, False):
            raise ValueError(f"cache: expected auto, true or false, got {cache!r}")
        factors = (1.0, *check_downscales(downscales)) if split == "train" else (1.0,)
        records = scan([path for _, files in sources for path in files.values()])
        self._sources: list[Source] = []
        self._factors: list[float] = []
        decoded_bytes = 0
        too_small = 0
        for name, files in usable_sources(sources, records, scale, self.too_small, where):
            for factor in factors:
                sizes = {role: shrunk_size(records[path], factor) for role, path in files.items()}
                if factor != 1 and self.too_small(*sizes["target"]):
                    too_small += 1
                    continue
                self._sources.append((copy_name(name, factor), files))
                self._factors.append(factor)
                decoded_bytes += sum(3 * height * width for height, width in sizes.values())
        if too_small:
            logger.info("%s: %d downscaled copies too small for the patch left out", where, too_small)
        self._cached: list[dict[str, torch.Tensor]] = []
        if self._chooses_cache(cache, decoded_bytes, where):
            self._cached = self._decode_all()

    def __len__(self) -> int:
        return len(self._sources)

    def name(self, image_index: int) -> str:
        return self._sources[image_index][0]

    @property
    def in_memory(self) -> bool:
        return bool(self._cached)

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        if self._cached:
            return dict(self._cached[image_index])
        return self._decode(image_index)

    def _decode(self, image_index: int) -> dict[str, torch.Tensor]:
        """Image ``image_index`` decoded from its files and shrunk by its factor."""
        images = {role: decode(path) for role, path in self._sources[image_index][1].items()}
        return shrink(images, self._factors[image_index])

    def _chooses_cache(self, cache: Cache, decoded_bytes: int, where: str) -> bool:
        """Whether to keep the decoded images in memory, said in one log line for a training set."""
        if cache is False:
            if self.split == "train":
                logger.info("data: %s: cache: false: each draw decodes its file", where)
            return False
        budget = cache_budget()
        fits = decoded_bytes <= budget
        size = f"{decoded_bytes / 2**30:.2f} GiB"
        if self.split == "train" and (fits or cache is True):
            logger.info(
                "data: %s: %d images decoded in memory (%s; budget %.1f GiB)", where, len(self), size, budget / 2**30
            )
        elif self.split == "train":
            logger.info(
                "data: %s: the decoded images (%s) would pass the memory budget (%.1f GiB, half the available "
                "memory): each draw decodes its file; set data.num_workers, or cut the photos into "
                "sub-images once with sr-toolkit data prepare",
                where,
                size,
                budget / 2**30,
            )
        if cache is True and not fits:
            logger.warning(
                "data: %s: cache: true keeps %s of decoded images over the %.1f GiB budget", where, size, budget / 2**30
            )
        return fits or cache is True

    def _decode_all(self) -> list[dict[str, torch.Tensor]]:
        """Every image decoded (and shrunk by its factor), in parallel threads."""
        with ThreadPoolExecutor(max_workers=default_workers()) as pool:
            return list(pool.map(self._decode, range(len(self._sources))))


def shrunk_size(record: FileRecord, factor: float) -> tuple[int, int]:
    """(height, width) of an image of ``record``'s size scaled by ``factor``, as :func:`shrink` makes it."""
    if factor == 1:
        return record.height, record.width
    return output_sizes((record.height, record.width), factor, None)[0]


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, without its suffix, with '/' separators: the image's name."""
    return path.relative_to(root).with_suffix("").as_posix()


def folder_sources(folder: Path) -> list[Source]:
    """The images under ``folder`` (recursive) as sources of targets, named by :func:`relative_name`.
    Raises DataError when ``folder`` is not a folder, or is a prepared set."""
    refuse_prepared(folder)
    return [(relative_name(path, folder), {"target": path}) for path in list_images(folder)]


def pair_folders(input_folder: Path, target_folder: Path, scale: int) -> pairing.Pairing:
    """The files of both folders matched by :mod:`sr_toolkit.data.pairing` at ``scale``. Raises
    DataError when a folder is missing or is a prepared set."""
    refuse_prepared(input_folder)
    refuse_prepared(target_folder)
    return pairing.pair(pairing.images(input_folder, "input"), pairing.images(target_folder, "target"), scale)


def paired_sources(found: pairing.Pairing, input_folder: Path, target_folder: Path) -> list[Source]:
    """The pairs :func:`pair_folders` found as sources named after the target; each unmatched file
    skipped with a warning naming it, the files of an ambiguous name with one warning naming them all.
    Raises DataError when nothing matches."""
    for ambiguity in found.ambiguous:
        skip(str(ambiguity))
    for path in found.lone_inputs:
        skip(f"{path}: no file named like it in {target_folder}")
    for path in found.lone_targets:
        skip(f"{path}: no file named like it in {input_folder}")
    sources: list[Source] = [
        (relative_name(target, target_folder), {"input": source, "target": target}) for _, target, source in found.pairs
    ]
    if not sources:
        raise DataError(f"no input in {input_folder} matches a target in {target_folder} by name")
    return sources
