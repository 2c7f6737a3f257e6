"""Self-describing model files: ``model.safetensors`` with the spec that rebuilds the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sr_toolkit.core import checkpoint
from sr_toolkit.core.discovery import import_plugins
from sr_toolkit.core.registry import MODELS


def save_model(path: Path, model: torch.nn.Module, recipe: dict[str, Any]) -> None:
    """Write deployable weights with metadata: model spec, scale, task and the resolved recipe."""
    info = {
        "model": recipe["model"],
        "scale": recipe["scale"],
        "task": recipe["task"],
        "recipe": recipe,
    }
    checkpoint.atomic_save(model.state_dict(), path, info)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a model from a ``model.safetensors`` file, in eval mode, with ``.sr_info`` set to
    its metadata (``model``, ``scale``, ``task``, ``recipe``)."""
    path = Path(path)
    tensors, info = checkpoint.read(path)
    if "model" not in info:
        raise checkpoint.CheckpointError(f"{path}: no model spec in its sr_toolkit metadata")
    import_plugins(info.get("recipe", {}).get("plugins", []))
    model = MODELS.build(info["model"], where=f"{path.name}: model")
    checkpoint.load_weights(model, tensors, str(path))
    model.sr_info = info
    return model.to(device).eval()
