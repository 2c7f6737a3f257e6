"""Choosing the numerics for ``mixed_precision: auto``: the fastest exact path for the device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """What the engine runs with, and the one-line reason it logs."""

    mixed_precision: str  # "no", "fp16" or "bf16", as Accelerate takes it
    channels_last: bool
    reason: str


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_precision(requested: str, device: torch.device) -> Precision:
    """Resolve ``requested`` (``auto``, ``no``, ``fp16``, ``bf16``) for ``device``.

    ``auto`` takes bf16 autocast where the hardware computes it natively: CUDA GPUs that support
    bf16, and CPUs with AMX or AVX-512 BF16 (measured 2-3x faster than fp32 there, with
    channels_last). Elsewhere it keeps fp32: on AVX2-only CPUs bf16 is emulated and ran 6.5x slower.
    """
    if requested != "auto":
        # channels_last where the lower precision has fast kernels for it: CUDA, and bf16 on CPUs
        channels_last = requested != "no" and (device.type == "cuda" or (device.type == "cpu" and requested == "bf16"))
        return Precision(requested, channels_last, "set in the recipe")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", True, f"{torch.cuda.get_device_name(device)} supports bf16")
        return Precision("fp16", True, f"{torch.cuda.get_device_name(device)} has no bf16; fp16 instead")
    if device.type == "cpu":
        native = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
        if native:
            return Precision("bf16", True, f"the CPU computes bf16 natively ({', '.join(native)})")
        return Precision("no", False, "the CPU has no native bf16 (no amx_bf16/avx512_bf16): fp32")
    return Precision("no", False, f"no mixed precision known to be faster on {device.type}")
