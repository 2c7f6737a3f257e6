"""``image_folder``: a folder of clean images, searched recursively."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.image_files import Cache, FileDataset, folder_sources
from sr_toolkit.data.patches import Split, logger
from sr_toolkit_plugins.datasets.builtin import builtin_sources


@DATASETS.register("image_folder")
class ImageFolder(FileDataset):
    """Clean images from a folder (recursive; png, jpg, bmp, tif, webp): random or centre crops.

    Without a ``root``, the built-in photos of ``split`` (see ``builtin``), so a recipe can ship
    with working defaults and take ``data.train.root=DIR`` for the user's own images. Each item
    is ``{"target": (3, H, W) float in [0, 1], "name": path relative to root, no suffix}``.
    Unusable files are skipped with one warning each; see :mod:`sr_toolkit.data.image_files`.
    """

    def __init__(
        self,
        root: str | None = None,
        split: Split = "train",
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        cache: Cache = "auto",
        downscales: Sequence[float] = (),
    ) -> None:
        if root is None:
            logger.info("image_folder: no root given, using the built-in %s photos", split)
            sources, where = builtin_sources(split), f"builtin {split} photos"
        else:
            folder = Path(root).expanduser()
            sources = folder_sources(folder)
            where = str(folder)
        super().__init__(sources, where, split, patch_size, augment, seed, scale, cache, downscales)
