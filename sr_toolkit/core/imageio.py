"""Reading and writing images as float tensors (C, H, W) in [0, 1], with one clear error per bad file.

Decoding is Pillow's, except 16-bit PNGs in colour or with alpha, which Pillow reduces to 8 bits:
torchvision's ``decode_png`` reads those at full precision (16-bit grayscale keeps its full precision
in Pillow too). 16-bit colour TIFFs are still reduced to 8 bits by Pillow. 32-bit float images
(mode ``F``) are refused, colour profiles (ICC) are ignored and CMYK uses Pillow's plain conversion.
Truncated files are detected by decoding every pixel; that relies on Pillow's
``ImageFile.LOAD_TRUNCATED_IMAGES`` staying False (its default), which this module never changes.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File suffixes (lower case) that :func:`list_images` treats as images."""

_GRAY_16BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_GRAY_8BIT_MODES = frozenset({"1", "L", "LA", "La"})
_EXIF_ORIENTATION = 0x0112
_EXIF_SWAPS_AXES = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the image by 90 degrees (transposes and rotations)."""
_PNG_REDUCED_BY_PILLOW = frozenset({2, 4, 6})
"""PNG colour types (RGB, gray + alpha, RGBA) that Pillow decodes to 8 bits when stored with 16."""


class Decoded(NamedTuple):
    """An image with its channels as stored.

    ``pixels``: float32 (C, H, W) in [0, 1]; C is 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA).
    ``bits``: 16 for 16-bit files (and 32-bit integer gray, read on the 16-bit scale), else 8.
    """

    pixels: torch.Tensor
    bits: int


def decode_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Decoded:
    """Decode an image file with its channels as stored (:class:`Decoded`), upright per its EXIF tag.

    Palette images give RGB, or RGBA when the palette has transparency; bilevel images give gray;
    CMYK and other colour modes give RGB. A transparent colour key (PNG ``tRNS``) becomes alpha.
    ``max_pixels`` refuses larger images (None: Pillow's ``Image.MAX_IMAGE_PIXELS``). Pillow's own
    limit still applies; raise ``PIL.Image.MAX_IMAGE_PIXELS`` to read larger trusted files.
    Any failure raises :class:`DataError` naming the file.
    """
    path = Path(path)
    _check_file(path)
    with _pillow_errors(path), Image.open(path) as image:
        _check_size(path, image.size, max_pixels)
        if _pillow_reduces(path, image):
            return _decode_deep_png(path, image.info.get("transparency"))
        image.load()
        upright = ImageOps.exif_transpose(image)
    try:
        return from_pil(upright)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc


class ImageInfo(NamedTuple):
    """What a full decode of a file finds, without keeping its pixels: the upright size in pixels,
    Pillow's mode (``RGB``, ``L``, ``RGBA``, ``P``, ``I;16``, ``CMYK``, ...) and bits per sample (8 or 16)."""

    width: int
    height: int
    mode: str
    bits: int


def inspect_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Decode every pixel of an image file (which finds truncated and corrupt ones) and report its
    :class:`ImageInfo`; width and height are after the EXIF orientation, as :func:`decode_image` gives
    them. Cheaper than :func:`decode_image`: no conversion to float. Errors: as :func:`decode_image`."""
    path = Path(path)
    _check_file(path)
    with _pillow_errors(path), Image.open(path) as image:
        _check_size(path, image.size, None)
        mode, (width, height) = image.mode, image.size
        deep = _pillow_reduces(path, image)
        image.load()
        if mode == "F":
            raise DataError(f"{path}: 32-bit float images are not supported; save it as an 8- or 16-bit PNG")
        if image.getexif().get(_EXIF_ORIENTATION, 1) in _EXIF_SWAPS_AXES:
            width, height = height, width
    bits = 16 if deep or mode in _GRAY_16BIT_MODES else 8
    return ImageInfo(width, height, mode, bits)


@contextmanager
def _pillow_errors(path: Path) -> Iterator[None]:
    """Pillow's failures while opening and decoding ``path`` as one :class:`DataError` naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
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


def read_image(
    path: str | os.PathLike[str],
    *,
    mode: Literal["RGB", "RGBA", "keep"] = "RGB",
    max_pixels: int | None = None,
) -> torch.Tensor:
    """Decode an image file into a float32 tensor (C, H, W) in [0, 1], upright per its EXIF tag.

    ``mode``: ``"RGB"`` gives 3 channels (grayscale replicated, alpha dropped), ``"RGBA"`` gives 4
    (alpha 1 where the file has none), ``"keep"`` gives 1 channel for a grayscale file and 3 for a
    colour one (alpha dropped). Palette images count as colour. 16-bit values are scaled by 1/65535.
    ``max_pixels`` and errors: as :func:`decode_image`, which this wraps.
    """
    colour, alpha = split_alpha(decode_image(path, max_pixels=max_pixels).pixels)
    if mode == "keep":
        return colour
    rgb = match_channels(colour, 3).contiguous()
    if mode == "RGB":
        return rgb
    return torch.cat([rgb, torch.ones_like(rgb[:1]) if alpha is None else alpha])


def from_pil(image: Image.Image) -> Decoded:
    """A Pillow image's pixels with its channels kept (:class:`Decoded`; modes as :func:`decode_image`).

    Orientation is left as it is. Raises ValueError for 32-bit float images (mode ``F``).
    """
    transparent = "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info
    if image.mode in _GRAY_16BIT_MODES:
        return _deep(np.asarray(image)[..., None], image.info.get("transparency"))
    if image.mode == "F":
        raise ValueError("32-bit float images are not supported; save it as an 8- or 16-bit PNG")
    if image.mode in _GRAY_8BIT_MODES:
        target = "LA" if transparent else "L"
    else:
        target = "RGBA" if transparent else "RGB"
    values = np.asarray(image.convert(target), dtype=np.float32) / 255
    return _decoded(values.reshape((*values.shape[:2], -1)), 8)


def split_alpha(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(..., C, H, W) pixels as (colour, alpha): C = 2 or 4 has alpha last, C = 1 or 3 has none (None)."""
    if pixels.shape[-3] in (2, 4):
        return pixels[..., :-1, :, :], pixels[..., -1:, :, :]
    return pixels, None


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(..., C, H, W) images as ``channels`` channels: gray repeated to RGB (a view), or RGB averaged
    to gray; unchanged when C already is ``channels``."""
    if x.shape[-3] == channels:
        return x
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x.mean(dim=-3, keepdim=True)


def composite(pixels: torch.Tensor, background: float) -> torch.Tensor:
    """(..., C, H, W) pixels in [0, 1] with alpha laid over a uniform ``background`` in [0, 1]:
    the colour channels only (C - 1 of them). Pixels without alpha are returned as they are."""
    colour, alpha = split_alpha(pixels)
    return colour if alpha is None else colour * alpha + background * (1 - alpha)


def _decoded(values: np.ndarray, bits: int) -> Decoded:
    """(H, W, C) float32 values in [0, 1] as a :class:`Decoded`."""
    return Decoded(torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1))), bits)


