"""The base of dataset plugins: which image and which crop an index gives, as a pure function of (seed, index).

A dataset plugin subclasses :class:`PatchDataset` (or :class:`~sr_toolkit.data.image_files.FileDataset`
when its images are files), registers with ``@DATASETS.register("name")``, takes ``split``,
``patch_size``, ``augment``, ``seed`` and ``scale`` (the recipe fills them in) and passes them to
``super().__init__``. It implements three things, all free of randomness and of any state that
changes while training:

- ``__len__``: the number of images;
- ``name(image_index)``: a stable name for image ``image_index`` (used in validation outputs);
- ``images(image_index)``: that image as uint8 (3, H, W) tensors, ``{"target": ...}`` and, for paired
  data, ``"input"`` at 1/``scale``; the same tensors on every call.

It may set ``in_memory`` to True when ``images`` returns decoded images kept in memory (the engine
then cuts batches on the training device). It must not override ``__getitem__``, ``batch`` or the
draw: this base picks the image and the crop of every draw, so each crop is a pure function of
(seed, draw number) and a resumed run sees exactly the batches the uninterrupted one would have.

For ``split="train"`` an index is a draw number (0, 1, 2, ... without end): draw ``i`` takes image
``permutation(seed, i // len)[i % len]`` and its crop position and flips from a generator seeded by
``(seed, i)``. Nothing depends on the process, the worker or what was drawn before, so training
resumes bit-exactly with any number of data-loader workers. For ``split="val"`` index ``i`` is the
i-th image, cropped in the centre (or whole when ``patch_size`` is None).

Datasets whose decoded images are in memory can :meth:`~PatchDataset.hold_on` the training device
and cut whole batches there (:meth:`~PatchDataset.batch`) with the same values as their items.

Images are held as uint8 tensors (3, H, W) and cut to multiples of ``scale`` (from the top-left
corner) before cropping. Crops of clean images may start at any pixel; with a paired
low-resolution input they sit on the ``scale`` grid, so the input is cut at exactly the
corresponding place. (Always snapping to the grid would put the 8x8 blocks of JPEG training photos
at the same phase of every low-resolution pixel grid, a pattern a network can learn.)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Literal

import torch
from torch.utils.data import Dataset

from sr_toolkit.core.resize import modcrop

logger = logging.getLogger("sr_toolkit")

Split = Literal["train", "val"]

GPU_SHARE = 0.25
"""The largest share of a GPU's memory that :meth:`PatchDataset.hold_on` gives the decoded images."""


