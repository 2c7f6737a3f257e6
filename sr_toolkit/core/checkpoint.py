"""Checkpoints and deployable weights as single safetensors files, written atomically (no pickle).

A training checkpoint holds tensors under prefixes (``model.``, ``ema.``, ``optimizer.state.``,
``rng.``) and everything else as JSON in the safetensors metadata. Deployable weights
(``model.safetensors``) hold the model's state dict and, under the metadata key ``sr_toolkit``,
the spec that rebuilds the model, so evaluation and inference need nothing but that file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.errors import SrToolkitError

METADATA_KEY = "sr_toolkit"


class CheckpointError(SrToolkitError):
    """A checkpoint or weights file that cannot be read or does not fit."""


def atomic_save(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, Any]) -> None:
    """Write a safetensors file through a temporary file and a rename, so a kill at any moment
    leaves either the previous file or the new one, never a torn one."""
    tensors = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={METADATA_KEY: json.dumps(metadata)})
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a file written by :func:`atomic_save`."""
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint or weights file: {path}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without sr_toolkit metadata")
    return tensors, json.loads(raw)


def with_prefix(prefix: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every key prefixed by ``prefix.``."""
    return {f"{prefix}.{key}": value for key, value in state.items()}


def strip_prefix(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.``, with the prefix removed."""
    start = len(prefix) + 1
    return {key[start:]: value for key, value in tensors.items() if key.startswith(prefix + ".")}


def describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], limit: int = 4) -> str:
    """Every way ``found`` (a file's tensors) differs from ``expected`` (a module's state dict), on
    one line: tensors whose shapes differ (file against model), then missing and extra names.
    Empty when they fit."""
    shapes = [
        f"{key} {tuple(found[key].shape)} in the file, {tuple(value.shape)} in the model"
        for key, value in expected.items()
        if key in found and found[key].shape != value.shape
    ]
    missing = [key for key in expected if key not in found]
    extra = [key for key in found if key not in expected]
    parts = []
    for label, items in (("shapes differ", shapes), ("missing from the file", missing), ("not in the model", extra)):
        if items:
            more = f"; and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{label} ({len(items)}): {'; '.join(items[:limit])}{more}")
    return " | ".join(parts)


def load_weights(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(tensors)`` (strict), or :class:`CheckpointError` naming ``source``
    and every tensor that does not fit, with both shapes."""
    problems = describe_mismatch(module.state_dict(), tensors)
    if problems:
        raise CheckpointError(f"{source}: does not fit the model: {problems}")
    module.load_state_dict(tensors)


def split_optimizer_state(
    state: Mapping[str, Any], prefix: str = "optimizer"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state dict as tensors (``<prefix>.state.<param>.<name>``) and JSON."""
    tensors, plain = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{index}.{name}"] = value
            else:
                plain[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain}


def join_optimizer_state(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], prefix: str = "optimizer"
) -> dict[str, Any]:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in strip_prefix(f"{prefix}.state", tensors).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["plain_state"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    prefix: str = "optimizer",
) -> None:
    """Restore what :func:`split_optimizer_state` saved into ``optimizer``, each per-parameter tensor
    (Adam's moments, SGD's momentum) in its parameter's memory layout, dtype and device.

    Files hold tensors contiguous; a parameter may be channels_last. torch's ``load_state_dict``
    keeps the file's layout, and fused optimizers walk a moment with its parameter's strides, so a
    moment in another layout would update other weights than its own.
    """
    optimizer.load_state_dict(join_optimizer_state(tensors, meta, prefix))
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for name, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                    state[name] = torch.empty_like(param).copy_(value)


def rng_state() -> dict[str, torch.Tensor]:
    """The global torch RNG states (CPU and every CUDA device), e.g. for dropout on resume."""
    states = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def set_rng_state(tensors: Mapping[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(tensors["rng.cpu"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))
    cuda = [tensors[key] for key in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_state(
    path: Path,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    meta: Mapping[str, Any],
) -> None:
    """A training checkpoint at ``path``: each module's state dict under its name (``model.``, ``ema.``...),
    each optimizer's tensors under ``<name>.state.`` and its other state as JSON under the metadata key
    ``<name>``, the global RNG states (``rng.``), and ``meta``. Restored by :func:`restore_state`."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update(with_prefix(name, module.state_dict()))
    everything = dict(meta)
    for name, optimizer in optimizers.items():
        if name in everything:
            raise ValueError(f"optimizer name {name!r} is also a metadata key")
        optimizer_tensors, everything[name] = split_optimizer_state(optimizer.state_dict(), name)
        tensors.update(optimizer_tensors)
    tensors.update(rng_state())
    atomic_save(tensors, path, everything)


def restore_state(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    source: str,
) -> None:
    """Load what :func:`save_state` wrote (as :func:`read` returns it) into the same named modules and
    optimizers, then set the global RNG states. A module that does not fit raises
    :class:`CheckpointError` naming ``source`` and the module."""
    for name, module in modules.items():
        load_weights(module, strip_prefix(name, tensors), f"{source} ({name})")
    for name, optimizer in optimizers.items():
        load_optimizer_state(optimizer, tensors, meta[name], name)
    set_rng_state(tensors)
