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

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from sr_toolkit.core.image_writer import pil_image
from sr_toolkit.core.imageio import from_pil, match_channels, split_alpha
from sr_toolkit.core.model_contract import ModelContract, attach, contract_of
from sr_toolkit.core.model_file import load_model
from sr_toolkit.core.resize import imresize
from sr_toolkit.inference.tiling import auto_tile, cast_pixels, forward_tiled, padded_size

__all__ = [
    "MEMORY_SHARE",
    "GrayNetwork",
    "MemoryPlan",
    "available_memory",
    "bytes_per_output_pixel",
    "fill_hidden",
    "half_dtype",
    "is_out_of_memory",
    "load_model",
    "plan_memory",
    "prepare",
    "upscale",
    "upscale_batch",
]

ImageLike = TypeVar("ImageLike", Tensor, Image.Image)

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


def half_dtype(contract: ModelContract, device: torch.device) -> torch.dtype:
    """The half-precision dtype to run a model in on ``device``: float16 on GPUs and bfloat16 on CPUs (CPUs
    compute float16 slowly), or the other one where the model's contract supports only that. Raises
    ValueError for a model that supports neither."""
    preferred = [torch.bfloat16, torch.float16] if device.type == "cpu" else [torch.float16, torch.bfloat16]
    supported = {torch.float16: contract.supports_half, torch.bfloat16: contract.supports_bfloat16}
    for dtype in preferred:
        if supported[dtype]:
            return dtype
    raise ValueError(f"model '{contract.architecture}' runs in neither float16 nor bfloat16: leave out half precision")


def prepare(model: nn.Module, device: str | torch.device = "cpu", half: bool = False) -> nn.Module:
    """Put ``model`` in eval mode on ``device``, channels-last, in half precision when asked
    (:func:`half_dtype`; bfloat16 is fast only on CPUs with AMX or AVX-512 BF16)."""
    device = torch.device(device)
    dtype = half_dtype(contract_of(model), device) if half else torch.float32
    return model.eval().to(device=device, dtype=dtype).to(memory_format=torch.channels_last)


class GrayNetwork(nn.Module):
    """``network`` on gray images: (N, 1, H, W) in, fed to it as three equal channels, and the mean of
    its three output channels, each clamped to [0, 1] as a saved image's, out (as evaluation scores gray).
    Its contract is the network's, with one channel in and out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        attach(self, dataclasses.replace(contract_of(network), input_channels=1, output_channels=1))

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

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
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
    contract = contract_of(model)
    side = padded_size(PROBE_SIDE, contract)
    scale = contract.scale
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


def plan_memory(
    model: nn.Module,
    height: int,
    width: int,
    *,
    device: str | torch.device,
    bytes_per_pixel: float,
    overlap: int | None = None,
) -> MemoryPlan:
    """The tile to run a ``height`` x ``width`` image in so that one pass fits in :data:`MEMORY_SHARE`
    of :func:`available_memory` on ``device``, at ``bytes_per_pixel`` (:func:`bytes_per_output_pixel`);
    None (one pass) when the whole image fits, or when tiling could change the result (see
    :func:`sr_toolkit.inference.tiling.auto_tile`). ``overlap``: the tiles' overlap, default the model's halo."""
    scale = contract_of(model).scale
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
    Raises ValueError for another shape, and for a model whose contract is not RGB in and out.
    """
    if images.dim() != 4 or not 1 <= images.shape[1] <= 4:
        raise ValueError(
            "expected (N, C, H, W) images with 1 to 4 channels (gray, gray + alpha, RGB, RGBA), "
            f"got shape {tuple(images.shape)}"
        )
    contract = contract_of(model)
    if (contract.input_channels, contract.output_channels) != (3, 3):
        raise ValueError(
            f"model '{contract.architecture}' maps {contract.input_channels} channels to "
            f"{contract.output_channels}; images are upscaled by RGB models (3 to 3)"
        )
    batch, channels, height, width = images.shape
    if out is None:
        out = torch.empty((batch, channels, height * scale, width * scale), dtype=images.dtype, device=images.device)
    colour, alpha = split_alpha(images)
    network = model if colour.shape[1] == 3 else GrayNetwork(model)
    if alpha is not None:
        colour = fill_hidden(colour, alpha)
    forward_tiled(
        network, colour, scale=scale, tile=tile, overlap=overlap, on_tile=on_tile, out=out[:, : colour.shape[1]]
    )
    if alpha is not None:
        alpha = alpha.float()
        if scale > 1:
            alpha = imresize(alpha, scale=scale, mode="bicubic")
        out[:, -1:].copy_(cast_pixels(alpha, out.dtype))
    return out.clamp_(0, 1) if out.is_floating_point() else out


def upscale(model: nn.Module, image: ImageLike, *, tile: int | None = None, overlap: int | None = None) -> ImageLike:
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
        result = upscale_batch(model, batch, scale=contract_of(model).scale, tile=tile, overlap=overlap)
    finally:
        model.train(was_training)
    return result if image.dim() == 4 else result[0]


def _to_pil(pixels: Tensor, bits: int) -> Image.Image:
    """(C, H, W) values in [0, 1] as a PIL image: 16-bit (I;16) when ``bits`` is 16 and C is 1, else 8-bit."""
    dtype = torch.uint16 if bits == 16 and pixels.shape[0] == 1 else torch.uint8
    return pil_image(cast_pixels(pixels, dtype).permute(1, 2, 0).cpu().numpy())
