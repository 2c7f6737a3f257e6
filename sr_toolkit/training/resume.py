"""What a training checkpoint carries besides tensors, and which checkpoints a recipe may go on from.

The tensors (model, EMA, discriminator, optimizers, RNG states) are written and restored by
:func:`sr_toolkit.core.checkpoint.save_state` and :func:`~sr_toolkit.core.checkpoint.restore_state`,
which know modules and optimizers but not recipes. This module holds the recipe side: the
:class:`Counters` saved with them, the run's kind (scale, task, model and discriminator
arguments) a checkpoint can only be resumed with, and where the schedule stood when it was saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sr_toolkit.core.checkpoint import CheckpointError
from sr_toolkit.core.errors import SrToolkitError
from sr_toolkit.core.model_file import model_spec
from sr_toolkit.training.run_folder import RunFolder
from sr_toolkit.training.schedule import RunProgress, parse_duration


@dataclass
class Counters:
    """Counters saved in every checkpoint."""

    step: int = 0
    elapsed: float = 0.0
    best_psnr: float = -math.inf
    skipped: int = 0  # updates dropped by on_nonfinite: skip
    val_seconds: float = 0.0  # the last validation's time, kept free at the end of a time budget

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Counters:
        """The counters in a checkpoint's metadata (defaults for those an older checkpoint lacks)."""
        return cls(**{f.name: meta[f.name] for f in fields(cls) if f.name in meta})


def checkpoint_to_resume(resume: str | bool, folder: RunFolder) -> Path | None:
    """The checkpoint ``--resume`` names: None (no resume), the path given, or for ``True`` the run
    folder's latest step checkpoint (SrToolkitError when it has none)."""
    if not resume:
        return None
    if resume is not True:
        return Path(resume)
    found = folder.step_checkpoints()
    if not found:
        raise SrToolkitError(f"--resume: no checkpoint in {folder.checkpoints}")
    return found[-1]


def saved_progress(meta: dict[str, Any]) -> float:
    """How far (0..1) the schedule of the run that saved ``meta`` had gone; for older checkpoints,
    which do not record it, what their recipe's limits gave."""
    progress = meta.get("progress")
    if progress is None:
        before = meta["recipe"]["train"]
        progress = RunProgress(before["max_steps"], parse_duration(before["max_time"]))(meta["step"], meta["elapsed"])
    return progress


def flat_spec(where: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    """A component spec as ``{"model.type": ..., "model.channels": ...}`` (empty for None)."""
    return {f"{where}.{key}": value for key, value in (spec or {}).items()}


def run_kind(recipe: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint can only be resumed with, key by key: scale, task, and every argument of the
    model and of the discriminator (``model.channels``...)."""
    return {
        "scale": recipe.get("scale"),
        "task": recipe.get("task"),
        **flat_spec("model", model_spec(recipe.get("model") or {})),
        **flat_spec("gan.discriminator", recipe.get("gan", {}).get("discriminator")),
    }


def first_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The first key whose value differs between two flat mappings: (key, ours, theirs), or None."""
    for key in dict.fromkeys([*ours, *theirs]):
        if ours.get(key) != theirs.get(key):
            return key, ours.get(key), theirs.get(key)
    return None


def check_resumable(path: Path, recipe: dict[str, Any], saved: dict[str, Any]) -> None:
    """Refuse (CheckpointError) a checkpoint whose run, ``saved`` its recipe, had another scale, task,
    model or discriminator than ``recipe``."""
    differs = first_difference(run_kind(recipe), run_kind(saved))
    if differs:
        key, ours, theirs = differs
        raise CheckpointError(
            f"--resume: {path} was trained with {key} = {theirs}, this recipe has {ours}; "
            "resume with the run's own recipe.yaml, or start a new run (another name)"
        )


def check_same_model(key: str, path: Path, model: dict[str, Any], saved: dict[str, Any] | None) -> None:
    """Refuse (CheckpointError) a model file named by ``key`` (``gan.init_from``, ``model.init_from``) whose
    model spec ``saved`` differs from ``model``."""
    differs = first_difference(flat_spec("model", model), flat_spec("model", saved))
    if differs:
        name, ours, theirs = differs
        raise CheckpointError(f"{key}: {path} holds a model with {name} = {theirs}, this recipe trains {name} = {ours}")
