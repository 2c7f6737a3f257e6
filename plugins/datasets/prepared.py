"""``prepared``: sub-images cut once by ``sr-toolkit data prepare`` and read from one LMDB file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data import prepared
from sr_toolkit.data.patches import PatchDataset, Split, logger


@DATASETS.register("prepared")
class Prepared(PatchDataset):
    """The sub-images of a prepared folder (``root``), each an image to crop patches from.

    Items are ``{"target", "name"}`` (the name being the sub-image's key, ``photo/y0240_x0480``) and,
    for a paired set, ``"input"`` too: such a set gives its own inputs, and its stored scale must
    equal ``scale``. Sub-images smaller than ``patch_size`` are left out (one log line says how many).
    The LMDB file is opened on first read in each process (DataLoader workers included, see
    :func:`sr_toolkit.data.prepared.environment`) and read in place, through the page cache. Raises
    DataError when ``root`` is not a prepared folder, was made by another format version, is paired
    at another scale, or has no sub-image large enough.
    """

    def __init__(
        self,
        root: str,
        split: Split = "train",
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
    ) -> None:
        super().__init__(split, patch_size, augment, seed, scale)
        self.root = Path(root).expanduser()
        metadata = prepared.read_metadata(self.root)
        stored = metadata.options["scale"]
        if metadata.paired and stored != scale:
            raise DataError(f"{self.root}: prepared at scale {stored}, the dataset's scale is {scale}")
        self._roles: list[str] = list(metadata.options["roles"])
        self._codec: str = metadata.options["codec"]
        kept = [sub for sub in metadata.sub_images if not self.too_small(*sub.sizes["target"])]
        self._keys = [sub.key for sub in kept]
        self._sizes = [sub.sizes for sub in kept]
        small = [sub for sub in metadata.sub_images if self.too_small(*sub.sizes["target"])]
        if not self._keys:
            height, width = max(sub.sizes["target"] for sub in small)
            raise DataError(
                f"{self.root}: every sub-image is smaller than patch_size {patch_size} (the largest is "
                f"{width}x{height}); use a smaller patch_size, or prepare the set again with a larger --size"
            )
        if small:
            photos = sorted({sub.name for sub in small})
            logger.info(
                "data: %s: %d sub-image(s) too small for patch_size %s left out, from %s",
                self.root,
                len(small),
                patch_size,
                ", ".join(photos[:5]) + (f" and {len(photos) - 5} more photos" if len(photos) > 5 else ""),
            )

    @classmethod
    def gives_inputs_for(cls, spec: Mapping[str, Any]) -> bool:
        """Whether the set a recipe's ``spec`` names is paired (reads its metadata; DataError when it cannot)."""
        return prepared.read_metadata(Path(spec["root"]).expanduser()).paired

    def __len__(self) -> int:
        return len(self._keys)

    def name(self, image_index: int) -> str:
        return self._keys[image_index]

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        key = self._keys[image_index]
        images = {}
        with prepared.environment(self.root).begin(buffers=True) as txn:
            for role in self._roles:
                data = txn.get(prepared.record_key(role, key))
                if data is None:
                    raise DataError(f"{self.root}: {role}/{key} is missing; prepare the set again")
                images[role] = prepared.decode(data, self._codec, self._sizes[image_index][role])
        return images
