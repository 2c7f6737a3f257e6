"""Model files carry a format version: written by save_model, checked by load_model; files without one load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sr_toolkit.core import checkpoint
from sr_toolkit.core.model_file import FORMAT_VERSION, load_model, save_model
from sr_toolkit.core.registry import MODELS

RECIPE = {"model": {"type": "deconv", "scale": 2}, "scale": 2, "task": "upscale"}


def test_save_model_writes_the_format_version(tmp_path: Path) -> None:
    save_model(tmp_path / "model.safetensors", MODELS.build(RECIPE["model"]), RECIPE)
    _, info = checkpoint.read(tmp_path / "model.safetensors")
    assert FORMAT_VERSION == 1 and info["format_version"] == FORMAT_VERSION


def test_a_file_without_a_format_version_is_format_1_and_loads(tmp_path: Path) -> None:
    model = MODELS.build(RECIPE["model"])
    path = tmp_path / "old.safetensors"
    checkpoint.atomic_save(model.state_dict(), path, {**RECIPE, "recipe": RECIPE})  # as files were written before
    loaded = load_model(path)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize(
    "version, message",
    [
        (2, "model file format 2 is newer than this sr-toolkit reads (format 1); upgrade sr-toolkit to load it"),
        ("2", "format_version: expected a positive integer, got '2'"),
        (0, "format_version: expected a positive integer, got 0"),
    ],
)
def test_load_model_refuses_a_newer_or_unknown_format_in_one_line(
    tmp_path: Path, version: object, message: str
) -> None:
    path = tmp_path / "new.safetensors"
    checkpoint.atomic_save(
        MODELS.build(RECIPE["model"]).state_dict(), path, {**RECIPE, "recipe": RECIPE, "format_version": version}
    )
    with pytest.raises(checkpoint.CheckpointError) as raised:
        load_model(path)
    assert str(raised.value) == f"{path}: {message}"


def test_a_training_checkpoint_given_as_a_model_points_at_the_model_file(tmp_path: Path) -> None:
    path = tmp_path / "step_0000003.safetensors"
    checkpoint.atomic_save({"model.w": torch.zeros(1)}, path, {"step": 3, "recipe": RECIPE})
    with pytest.raises(checkpoint.CheckpointError, match=r"a training checkpoint \(step 3\), not a model file; use"):
        load_model(path)
