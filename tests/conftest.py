"""Shared fixtures: a throwaway registry entry cleaned up after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sr_toolkit.core.discovery import load_entry_points
from sr_toolkit.core.registry import REGISTRIES


@pytest.fixture
def clean_registries() -> Iterator[None]:
    """Remove whatever a test registers, so tests do not see each other's components."""
    load_entry_points()
    before = {plural: dict(registry._entries) for plural, registry in REGISTRIES.items()}
    yield
    for plural, registry in REGISTRIES.items():
        registry._entries.clear()
        registry._entries.update(before[plural])


def machine_numerics() -> list[str]:
    """Every ``train.mixed_precision`` worth testing here: fp32, and ``auto`` where it picks
    something else on this machine (bf16 + channels_last on CPUs with native bf16), the path
    users run."""
    import torch

    from sr_toolkit.core.precision import choose_precision

    auto = choose_precision("auto", torch.device("cpu"))
    return ["no", "auto"] if auto.mixed_precision != "no" else ["no"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scan indexes go to a folder of the test session, never to the user's ~/.cache."""
    monkeypatch.setenv("SR_TOOLKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sr_toolkit_cache"))
