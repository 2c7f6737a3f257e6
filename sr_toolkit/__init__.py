"""sr-toolkit: train, evaluate and compare image super-resolution and restoration networks.

``sr_toolkit.load_model(path)`` and ``sr_toolkit.upscale(model, image, tile=...)`` are the API for
embedding a trained model; they are imported on first use, so ``import sr_toolkit`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "sr_toolkit.core.model_file",
    "upscale": "sr_toolkit.inference.upscaling",
    "forward_tiled": "sr_toolkit.inference.tiling",
}

__all__ = ["__version__", *_LAZY]  # noqa: PLE0604 - _LAZY's names, imported on first use


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sr_toolkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
