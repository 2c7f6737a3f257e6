"""Reading and writing images as float tensors (C, H, W) in [0, 1], with one clear error per bad file.

Decoding is Pillow's. What it cannot do, and so neither can this module: 16-bit colour PNG and TIFF
files are decoded to 8 bits per channel (16-bit *grayscale* keeps its full precision), 32-bit float
images (mode ``F``) are refused, colour profiles (ICC) are ignored and CMYK uses Pillow's plain
conversion. Truncated files are detected by decoding every pixel; that relies on Pillow's
``ImageFile.LOAD_TRUNCATED_IMAGES`` staying False (its default), which this module never changes.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_toolkit.atomic import atomic_path
from sr_toolkit.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File suffixes (lower case) that :func:`list_images` treats as images."""

_GRAY_16BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_GRAY_8BIT_MODES = frozenset({"1", "L", "LA", "La"})


def read_image(
    path: str | os.PathLike[str],
    *,
    mode: Literal["RGB", "RGBA", "keep"] = "RGB",
    max_pixels: int | None = None,
) -> torch.Tensor:
    """Decode an image file into a float32 tensor (C, H, W) in [0, 1], upright per its EXIF tag.

    ``mode``: ``"RGB"`` gives 3 channels (grayscale replicated, alpha dropped), ``"RGBA"`` gives 4
    (alpha 1 where the file has none), ``"keep"`` gives 1 channel for a grayscale file and 3 for a
    colour one (alpha dropped). Palette images count as colour. 16-bit grayscale is scaled by 1/65535.

    ``max_pixels`` refuses larger images (None: Pillow's ``Image.MAX_IMAGE_PIXELS``). Pillow's own
    limit still applies; raise ``PIL.Image.MAX_IMAGE_PIXELS`` to read larger trusted files.
    Any failure raises :class:`DataError` naming the file.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(path, image.size, max_pixels)
                image.load()
                image = ImageOps.exif_transpose(image)
                pixels, alpha, gray = _pixels(path, image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{found.group(1)} pixels" if found else str(exc)
        raise DataError(
            f"{path}: too large: {size}, limit {Image.MAX_IMAGE_PIXELS} (Pillow's Image.MAX_IMAGE_PIXELS); "
            "raise it if the file is trusted"
        ) from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{path}: not an image that Pillow can decode") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: truncated or corrupt image ({exc})") from exc

    if gray and mode != "keep":
        pixels = np.repeat(pixels, 3, axis=2)
    if mode == "RGBA":
        alpha = np.ones(pixels.shape[:2] + (1,), np.float32) if alpha is None else alpha
        pixels = np.concatenate([pixels, alpha], axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: file cannot be read (permission denied)")


def _check_size(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    pixels = size[0] * size[1]
    if max_pixels is not None and pixels > max_pixels:
        raise DataError(
            f"{path}: too large: {pixels} pixels, limit {max_pixels}; raise max_pixels if the file is trusted"
        )


def _pixels(path: Path, image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(H, W, C) float32 colour or gray values, (H, W, 1) alpha or None, and whether it is gray."""
    transparent = "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info
    if image.mode in _GRAY_16BIT_MODES:
        values = np.asarray(image)
        gray = np.clip(values.astype(np.float32), 0, 65535)[..., None] / 65535
        alpha = None
        if "transparency" in image.info:
            alpha = (values != image.info["transparency"]).astype(np.float32)[..., None]
        return gray, alpha, True
    if image.mode == "F":
        raise DataError(f"{path}: 32-bit float images are not supported; save it as an 8- or 16-bit PNG")
    if image.mode in _GRAY_8BIT_MODES:
        target, gray = ("LA" if transparent else "L"), True
    else:
        target, gray = ("RGBA" if transparent else "RGB"), False
    values = np.asarray(image.convert(target), dtype=np.float32) / 255
    values = values.reshape(values.shape[:2] + (-1,))
    if transparent:
        return values[..., :-1], values[..., -1:], gray
    return values, None, gray


def list_images(root: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by suffix, see :data:`IMAGE_EXTENSIONS`), sorted.

    Hidden files and folders (name starting with '.') are left out, which also skips the temporary
    files :func:`save_image` writes. Raises :class:`DataError` when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        path
        for path in candidates
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] as uint8 0..255: clamped, scaled by 255 and rounded (as saving a PNG does)."""
    return torch.round(x.detach().float().clamp(0, 1) * 255).to(torch.uint8)


def save_image(x: torch.Tensor, path: str | os.PathLike[str], *, quality: int = 95) -> None:
    """Write a (C, H, W) tensor in [0, 1] with 1, 3 or 4 channels; the suffix picks the format.

    The file is written atomically (a temporary file in the same folder, then renamed), and missing
    parent folders are created. ``quality`` applies to JPEG and WebP.
    """
    path = Path(path)
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected a (C, H, W) tensor with 1, 3 or 4 channels, not {tuple(x.shape)}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError(f"{path}: unknown image suffix '{path.suffix}'; use one of {known}")
    image_format = Image.registered_extensions()[suffix]
    if image_format == "JPEG" and x.shape[0] == 4:
        raise ValueError(f"{path}: JPEG cannot store an alpha channel; save as .png")
    values = to_uint8(x).permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(values[..., 0] if values.shape[2] == 1 else values)
    with atomic_path(path) as temporary:
        image.save(temporary, format=image_format, quality=quality)
