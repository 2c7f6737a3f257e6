"""Self-describing model files: ``model.safetensors`` with the spec that rebuilds the network.

The metadata (key ``sr_toolkit``) is JSON: ``format_version``, ``model`` (the spec), ``scale``, ``task`` and
``recipe`` (the resolved training recipe). A file without ``format_version`` is format 1, the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sr_toolkit.core import checkpoint
from sr_toolkit.core.community_models import is_community_file, load_community_model
from sr_toolkit.core.discovery import import_plugins
from sr_toolkit.core.model_contract import attach, derive_contract
from sr_toolkit.core.registry import MODELS

FORMAT_VERSION = 1
"""The model-file format this code writes, and the newest it reads."""

INIT_KEY = "init_from"
"""The key of a recipe's ``model`` mapping that names a file to start from; no constructor argument."""


def model_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping that builds a recipe's model: ``spec`` without :data:`INIT_KEY`."""
    return {key: value for key, value in spec.items() if key != INIT_KEY}


def save_model(path: Path, model: torch.nn.Module, recipe: dict[str, Any]) -> None:
    """Write deployable weights with metadata: format version, model spec, scale, task and the resolved recipe."""
    info = {
        "format_version": FORMAT_VERSION,
        "model": model_spec(recipe["model"]),
        "scale": recipe["scale"],
        "task": recipe["task"],
        "recipe": recipe,
    }
    checkpoint.atomic_save(model.state_dict(), path, info)


def check_format(path: Path, info: dict[str, Any]) -> None:
    """Raise :class:`~sr_toolkit.core.checkpoint.CheckpointError` for a file of a format this code cannot
    read: a ``format_version`` newer than :data:`FORMAT_VERSION`, or not a positive integer."""
    found = info.get("format_version", 1)
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise checkpoint.CheckpointError(f"{path}: format_version: expected a positive integer, got {found!r}")
    if found > FORMAT_VERSION:
        raise checkpoint.CheckpointError(
            f"{path}: model file format {found} is newer than this sr-toolkit reads (format {FORMAT_VERSION}); "
            "upgrade sr-toolkit to load it"
        )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a model from a ``model.safetensors`` file, in eval mode on ``device``, carrying its
    :class:`~sr_toolkit.core.model_contract.ModelContract` (read it with ``contract_of``) with the file's
    spec, task and recipe, and its scale where the model declares none. Any other ``.pth``, ``.pt``,
    ``.ckpt`` or ``.safetensors`` file loads through spandrel
    (:func:`~sr_toolkit.core.community_models.load_community_model`), never running pickled code.

    Raises :class:`~sr_toolkit.core.checkpoint.CheckpointError` for an unreadable file, one of a newer
    format, one without a model spec or whose weights do not fit, or a community file spandrel does not
    recognise, and an SrToolkitError naming the file when its spec names an unknown model or a discriminator."""
    path = Path(path)
    if is_community_file(path):
        return load_community_model(path).to(device)
    tensors, info = checkpoint.read(path)
    check_format(path, info)
    if "model" not in info and "step" in info:
        raise checkpoint.CheckpointError(
            f"{path}: a training checkpoint (step {info['step']}), not a model file; use the run folder's "
            "model.safetensors, or train.py --resume to continue training from it"
        )
    if "model" not in info:
        raise checkpoint.CheckpointError(f"{path}: no model spec in its sr_toolkit metadata")
    import_plugins(info.get("recipe", {}).get("plugins", []))
    where = f"{path.name}: model"
    model = MODELS.build_image_model(info["model"], where=where)
    checkpoint.load_weights(model, tensors, str(path))
    contract = derive_contract(
        model,
        architecture=info["model"]["type"],
        spec=info["model"],
        scale=info.get("scale"),
        task=info.get("task"),
        recipe=info.get("recipe"),
    )
    return attach(model, contract).to(device).eval()
