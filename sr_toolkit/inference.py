"""Upscaling and restoring images with a trained model: the Python API behind ``tools/upscale.py``.

    import sr_toolkit
    model = sr_toolkit.load_model("runs/resnet_x4/model.safetensors")
    bigger = sr_toolkit.upscale(model, Image.open("photo.png"), tile=256)

The network sees the colour channels only; an alpha channel is resized on its own (MATLAB-style
bicubic, clamped to [0, 1]), so transparency survives models trained on RGB photos.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from sr_toolkit.atomic import atomic_path
from sr_toolkit.model_file import load_model
from sr_toolkit.resize import imresize
from sr_toolkit.tiling import cast_pixels, forward_tiled

__all__ = ["load_model", "model_scale", "prepare", "save_pixels", "upscale", "upscale_batch", "write_png"]

ImageLike = TypeVar("ImageLike", Tensor, Image.Image)


def model_scale(model: nn.Module) -> int:
    """The factor the model enlarges by: its file's ``scale`` metadata, else its ``scale``, else 1."""
    info = getattr(model, "sr_info", None) or {}
    return int(info.get("scale") or getattr(model, "scale", 1))


def prepare(model: nn.Module, device: str | torch.device = "cpu", half: bool = False) -> nn.Module:
    """Put ``model`` in eval mode on ``device``, channels-last, in half precision when asked.

    Half precision is float16 on GPUs and bfloat16 on CPUs (CPUs compute float16 slowly; bfloat16 is
    fast only on CPUs with AMX or AVX-512 BF16).
    """
    device = torch.device(device)
    dtype = (torch.bfloat16 if device.type == "cpu" else torch.float16) if half else torch.float32
    return model.eval().to(device=device, dtype=dtype, memory_format=torch.channels_last)


def upscale_batch(
    model: nn.Module,
    images: Tensor,
    *,
    scale: int,
    tile: int | None = None,
    overlap: int | None = None,
    out: Tensor | None = None,
    on_tile: Callable[[], None] | None = None,
) -> Tensor:
    """Run ``model`` over (N, 3 or 4, H, W) images in [0, 1]; a 4th (alpha) channel is resized apart.

    Writes into ``out`` when given (e.g. uint8: values rounded as a saved image's, see
    :func:`sr_toolkit.tiling.forward_tiled`), else returns a new tensor like ``images``, clamped to [0, 1].
    """
    if images.dim() != 4 or images.shape[1] not in (3, 4):
        raise ValueError(f"expected (N, 3 or 4, H, W) images (RGB or RGBA), got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if out is None:
        out = torch.empty((batch, channels, height * scale, width * scale), dtype=images.dtype,
                          device=images.device)
    forward_tiled(model, images[:, :3], scale=scale, tile=tile, overlap=overlap, on_tile=on_tile,
                  out=out[:, :3])
    if channels == 4:
        alpha = images[:, 3:].float()
        if scale > 1:
            alpha = imresize(alpha, scale=scale, mode="bicubic")
        out[:, 3:].copy_(cast_pixels(alpha, out.dtype))
    return out.clamp_(0, 1) if out.is_floating_point() else out


def upscale(
    model: nn.Module, image: ImageLike, *, tile: int | None = None, overlap: int | None = None
) -> ImageLike:
    """Upscale (or restore) one image, or a batch, with ``model``; returns the same kind of image.

    ``image``: a float tensor in [0, 1], (C, H, W) or (N, C, H, W) with 3 (RGB) or 4 (RGBA) channels,
    or an 8-bit PIL image (turned upright per its EXIF tag; returned as RGBA when it has transparency,
    else RGB; for 16-bit files use :func:`sr_toolkit.imageio.read_image`). ``tile`` bounds memory (see
    :mod:`sr_toolkit.tiling`); ``overlap`` defaults to the model's receptive field. The model runs in
    eval mode on its own device and precision; tensors come back on the input's device and dtype.
    """
    if isinstance(image, Image.Image):
        pixels = _from_pil(image)
        return _to_pil(upscale(model, pixels, tile=tile, overlap=overlap))
    if not isinstance(image, Tensor) or not image.is_floating_point() or image.dim() not in (3, 4):
        raise TypeError("image: expected a PIL image or a float tensor (C, H, W) or (N, C, H, W) in [0, 1]")
    was_training = model.training
    model.eval()
    try:
        batch = image if image.dim() == 4 else image[None]
        result = upscale_batch(model, batch, scale=model_scale(model), tile=tile, overlap=overlap)
    finally:
        model.train(was_training)
    return result if image.dim() == 4 else result[0]


def _from_pil(image: Image.Image) -> Tensor:
    image = ImageOps.exif_transpose(image)
    transparent = "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info
    values = np.asarray(image.convert("RGBA" if transparent else "RGB"), dtype=np.float32) / 255
    return torch.from_numpy(values.transpose(2, 0, 1).copy())


def _to_pil(pixels: Tensor) -> Image.Image:
    return Image.fromarray(cast_pixels(pixels, torch.uint8).permute(1, 2, 0).cpu().numpy())


def save_pixels(pixels: np.ndarray, path: str | os.PathLike[str], *, quality: int = 95) -> None:
    """Write (H, W, C) pixels, uint8 or (PNG only) uint16, C = 1 to 4; the suffix picks the format.

    Unlike :func:`sr_toolkit.imageio.save_image` it takes the integer pixels as they are, and PNG is
    encoded band by band (:func:`write_png`), so a huge output is never copied whole. The file is
    written atomically (a temporary file, then a rename); missing parent folders are created.
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image suffix '{path.suffix}'")
    if image_format != "PNG" and pixels.dtype != np.uint8:
        raise ValueError(f"{path}: {pixels.dtype} pixels can only be written as PNG")
    if image_format == "JPEG" and pixels.shape[2] in (2, 4):
        raise ValueError(f"{path}: JPEG cannot store an alpha channel; write PNG")
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        if image_format == "PNG":
            write_png(pixels, file)
        else:
            Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels).save(
                file, format=image_format, quality=quality)


PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray + alpha, RGB, RGBA
DEPTHS = (np.uint8, np.uint16)


def write_png(pixels: np.ndarray, file: BinaryIO, *, level: int = 6, band: int = 64) -> None:
    """Encode (H, W, C) uint8 or uint16 pixels (C = 1 to 4) as a PNG file, ``band`` rows at a time.

    Every row gets the Paeth filter (the usual best for photos), and zlib compresses at ``level``.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in PNG_COLOUR_TYPES or pixels.dtype.type not in DEPTHS:
        raise ValueError(f"write_png expects (H, W, 1 to 4) uint8 or uint16 pixels, got {pixels.dtype} "
                         f"{pixels.shape}")
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
    prediction = np.where((to_left <= to_up) & (to_left <= to_up_left), left,
                          np.where(to_up <= to_up_left, up, up_left))
    return ((rows - prediction) & 0xFF).astype(np.uint8)


def _png_chunk(file: BinaryIO, kind: bytes, data: bytes) -> None:
    if kind == b"IDAT" and not data:
        return
    file.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
