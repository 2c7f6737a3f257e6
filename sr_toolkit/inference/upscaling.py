"""Upscaling and restoring images with a trained model: the Python API behind ``tools/upscale.py``.

    import sr_toolkit
    model = sr_toolkit.load_model("runs/resnet_x4/model.safetensors")
    bigger = sr_toolkit.upscale(model, Image.open("photo.png"), tile=256)

Images keep their kind: gray stays gray (the network gets three equal channels and gives back the
mean of its three, see :class:`GrayNetwork`), alpha stays alpha, 16 bits stay 16 bits.

The network sees the colour channels only; an alpha channel is resized on its own (MATLAB-style
bicubic, clamped to [0, 1]), so transparency survives models trained on RGB photos. The colour
under alpha 0 is invisible but the network would spread it into the visible pixels around it, so it
is first replaced by colour filled in from the visible pixels (:func:`fill_hidden`). That was chosen
over premultiplying the colour by alpha: un-premultiplying divides the network's colour by a
bicubic alpha that the network did not produce, and where the network's edge is sharper than the
bicubic one the quotient darkens (a dark fringe over light backgrounds); a filled colour continues
across the shape's edge, so the edge takes its colour from the shape alone. Filling is exact where
it must be: pixels with alpha 0 do not change the output at all, and opaque images run exactly as
RGB ones.

Memory: :func:`plan_memory` picks a tile for an image from the memory available on the model's device
(:func:`available_memory`) and the model's peak memory per output pixel, measured once on a small
input (:func:`bytes_per_output_pixel`); ``tools/upscale.py`` uses it when no ``--tile`` is given.
"""

from __future__ import annotations

import os
import struct
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.imageio import from_pil, match_channels, split_alpha
from sr_toolkit.core.model_file import load_model
from sr_toolkit.core.resize import imresize
from sr_toolkit.inference.tiling import auto_tile, cast_pixels, forward_tiled, round_up, size_multiple

__all__ = ["ALPHA_FORMATS", "MEMORY_SHARE", "GrayNetwork", "MemoryPlan", "available_memory", "bytes_per_output_pixel",
           "fill_hidden", "is_out_of_memory", "load_model", "model_scale", "plan_memory", "prepare", "save_pixels",
           "upscale", "upscale_batch", "write_png"]

ImageLike = TypeVar("ImageLike", Tensor, Image.Image)

ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
"""Pillow's names of the formats that :func:`save_pixels` writes with an alpha channel (Pillow writes
BMP's alpha but reads it back as RGB, and JPEG has none)."""

MEMORY_SHARE = 0.5
"""The share of the available memory that :func:`plan_memory` lets one pass of the model take. The rest
covers what :func:`bytes_per_output_pixel` cannot see (backend workspaces: peak RSS grew by up to 26%
more than it measured, see there), the allocator's fragmentation, the output image (3 or 4 bytes a
pixel) and other programs."""

PROBE_SIDE = 64
"""Height and width, in input pixels, of the probe that :func:`bytes_per_output_pixel` runs."""

OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate memory")
"""Lower-case parts of the RuntimeErrors that allocators raise: CUDA's, and the CPU's
``DefaultCPUAllocator: can't allocate memory``."""


def model_scale(model: nn.Module) -> int:
    """The factor the model enlarges by: its file's ``scale`` metadata, else its ``scale``, else 1."""
    info: dict[str, Any] = getattr(model, "sr_info", None) or {}
    return int(info.get("scale") or getattr(model, "scale", 1))  # type: ignore[arg-type]  # untyped until item 1


def prepare(model: nn.Module, device: str | torch.device = "cpu", half: bool = False) -> nn.Module:
    """Put ``model`` in eval mode on ``device``, channels-last, in half precision when asked.

    Half precision is float16 on GPUs and bfloat16 on CPUs (CPUs compute float16 slowly; bfloat16 is
    fast only on CPUs with AMX or AVX-512 BF16).
    """
    device = torch.device(device)
    dtype = (torch.bfloat16 if device.type == "cpu" else torch.float16) if half else torch.float32
    # torch's stub for Module.to lacks the memory_format keyword that it accepts at run time
    return model.eval().to(device=device, dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]


