"""The weights a fresh run starts from: ``model.init_from`` or ``gan.init_from``, naming our model file or
a community one (spandrel), checked against the recipe's model before anything is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sr_toolkit.core import checkpoint
from sr_toolkit.core.community_models import describe, is_community_file
from sr_toolkit.core.model_file import INIT_KEY, model_spec
from sr_toolkit.training.resume import check_same_model


def init_source(recipe: dict[str, Any]) -> tuple[str, Path] | None:
    """The key that names a file to start from and the file, or None (the recipe's rules,
    :func:`sr_toolkit.config.rules.check_init_from`, refused naming one in both places on loading).

    Raises :class:`~sr_toolkit.core.checkpoint.CheckpointError` naming the key when the file does not exist;
    a relative path is taken from the working folder."""
    named = [
        (key, Path(value))
        for key, value in (
            (f"model.{INIT_KEY}", recipe["model"].get(INIT_KEY)),
            ("gan.init_from", recipe["gan"]["init_from"]),
        )
        if value
    ]
    if not named:
        return None
    key, path = named[0]
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the working folder {Path.cwd()})"
        raise checkpoint.CheckpointError(
            f"{key}: {path}: no such file{where}; train the model it names first, or set {key}=FILE "
            "(our model.safetensors or a community model file)"
        )
    return key, path


def starting_weights(recipe: dict[str, Any], key: str, path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """What the file ``key`` names holds for the recipe's model: a label naming key, file (and, for a
    community file, its architecture and scale) for error lines, and the state dict to load strictly.

    Raises :class:`~sr_toolkit.core.checkpoint.CheckpointError` for an unreadable or unrecognised file,
    one of ours built with another spec, or a community model of another scale."""
    if not is_community_file(path):
        tensors, info = checkpoint.read(path)
        check_same_model(key, path, model_spec(recipe["model"]), info.get("model"))
        return f"{key}: {path}", tensors
    descriptor = describe(path)
    label = f"{key}: {path} ({descriptor.architecture.name} x{descriptor.scale})"
    if descriptor.scale != recipe["scale"]:
        raise checkpoint.CheckpointError(
            f"{label}: a x{descriptor.scale} model, this recipe trains scale {recipe['scale']}"
        )
    return label, descriptor.model.state_dict()
