"""Files written atomically get the mode the umask gives a new file, not mkstemp's private 0o600."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_engine import TINY_RECIPE, train

from sr_toolkit.core import atomic
from sr_toolkit.core.atomic import atomic_path, new_file_mode, umask


@pytest.fixture
def set_umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for one test: the umask it had comes back afterwards (0o022 meanwhile until set)."""
    before = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_umask_mode(
    tmp_path: Path, set_umask: Callable[[int], int], mask: int, expected: int
) -> None:
    set_umask(mask)
    assert umask() == mask
    assert new_file_mode() == expected
    with atomic_path(tmp_path / "sub" / "file.bin") as temporary:
        temporary.write_bytes(b"data")
    assert mode(tmp_path / "sub" / "file.bin") == expected
    assert umask() == mask  # reading it changed nothing
    assert [path.name for path in (tmp_path / "sub").iterdir()] == ["file.bin"]


def test_a_replaced_file_gets_the_umask_mode_too(tmp_path: Path, set_umask: Callable[[int], int]) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    set_umask(0o022)
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o644


def test_a_training_run_writes_its_files_with_the_umask_mode(tmp_path: Path, set_umask: Callable[[int], int]) -> None:
    set_umask(0o022)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    train(recipe, "train.max_steps=4")
    run = tmp_path / "run"
    files = [
        run / "model.safetensors",
        run / "curves.png",
        run / "recipe.yaml",
        *sorted((run / "checkpoints").iterdir()),
        *sorted((run / "samples").iterdir()),
    ]
    assert any(path.parent.name == "checkpoints" for path in files)
    assert any(path.parent.name == "samples" for path in files)
    assert {path.name: oct(mode(path)) for path in files} == {path.name: oct(0o644) for path in files}


def test_without_proc_the_umask_is_read_and_restored(
    monkeypatch: pytest.MonkeyPatch, set_umask: Callable[[int], int]
) -> None:
    def no_proc(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(atomic, "open", no_proc, raising=False)
    set_umask(0o027)
    assert umask() == 0o027 and new_file_mode() == 0o640
    assert os.umask(0o027) == 0o027  # left as it was
