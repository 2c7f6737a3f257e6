"""``builtin``: colour photographs that ship inside scikit-image's wheel, so nothing is downloaded."""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.image_files import Cache, FileDataset, Source
from sr_toolkit.data.patches import Split

TRAIN_PHOTOS = (
    "astronaut.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
"""Files of ``skimage/data`` used for training (motorcycle_right.png is left out: a near-duplicate)."""

VAL_PHOTOS = ("chelsea.png", "coffee.png")
"""Files of ``skimage/data`` used for validation, disjoint from :data:`TRAIN_PHOTOS`."""


def photo_folder() -> Path:
    """The folder of scikit-image's bundled sample images."""
    try:
        return Path(str(importlib.resources.files("skimage.data")))
    except ModuleNotFoundError as exc:
        raise DataError("the builtin dataset reads photos bundled with scikit-image: pip install scikit-image") from exc


@DATASETS.register("builtin")
class Builtin(FileDataset):
    """Eight colour photos bundled with scikit-image (6 train, 2 val): a no-download smoke-test set.

    The split is fixed by file name (:data:`TRAIN_PHOTOS`, :data:`VAL_PHOTOS`); names are file stems.
    """

    def __init__(
        self,
        split: Split = "train",
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        cache: Cache = "auto",
        downscales: Sequence[float] = (),
    ) -> None:
        super().__init__(
            builtin_sources(split),
            f"builtin {split} photos",
            split,
            patch_size,
            augment,
            seed,
            scale,
            cache,
            downscales,
        )


def builtin_sources(split: Split) -> list[Source]:
    """The built-in photos of ``split`` as dataset sources (name = file stem)."""
    folder = photo_folder()
    files = [folder / name for name in (TRAIN_PHOTOS if split == "train" else VAL_PHOTOS)]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise DataError(
            f"{folder}: this scikit-image install lacks {', '.join(missing)}; "
            "reinstall scikit-image (pip install --force-reinstall scikit-image)"
        )
    return [(path.stem, {"target": path}) for path in files]