def seeded_generator(seed: int, purpose: str, number: int) -> torch.Generator:
    """A generator whose state depends only on (seed, purpose, number)."""
    digest = hashlib.blake2b(f"{seed}/{purpose}/{number}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class PatchDataset(Dataset):
    """Base of the dataset plugins: subclasses provide ``__len__``, :meth:`name` and :meth:`images`
    (see the module's docstring for the contract that keeps resumes bit-exact).

    Raises ValueError for a split other than train/val, a scale below 1, a train split without a
    ``patch_size`` or a ``patch_size`` that is not a positive multiple of ``scale``.
    """

    def __init__(self, split: Split, patch_size: int | None, augment: bool, seed: int, scale: int) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if patch_size is None and split == "train":
            raise ValueError("split 'train' needs a patch_size (random crops of that size)")
        if patch_size is not None and (patch_size < 1 or patch_size % scale):
            raise ValueError(f"patch_size must be a positive multiple of scale ({scale}), got {patch_size}")
        self.split = split
        self.patch_size = patch_size
        self.augment = augment and split == "train"
        self.seed = seed
        self.scale = scale
        self._permutation_cache: tuple[int, torch.Tensor] | None = None
        self._held: list[dict[str, torch.Tensor]] = []

    def __len__(self) -> int:
        """The number of images."""
        raise NotImplementedError

    def name(self, image_index: int) -> str:
        """The name of image ``image_index`` (a file's relative path without suffix, say)."""
        raise NotImplementedError

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        """uint8 (3, H, W) tensors of one image: ``"target"``, and ``"input"`` at 1/scale for paired data.

        An input must be exactly the size of the modcropped target divided by ``scale``.
        """
        raise NotImplementedError

    def too_small(self, height: int, width: int) -> str | None:
        """Why an image of this size (target resolution) cannot be used, or None when it can."""
        need = self.patch_size or self.scale
        if min(height, width) >= need:
            return None
        what = f"patch_size {need}" if self.patch_size else f"scale {need}"
        return f"too small ({width}x{height}) for {what}"

    @property
    def in_memory(self) -> bool:
        """Whether :meth:`images` returns decoded images kept in memory (not read from disk)."""
        return False

    def hold_on(self, device: torch.device) -> bool:
        """Keep every image on ``device`` so :meth:`batch` cuts training batches there; False (and
        nothing held) when the images are not in memory or, on a GPU, would take over
        :data:`GPU_SHARE` of its memory."""
        if not self.in_memory or self.split != "train":
            return False
        held = [self._modcropped(self.images(index)) for index in range(len(self))]
        if device.type == "cuda":
            size = sum(image.numel() for images in held for image in images.values())
            if size > GPU_SHARE * torch.cuda.get_device_properties(device).total_memory:
                logger.info("data: the decoded images (%.1f GiB) are too large to hold on %s", size / 2**30, device)
                return False
        self._held = [{role: image.to(device) for role, image in images.items()} for images in held]
        return True

    def batch(self, draws: Sequence[int]) -> dict[str, torch.Tensor]:
        """The training batch of these draw numbers, cut from the images :meth:`hold_on` placed: the
        same values as stacking ``self[draw]`` for each draw (without names), on the held device."""
        patches: dict[str, list[torch.Tensor]] = {}
        for draw in draws:
            image_index, generator = self._draw(int(draw))
            for role, patch in self._cut(self._held[image_index], generator).items():
                patches.setdefault(role, []).append(patch)
        return {role: torch.stack(stack).float().div(255) for role, stack in patches.items()}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image_index, generator = self._draw(int(index))
        patches = self._cut(self._modcropped(self.images(image_index)), generator)
        item: dict[str, torch.Tensor | str] = {"name": self.name(image_index)}
        item.update({role: patch.float().div(255).contiguous() for role, patch in patches.items()})
        return item

    def _modcropped(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**images, "target": modcrop(images["target"], self.scale)}

    def _cut(self, images: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The uint8 crops of one image's roles at the drawn window, flipped as drawn."""
        grid = self.scale if "input" in images else 1
        top, left, height, width = self._window(images["target"].shape[-2:], generator, grid)
        flips = self._flips(generator)
        patches = {}
        for role, image in images.items():
            unit = grid if role == "target" else 1
            patch = image[:, top * unit : (top + height) * unit, left * unit : (left + width) * unit]
            patches[role] = _flip(patch, flips)
        return patches

    def _draw(self, index: int) -> tuple[int, torch.Generator | None]:
        count = len(self)
        if index < 0 or (self.split == "val" and index >= count):
            raise IndexError(f"index {index} out of range for a {self.split} dataset of {count} images")
        if self.split == "val":
            return index, None
        epoch, position = divmod(index, count)
        if self._permutation_cache is None or self._permutation_cache[0] != epoch:
            order = torch.randperm(count, generator=seeded_generator(self.seed, "order", epoch))
            self._permutation_cache = (epoch, order)
        return int(self._permutation_cache[1][position]), seeded_generator(self.seed, "crop", index)

    def _flips(self, generator: torch.Generator | None) -> list[int]:
        """Whether to flip horizontally, flip vertically and rotate by 90 degrees (empty: no change)."""
        if generator is None or not self.augment:
            return []
        return torch.randint(0, 2, (3,), generator=generator).tolist()

    def _window(self, size: torch.Size, generator: torch.Generator | None, grid: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the crop, in units of ``grid`` pixels of the target."""
        rows, cols = size[0] // grid, size[1] // grid
        if self.patch_size is None:
            return 0, 0, rows, cols
        side = self.patch_size // grid
        if generator is None:
            return (rows - side) // 2, (cols - side) // 2, side, side
        top = int(torch.randint(0, rows - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, cols - side + 1, (1,), generator=generator))
        return top, left, side, side


def _flip(patch: torch.Tensor, flips: list[int]) -> torch.Tensor:
    """Apply the drawn horizontal flip, vertical flip and 90-degree rotation (all 8 symmetries)."""
    if not flips:
        return patch
    horizontal, vertical, rotate = flips
    if horizontal:
        patch = patch.flip(-1)
    if vertical:
        patch = patch.flip(-2)
    if rotate:
        patch = torch.rot90(patch, 1, (-2, -1))
    return patch