def _deep(values: np.ndarray, key: int | tuple[int, ...] | None) -> Decoded:
    """(H, W, C) integer samples on the 16-bit scale (clipped to 0..65535) as a 16-bit :class:`Decoded`;
    pixels equal to the colour ``key`` (a PNG ``tRNS`` colour) get alpha 0, the others 1."""
    pixels = np.clip(values.astype(np.float32), 0, 65535) / 65535
    if key is not None:
        opaque = np.any(values != np.asarray(key).reshape(-1), axis=2, keepdims=True)
        pixels = np.concatenate([pixels, opaque.astype(np.float32)], axis=2)
    return _decoded(pixels, 16)


def _pillow_reduces(path: Path, image: Image.Image) -> bool:
    """Whether Pillow decodes ``path`` to 8 bits although it has 16: a 16-bit PNG in colour or with
    alpha (read from its IHDR chunk's bit depth and colour type)."""
    if image.format != "PNG":
        return False
    with open(path, "rb") as file:
        header = file.read(26)
    return header[24] == 16 and header[25] in _PNG_REDUCED_BY_PILLOW


def _decode_deep_png(path: Path, key: tuple[int, ...] | None) -> Decoded:
    """A 16-bit PNG decoded at full precision by torchvision, upright per its EXIF tag; ``key``: the
    ``tRNS`` colour that Pillow found (torchvision ignores it). Raises :class:`DataError` if corrupt."""
    from torchvision.io import ImageReadMode, decode_png, read_file  # here: torchvision takes ~2 s to import

    try:
        values = decode_png(read_file(str(path)), mode=ImageReadMode.UNCHANGED, apply_exif_orientation=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: truncated or corrupt image ({exc})") from exc
    return _deep(values.permute(1, 2, 0).numpy(), key)


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


def round_levels(x: torch.Tensor, top: int = 255) -> torch.Tensor:
    """Values in [0, 1] as the integer levels 0..``top`` of an image file, still floats in ``x``'s dtype:
    clamped, scaled by ``top`` and rounded to the nearest level, exact halves to the even one
    (``torch.round``). The one rounding rule of every image sr-toolkit writes or scores as written."""
    return torch.round(x.clamp(0, 1) * top)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] as uint8 0..255, rounded by :func:`round_levels` (what :func:`save_image` writes)."""
    return round_levels(x.detach().float()).to(torch.uint8)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] on the 256 levels of an 8-bit image, as floats in ``x``'s dtype: what reading
    back the PNG :func:`save_image` writes gives (rounded by :func:`round_levels`)."""
    return round_levels(x) / 255


def pil_image(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 pixels, or uint16 with C = 1, as a PIL image: L, LA, RGB, RGBA or I;16 by C and dtype."""
    return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)


def to_pil(x: torch.Tensor) -> Image.Image:
    """A (C, H, W) tensor in [0, 1] (C = 1 to 4) as an 8-bit PIL image (:func:`pil_image`), rounded by
    :func:`round_levels`; the inverse of :func:`from_pil` for 8-bit images."""
    return pil_image(to_uint8(x).permute(1, 2, 0).cpu().numpy())


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
    image = to_pil(x)
    with atomic_path(path) as temporary:
        image.save(temporary, format=image_format, quality=quality)
