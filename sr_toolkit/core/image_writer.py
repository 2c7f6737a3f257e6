"""Writing integer pixel arrays to image files: :func:`save_pixels` for every format Pillow writes, and a
PNG encoder (:func:`write_png`) that encodes 8- and 16-bit pixels band by band, so a huge image is never
copied whole. Files are written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from sr_toolkit.core.atomic import atomic_path

ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
"""Pillow's names of the formats that :func:`save_pixels` writes with an alpha channel (Pillow writes
BMP's alpha but reads it back as RGB, and JPEG has none)."""


def pil_image(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 or (C = 1) uint16 pixels as a PIL image: L, LA, RGB, RGBA or I;16 by C and dtype."""
    return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)


def save_pixels(pixels: np.ndarray, path: str | os.PathLike[str], *, quality: int = 95) -> None:
    """Write (H, W, C) pixels, uint8 or (PNG only) uint16, C = 1 to 4; the suffix picks the format.

    Unlike :func:`sr_toolkit.core.imageio.save_image` it takes the integer pixels as they are, and PNG is
    encoded band by band (:func:`write_png`), so a huge output is never copied whole. The file is
    written atomically (a temporary file, then a rename); missing parent folders are created. Raises
    ValueError for an unknown suffix, uint16 in another format, or alpha (C = 2 or 4) in a format
    outside :data:`ALPHA_FORMATS`.
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image suffix '{path.suffix}'")
    if image_format != "PNG" and pixels.dtype != np.uint8:
        raise ValueError(f"{path}: {pixels.dtype} pixels can only be written as PNG")
    if image_format not in ALPHA_FORMATS and pixels.shape[2] in (2, 4):
        raise ValueError(f"{path}: {image_format} cannot store an alpha channel; write PNG")
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        if image_format == "PNG":
            write_png(pixels, file)
        else:
            pil_image(pixels).save(file, format=image_format, quality=quality)


PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray + alpha, RGB, RGBA
DEPTHS = (np.uint8, np.uint16)


def write_png(pixels: np.ndarray, file: BinaryIO, *, level: int = 6, band: int = 64) -> None:
    """Encode (H, W, C) uint8 or uint16 pixels (C = 1 to 4) as a PNG file, ``band`` rows at a time.

    Every row gets the Paeth filter (the usual best for photos), and zlib compresses at ``level``.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in PNG_COLOUR_TYPES or pixels.dtype.type not in DEPTHS:
        raise ValueError(f"write_png expects (H, W, 1 to 4) uint8 or uint16 pixels, got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    depth = pixels.dtype.itemsize
    header = struct.pack(">IIBBBBB", width, height, 8 * depth, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    file.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(file, b"IHDR", header)
    compressor = zlib.compressobj(level)
    above = np.zeros(width * channels * depth, np.int16)
    for start in range(0, height, band):
        rows = pixels[start : start + band].astype(pixels.dtype.newbyteorder(">"), copy=False)
        rows = rows.reshape(rows.shape[0], -1).view(np.uint8).astype(np.int16)
        filtered = _paeth(rows, above, channels * depth)
        above = rows[-1]
        _png_chunk(file, b"IDAT", compressor.compress(np.insert(filtered, 0, 4, axis=1).tobytes()))
    _png_chunk(file, b"IDAT", compressor.flush())
    _png_chunk(file, b"IEND", b"")


def _paeth(rows: np.ndarray, above: np.ndarray, stride: int) -> np.ndarray:
    """PNG's Paeth filter of byte rows (R, L) given the row above them; ``stride``: bytes per pixel."""
    up = np.concatenate([above[None], rows[:-1]])
    left = np.zeros_like(rows)
    left[:, stride:] = rows[:, :-stride]
    up_left = np.zeros_like(up)
    up_left[:, stride:] = up[:, :-stride]
    to_left, to_up, to_up_left = np.abs(up - up_left), np.abs(left - up_left), np.abs(left + up - 2 * up_left)
    prediction = np.where(
        (to_left <= to_up) & (to_left <= to_up_left), left, np.where(to_up <= to_up_left, up, up_left)
    )
    return ((rows - prediction) & 0xFF).astype(np.uint8)


def _png_chunk(file: BinaryIO, kind: bytes, data: bytes) -> None:
    if kind == b"IDAT" and not data:
        return
    file.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
