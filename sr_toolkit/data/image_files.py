"""The base of dataset plugins whose images are files: every file is decoded once when the dataset is built.

A plugin subclasses :class:`FileDataset` and passes ``super().__init__`` its :data:`Source` list
(each image's name and files by role); everything else (skipping bad files, caching, downscaled
copies, the deterministic crops of :class:`~sr_toolkit.data.patches.PatchDataset`) comes with it.

That scan finds the unusable files up front (empty, truncated, not an image, too small for the
patch, an input of the wrong size), so each is skipped with one warning naming it instead of
failing mid-training; the decoded images are then kept in memory as uint8 when ``cache`` is on.
The scan costs one decode per file, which suits the small folders SR training uses (hundreds to a
few thousand images); with ``cache`` off, files are decoded again on every access.

Clean training images can also be used at smaller sizes (``downscales``): each factor adds a copy
of every image shrunk by MATLAB's bicubic ``imresize`` (antialiased, rounded to uint8). A shrunk
photo has more detail per pixel and fewer compression and sensor artefacts, which widens a small
training set (Real-ESRGAN's multi-scale DF2K is made the same way, with copies at 3/4, 1/2, 1/3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.imageio import read_image, to_uint8
from sr_toolkit.core.resize import imresize_uint8
from sr_toolkit.data.patches import PatchDataset, Split, logger

Source = tuple[str, dict[str, Path]]
"""One image: its name and the files it is read from, by role ("target", and "input" when paired)."""


def decode(path: Path) -> torch.Tensor:
    """The image at ``path`` as a uint8 (3, H, W) tensor (grayscale replicated, alpha dropped)."""
    return to_uint8(read_image(path, mode="RGB"))


def shrink(images: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """The images scaled by ``factor`` (MATLAB bicubic on uint8); unchanged when ``factor`` is 1."""
    if factor == 1:
        return images
    return {role: imresize_uint8(image, scale=factor) for role, image in images.items()}


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


class FileDataset(PatchDataset):
    """Images read from files, scanned at construction; ``where`` names their folder(s) in errors.

    ``downscales`` (training split only) adds, per factor, a copy of every image at that fraction of
    its size, named ``name@factor``; a copy too small for the patch is left out with one log line.
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
        cache: bool,
        downscales: Sequence[float] = (),
    ) -> None:
        super().__init__(split, patch_size, augment, seed, scale)
        factors = (1.0, *check_downscales(downscales)) if split == "train" else (1.0,)
        self._sources: list[Source] = []
        self._factors: list[float] = []
        self._cached: list[dict[str, torch.Tensor]] = []
        too_small = 0
        for name, files in sources:
            images = self._scan(files)
            if images is None:
                continue
            for factor in factors:
                copy = shrink(images, factor)
                if factor != 1 and self.too_small(*copy["target"].shape[-2:]):
                    too_small += 1
                    continue
                self._sources.append((name if factor == 1 else f"{name}@{factor:g}", files))
                self._factors.append(factor)
                self._cached.append(copy if cache else {})
        if not self._sources:
            found = f"all {len(sources)} skipped, see the warnings above" if sources else "none found"
            raise DataError(f"{where}: no usable images ({found})")
        if too_small:
            logger.info("%s: %d downscaled copies too small for the patch left out", where, too_small)

    def __len__(self) -> int:
        return len(self._sources)

    def name(self, image_index: int) -> str:
        return self._sources[image_index][0]

    @property
    def in_memory(self) -> bool:
        return all(self._cached)

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        cached = self._cached[image_index]
        if cached:
            return dict(cached)
        images = {role: decode(path) for role, path in self._sources[image_index][1].items()}
        return shrink(images, self._factors[image_index])

    def _scan(self, files: dict[str, Path]) -> dict[str, torch.Tensor] | None:
        """The decoded images when usable; otherwise None after one warning."""
        try:
            images = {role: decode(path) for role, path in files.items()}
        except DataError as exc:
            skip(str(exc))
            return None
        problem = self._size_problem(images)
        if problem:
            skip(f"{' with '.join(str(path) for path in files.values())}: {problem}")
            return None
        return images

    def _size_problem(self, images: dict[str, torch.Tensor]) -> str | None:
        height, width = images["target"].shape[-2:]
        if "input" in images:
            got_height, got_width = images["input"].shape[-2:]
            want_height, want_width = height // self.scale, width // self.scale
            if (got_height, got_width) != (want_height, want_width):
                return (
                    f"input is {got_width}x{got_height}, expected {want_width}x{want_height} "
                    f"(target {width}x{height} divided by scale {self.scale})"
                )
        return self.too_small(height, width)


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, without its suffix, with '/' separators: the image's name."""
    return path.relative_to(root).with_suffix("").as_posix()
