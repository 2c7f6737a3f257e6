"""``image_folder``: a folder of clean images, searched recursively."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from sr_toolkit.imageio import list_images
from sr_toolkit.registry import DATASETS
from sr_toolkit_plugins.datasets._files import FileDataset, relative_name
from sr_toolkit_plugins.datasets._patches import Split


@DATASETS.register("image_folder")
class ImageFolder(FileDataset):
    """Clean images from a folder (recursive; png, jpg, bmp, tif, webp): random or centre crops.

    Each item is ``{"target": (3, H, W) float in [0, 1], "name": path relative to root, no suffix}``.
    Unusable files are skipped with one warning each; see :mod:`sr_toolkit_plugins.datasets._files`.
    """

    def __init__(
        self,
        root: str,
        split: Split = "train",
        patch_size: Optional[int] = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        cache: bool = True,
    ) -> None:
        folder = Path(root).expanduser()
        sources = [(relative_name(path, folder), {"target": path}) for path in list_images(folder)]
        super().__init__(sources, str(folder), split, patch_size, augment, seed, scale, cache)
