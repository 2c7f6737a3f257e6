"""The baselines a model must beat, shared by evaluation and training validation.

Upscaling baselines are MATLAB's ``imresize`` of the 8-bit input, bit for bit (rounded to uint8 after
each pass: :func:`sr_toolkit.core.resize.imresize_8bit`), as SR papers' bicubic baselines are; the
restoration baseline is the degraded input itself.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor

from sr_toolkit.core.resize import Mode, imresize_8bit

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
"""Upscaling baselines: MATLAB's ``imresize`` of the 8-bit input, bit for bit."""
IDENTITY = "input"
"""The restoration baseline: the degraded input itself."""


def default_baseline(scale: int) -> str:
    """``bicubic`` for upscaling (scale > 1), ``input`` for restoration (scale 1)."""
    return "bicubic" if scale > 1 else IDENTITY


def available_baselines(scale: int) -> tuple[str, ...]:
    """The baselines that apply at ``scale``: the interpolations above 1, the input itself at 1."""
    return INTERPOLATIONS if scale > 1 else (IDENTITY,)


def baseline_output(name: str, inputs: Tensor, scale: int) -> Tensor:
    """Baseline ``name``'s output for (..., C, h, w) inputs in [0, 1]: the inputs themselves for
    ``input``, else the MATLAB interpolation of their 8-bit version, (..., C, scale h, scale w) on the
    8-bit grid."""
    return inputs if name == IDENTITY else imresize_8bit(inputs, scale=scale, mode=cast(Mode, name))
