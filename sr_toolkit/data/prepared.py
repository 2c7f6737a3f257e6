"""The prepared format: a folder of photos cut into sub-images, stored in one LMDB environment.

``sr-toolkit data prepare`` writes it and the ``prepared`` dataset reads it. A prepared folder holds

- ``data.mdb`` (and ``lock.mdb``): an LMDB environment, each sub-image of each role one lossless PNG
  (or its raw pixels, ``--codec raw``)
  under the key ``ROLE/NAME/yTOP_xLEFT`` (``target/0801/y0240_x0480``; a downscaled copy's name ends
  in ``@FACTOR``: ``target/0801@0.5/y0000_x0240``; paired sets also have ``input/...`` at the same
  place, positions being the target's). LMDB is memory-mapped: every DataLoader worker and every
  process of a machine read one copy through the page cache, and the file is read in place from a
  shared disk;
- :data:`METADATA`: JSON with the format version, the options it was made with and every sub-image's
  key, photo name and (height, width) per role, so a dataset knows the sizes without reading pixels.

A folder is written as ``OUT.partial`` and renamed to ``OUT`` when complete (:class:`Writer`): an
interrupted prepare never leaves a set that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import torch

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.errors import DataError

METADATA = "sr_toolkit_prepared.json"
FORMAT_VERSION = 1
"""Bumped whenever the keys, the encoding or the metadata change; a reader refuses other versions."""

PNG_LEVEL = 4
"""zlib level of the stored PNGs. Measured on 480x480 photo crops (one thread): level 1 stores 47% of
the raw bytes and decodes in 4.4 ms, level 4 43% in 3.9 ms, level 6 43% in 3.8 ms but encodes twice
as slowly (52 ms against 26 ms); level 0 decodes in 1.9 ms but stores 83%, so half as much of a set
stays in the page cache. Higher levels decode faster: there is less to inflate."""

MAP_GROWTH = 2
"""Factor by which the LMDB map grows when a write finds it full."""


def is_prepared(folder: Path) -> bool:
    """Whether ``folder`` holds a prepared set (its :data:`METADATA` file)."""
    return (folder / METADATA).is_file()


def refuse_prepared(folder: Path) -> None:
    """Raise DataError when ``folder`` is a prepared set, which only the ``prepared`` dataset reads."""
    if is_prepared(folder):
        raise DataError(f"{folder}: is a prepared set (it has {METADATA}); read it with type: prepared")


CODECS = ("png", "raw")
"""How sub-images are stored: ``png`` (lossless, about half the raw bytes: 43 % on photo crops, 54 % on
the noisy benchmark photos; ~4 ms to decode a 480x480 one on one core) or ``raw`` (uint8 pixels as they
are: nothing to decode)."""


def encode(image: torch.Tensor, codec: str) -> bytes:
    """A uint8 (3, H, W) tensor as stored bytes: PNG (zlib level :data:`PNG_LEVEL`) or raw pixels."""
    if codec == "raw":
        return image.contiguous().numpy().tobytes()
    from torchvision.io import encode_png  # here: torchvision takes ~2 s to import

    return encode_png(image, compression_level=PNG_LEVEL).numpy().tobytes()


def decode(data: bytes | memoryview, codec: str, size: tuple[int, int]) -> torch.Tensor:
    """Bytes as written by :func:`encode` back to the uint8 (3, H, W) tensor; ``size``: (H, W)."""
    pixels = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if codec == "raw":
        return pixels.view(3, *size)
    from torchvision.io import decode_png

    return decode_png(pixels)


def record_key(role: str, key: str) -> bytes:
    """The LMDB key of sub-image ``key`` in ``role``."""
    return f"{role}/{key}".encode()


@dataclass(frozen=True)
class SubImage:
    """One sub-image: its key (``NAME/yTOP_xLEFT``), its photo's name and its (height, width) per role."""

    key: str
    name: str
    sizes: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Metadata:
    """What :data:`METADATA` holds: the options the set was made with and its sub-images, in order."""

    options: dict[str, Any]
    sub_images: list[SubImage]

    @property
    def paired(self) -> bool:
        return "input" in self.options["roles"]

    def to_json(self) -> str:
        document = {
            "version": FORMAT_VERSION,
            "options": self.options,
            "sub_images": [
                {"key": sub.key, "name": sub.name, "size": {role: list(hw) for role, hw in sub.sizes.items()}}
                for sub in self.sub_images
            ],
        }
        return json.dumps(document, separators=(",", ":"))