class GrayNetwork(nn.Module):
    """``network`` on gray images: (N, 1, H, W) in, fed to it as three equal channels, and the mean of
    its three output channels, each clamped to [0, 1] as a saved image's, out (as evaluation scores gray).
    Keeps the network's ``halo`` and ``size_multiple`` for tiling."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.size_multiple = size_multiple(network)
        if hasattr(network, "halo"):
            self.halo = network.halo

    def forward(self, x: Tensor) -> Tensor:
        return match_channels(self.network(match_channels(x, 3)).clamp(0, 1), 1)


def fill_hidden(colour: Tensor, alpha: Tensor) -> Tensor:
    """``colour`` (N, C, H, W) with each pixel whose ``alpha`` (N, 1, H, W) is 0 replaced by a blend of
    the visible colours nearby (a push-pull pyramid: the visible mean of its 2x2 block, else of the
    4x4 block, and so on, each level bilinearly interpolated). The result depends on visible pixels
    only; it is ``colour`` itself when nothing is hidden, and 0 in an image with no visible pixel.
    """
    hidden = alpha == 0
    if not hidden.any():
        return colour
    weight = (~hidden).float()
    filled = _pull(colour.float() * weight, weight)
    return torch.where(hidden, filled.to(colour.dtype), colour)


def _pull(weighted: Tensor, weight: Tensor) -> Tensor:
    """The weighted mean colour at each pixel, given ``weighted`` (N, C, H, W), colour times ``weight``
    (N, 1, H, W) >= 0; pixels of weight 0 take their value from the next coarser level (2x2 blocks)."""
    mean = weighted / weight.clamp_min(torch.finfo(weight.dtype).tiny)
    height, width = weight.shape[-2:]
    if bool((weight > 0).all()) or height == width == 1:
        return mean
    coarse = _pull(F.avg_pool2d(weighted, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True))
    finer = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    return torch.where(weight > 0, mean, finer[..., :height, :width])


def available_memory(device: str | torch.device) -> int:
    """Bytes a new allocation on ``device`` can take now: on CUDA the driver's free memory plus what
    PyTorch's allocator holds unused (:func:`torch.cuda.mem_get_info`); elsewhere the RAM the system
    can give without swapping (``MemAvailable`` on Linux, through psutil)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    import psutil  # installed with accelerate

    return int(psutil.virtual_memory().available)


