"""``cifar10``: the CIFAR-10 photos (32x32) from the python batches of the official archive.

The batches are read here with :mod:`pickle` rather than through ``torchvision.datasets.CIFAR10``:
torchvision insists on the official files' md5 sums, which would rule out testing on a few images
written in the same format. Downloading still goes through torchvision (URL and archive md5 checked).
Labels are not used: the photos are targets for restoration.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.patches import PatchDataset, Split

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
VAL_BATCHES = ("test_batch",)


def read_batch(path: Path) -> np.ndarray:
    """The images of one CIFAR-10 python batch as a uint8 array (N, 3, 32, 32)."""
    try:
        with path.open("rb") as file:
            entry = pickle.load(file, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        return data.reshape(-1, 3, 32, 32)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc


def fetch_archive(root: Path) -> None:
    """Fetch and unpack the official archive into ``root`` (torchvision checks its md5)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except Exception as exc:  # network, disk or checksum failure: all mean "no data"
        raise DataError(f"downloading CIFAR-10 into {root} failed: {exc}") from exc


@DATASETS.register("cifar10")
class Cifar10(PatchDataset):
    """CIFAR-10 photos (32x32; 50,000 train, 10,000 val) from a local root, optionally downloaded.

    ``root`` holds the extracted ``cifar-10-batches-py`` folder; all images are kept in memory
    (150 MB for train). Items are ``{"target": (3, H, W) float in [0, 1], "name": "<split>_00042"}``.
    """

    def __init__(
        self,
        root: str,
        split: Split = "train",
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        download: bool = False,
    ) -> None:
        super().__init__(split, patch_size, augment, seed, scale)
        folder = Path(root).expanduser() / BATCHES_FOLDER
        files = [folder / name for name in (TRAIN_BATCHES if split == "train" else VAL_BATCHES)]
        if download and not all(path.is_file() for path in files):
            fetch_archive(folder.parent)
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise DataError(
                f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}; set download: true in the "
                f"dataset's recipe section (e.g. data.train.download=true) or place the extracted "
                f"{BATCHES_FOLDER} folder under {root}"
            )
        self._images = torch.from_numpy(np.concatenate([read_batch(path) for path in files]))
        if not len(self._images):
            raise DataError(f"{folder}: the CIFAR-10 batches hold no images")
        problem = self.too_small(*self._images.shape[-2:])
        if problem:
            raise ValueError(f"CIFAR-10 images are {problem}")

    def __len__(self) -> int:
        return len(self._images)

    def name(self, image_index: int) -> str:
        return f"{self.split}_{image_index:05d}"

    @property
    def in_memory(self) -> bool:
        return True

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        return {"target": self._images[image_index]}
