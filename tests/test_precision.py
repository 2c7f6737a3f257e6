"""What each train.mixed_precision value resolves to on each kind of device."""

from __future__ import annotations

import pytest
import torch

from sr_toolkit.core import precision
from sr_toolkit.core.precision import choose_precision


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, ("bf16", True)),  # Xeon with AMX
        ({"avx2", "avx512f", "avx512_bf16"}, ("bf16", True)),  # AMD EPYC with AVX-512 BF16
        ({"avx2", "fma"}, ("no", False)),  # AVX2 only: bf16 is emulated there
    ],
)
def test_auto_on_cpus(monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: tuple[str, bool]) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    chosen = choose_precision("auto", torch.device("cpu"))
    assert (chosen.mixed_precision, chosen.channels_last) == expected


@pytest.mark.parametrize(
    "requested, device, channels_last",
    [
        ("bf16", "cpu", True),
        ("fp16", "cpu", False),
        ("no", "cpu", False),
        ("bf16", "cuda", True),
        ("fp16", "cuda", True),
        ("no", "cuda", False),
    ],
)
def test_a_chosen_precision_gets_the_layout_auto_would_give_it(
    requested: str, device: str, channels_last: bool
) -> None:
    chosen = choose_precision(requested, torch.device(device))
    assert (chosen.mixed_precision, chosen.channels_last, chosen.reason) == (
        requested,
        channels_last,
        "set in the recipe",
    )


@pytest.mark.parametrize("bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    chosen = choose_precision("auto", torch.device("cuda"))
    assert (chosen.mixed_precision, chosen.channels_last) == (expected, True)
    assert chosen.reason.startswith("Test GPU")