class LiveBytes(TorchFunctionMode):
    """While active, counts the bytes of the storages that torch functions return, from when they
    appear to when they are freed, and keeps the peak (``peak``, bytes).

    It sees every tensor a model's Python code gets back from torch (module outputs and temporaries
    alike) but not the workspaces that backends allocate inside one operation. A storage that existed
    before (returned as is, e.g. by Dropout in eval mode) is counted as new: the count errs high.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._watched: dict[int, weakref.finalize] = {}

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, Tensor) and value.layout == torch.strided:
                self._watch(value.untyped_storage())
        return result

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        for finalizer in self._watched.values():
            finalizer.detach()
        self._watched.clear()

    def _watch(self, storage: torch.UntypedStorage) -> None:
        """Count ``storage`` until it is freed, once however many tensors share it."""
        key = storage.data_ptr()
        if key in self._watched:
            return
        self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        self._watched[key] = weakref.finalize(storage, self._freed, key, storage.nbytes())

    def _freed(self, key: int, size: int) -> None:
        self.live -= size
        self._watched.pop(key, None)


def bytes_per_output_pixel(model: nn.Module) -> float:
    """The model's peak memory per output pixel, in bytes, for one image in one pass: measured with
    :class:`LiveBytes` on a random :data:`PROBE_SIDE` x :data:`PROBE_SIDE` input (rounded up to the
    model's size multiple) run as :func:`sr_toolkit.inference.tiling.forward_tiled` runs it, input and output
    included, on the model's device and in its precision.

    Convolutional networks need memory in proportion to the pixels, so the figure holds for any size;
    what does not grow with the image (a fixed workspace) counts here as if it did, which errs high.
    Against the growth of the process's peak RSS in one fp32 pass over 16 times the pixels (2-core AVX-512
    CPU, default architectures at x4): ``resnet_x4`` 1293 bytes here against 1216 to 1264 by RSS,
    ``edsr`` 545 against 526, ``srresnet`` 545 against 537, ``deconv`` 161 against 155,
    ``conv_autoencoder`` (x1) 76 against 96. Raises what the model raises on the probe.
    """
    side = round_up(PROBE_SIDE, size_multiple(model))
    scale = model_scale(model)
    with LiveBytes() as usage:
        probe = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        forward_tiled(model, probe, scale=scale, tile=None)
    return usage.peak / (side * scale) ** 2


class MemoryPlan(NamedTuple):
    """How :func:`plan_memory` runs one image: ``tile`` (None: one pass over the whole image),
    ``needed`` (bytes one pass over the whole image is estimated to take) and ``available`` (bytes
    available on the device, of which one pass may take :data:`MEMORY_SHARE`)."""

    tile: int | None
    needed: float
    available: int


def plan_memory(model: nn.Module, height: int, width: int, *, device: str | torch.device,
                bytes_per_pixel: float, overlap: int | None = None) -> MemoryPlan:
    """The tile to run a ``height`` x ``width`` image in so that one pass fits in :data:`MEMORY_SHARE`
    of :func:`available_memory` on ``device``, at ``bytes_per_pixel`` (:func:`bytes_per_output_pixel`);
    None (one pass) when the whole image fits, or when tiling could change the result (see
    :func:`sr_toolkit.inference.tiling.auto_tile`). ``overlap``: the tiles' overlap, default the model's halo."""
    scale = model_scale(model)
    available = available_memory(device)
    max_pixels = int(MEMORY_SHARE * available / bytes_per_pixel)
    tile = auto_tile(model, height, width, scale=scale, max_pixels=max_pixels, overlap=overlap)
    return MemoryPlan(tile, height * width * scale**2 * bytes_per_pixel, available)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out: a MemoryError, CUDA's OutOfMemoryError, or a
    RuntimeError from an allocator (:data:`OUT_OF_MEMORY_MESSAGES`)."""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(part in str(exc).lower() for part in OUT_OF_MEMORY_MESSAGES)


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
    """Run ``model`` over (N, C, H, W) images in [0, 1]; C is 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA).

    Gray goes through :class:`GrayNetwork`; alpha is resized apart, after :func:`fill_hidden` (see the
    module's notes). Writes into ``out`` when given (e.g. uint8: values rounded as a saved image's, see
    :func:`sr_toolkit.inference.tiling.forward_tiled`), else returns a new tensor like ``images``, clamped to [0, 1].
    Raises ValueError for another shape.
    """
    if images.dim() != 4 or not 1 <= images.shape[1] <= 4:
        raise ValueError("expected (N, C, H, W) images with 1 to 4 channels (gray, gray + alpha, RGB, RGBA), "
                         f"got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if out is None:
        out = torch.empty((batch, channels, height * scale, width * scale), dtype=images.dtype,
                          device=images.device)
    colour, alpha = split_alpha(images)
    network = model if colour.shape[1] == 3 else GrayNetwork(model)
    if alpha is not None:
        colour = fill_hidden(colour, alpha)
    forward_tiled(network, colour, scale=scale, tile=tile, overlap=overlap, on_tile=on_tile,
                  out=out[:, : colour.shape[1]])
    if alpha is not None:
        alpha = alpha.float()
        if scale > 1:
            alpha = imresize(alpha, scale=scale, mode="bicubic")
        out[:, -1:].copy_(cast_pixels(alpha, out.dtype))
    return out.clamp_(0, 1) if out.is_floating_point() else out


def upscale(
    model: nn.Module, image: ImageLike, *, tile: int | None = None, overlap: int | None = None
) -> ImageLike:
    """Upscale (or restore) one image, or a batch, with ``model``; returns the same kind of image.

    ``image``: a float tensor in [0, 1], (C, H, W) or (N, C, H, W) with C = 1 (gray), 2 (gray, alpha),
    3 (RGB) or 4 (RGBA); or a PIL image, turned upright per its EXIF tag and returned in its mode's
    family: L, LA, RGB, RGBA (even when opaque) and I;16 (any 16- or 32-bit integer gray) as they came;
    bilevel as L; palette as RGB, or RGBA when it has transparency; CMYK and other colour modes as RGB;
    16-bit gray with a transparent key as LA (Pillow has no 16-bit mode with alpha). ``tile`` bounds
    memory (see :mod:`sr_toolkit.inference.tiling`); ``overlap`` defaults to the model's receptive field. The
    model runs in eval mode on its own device and precision; tensors come back on the input's device
    and dtype. Raises TypeError for other inputs, ValueError for a float PIL image (mode F) or a
    tensor with another channel count.
    """
    if isinstance(image, Image.Image):
        pixels, bits = from_pil(ImageOps.exif_transpose(image))
        return _to_pil(upscale(model, pixels, tile=tile, overlap=overlap), bits)
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


def _to_pil(pixels: Tensor, bits: int) -> Image.Image:
    """(C, H, W) values in [0, 1] as a PIL image: 16-bit (I;16) when ``bits`` is 16 and C is 1, else 8-bit."""
    dtype = torch.uint16 if bits == 16 and pixels.shape[0] == 1 else torch.uint8
    return _pil_image(cast_pixels(pixels, dtype).permute(1, 2, 0).cpu().numpy())


def _pil_image(pixels: np.ndarray) -> Image.Image:
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
            _pil_image(pixels).save(file, format=image_format, quality=quality)


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