def read_metadata(root: Path) -> Metadata:
    """The metadata of the prepared set in ``root``. Raises DataError when it is missing (naming the
    command that makes one), unreadable, or of another format version."""
    path = root / METADATA
    if not root.is_dir():
        raise DataError(f"{root}: folder not found" if not root.exists() else f"{root}: not a folder")
    if not path.is_file():
        raise DataError(f"{root}: not a prepared set ({METADATA} not found); make one with sr-toolkit data prepare")
    try:
        document = json.loads(path.read_text())
        version = document.get("version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{path}: format version {version!r}, this sr-toolkit reads version {FORMAT_VERSION}; "
                "prepare the set again with this version"
            )
        sub_images = [
            SubImage(sub["key"], sub["name"], {role: (int(h), int(w)) for role, (h, w) in sub["size"].items()})
            for sub in document["sub_images"]
        ]
        return Metadata(dict(document["options"]), sub_images)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: cannot be read as prepared-set metadata ({exc})") from exc


_OPEN: dict[tuple[Path, int], tuple[int, lmdb.Environment]] = {}
"""The environments this process opened, by (folder, inode of its data file): (process id, environment)."""


def environment(root: Path) -> lmdb.Environment:
    """The LMDB environment of the prepared set in ``root``, opened once per process: lmdb refuses to
    open the same files twice in one, so datasets on one set share it, and a forked DataLoader worker
    closes the one it inherited and opens its own. Read-only, without a lock file (readable on a
    shared or read-only disk; nothing writes a finished set), without readahead (reads are random)."""
    key = (root.resolve(), (root / "data.mdb").stat().st_ino)
    found = _OPEN.get(key)
    if found is not None and found[0] == os.getpid():
        return found[1]
    if found is not None:
        found[1].close()
    env = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False, max_readers=1024)
    _OPEN[key] = (os.getpid(), env)
    return env


class Writer:
    """Writes a prepared set into ``OUT.partial`` and renames it to ``OUT`` in :meth:`finish`.

    ``map_size`` is a first estimate of the bytes needed; the map doubles whenever a write finds it
    full. A leftover ``OUT.partial`` (an earlier prepare that was killed) is removed first; call
    :meth:`abandon` when the work fails, which removes the partial folder too.
    """

    def __init__(self, out: Path, map_size: int) -> None:
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.env = lmdb.open(str(self.partial), map_size=max(map_size, 1 << 20), sync=False, meminit=False)
        self.written = 0

    def put(self, records: dict[bytes, bytes]) -> None:
        """Store ``records`` (LMDB key -> bytes) in one transaction, growing the map until they fit."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in records.items():
                        txn.put(key, value)
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * MAP_GROWTH)
        self.written += sum(len(value) for value in records.values())

    def finish(self, metadata: Metadata, overwrite: bool) -> None:
        """Flush, write :data:`METADATA` and move the set to ``OUT`` (replacing an older prepared set
        there when ``overwrite``)."""
        self.env.sync(True)
        self.env.close()
        with atomic_path(self.partial / METADATA) as temporary:
            temporary.write_text(metadata.to_json())
        if overwrite and self.out.exists():
            shutil.rmtree(self.out)
        self.partial.rename(self.out)

    def abandon(self) -> None:
        """Close and remove the partial folder."""
        self.env.close()
        shutil.rmtree(self.partial, ignore_errors=True)


def check_out(out: Path, overwrite: bool) -> None:
    """Raise DataError when ``out`` exists, unless ``overwrite`` and it is a prepared set or an empty
    folder (nothing else is ever removed)."""
    if not out.exists():
        return
    if not overwrite:
        raise DataError(f"{out}: already exists; choose another folder or pass --overwrite")
    if not (is_prepared(out) or (out.is_dir() and not any(out.iterdir()))):
        raise DataError(f"{out}: exists and is not a prepared set; --overwrite replaces only a prepared set")
