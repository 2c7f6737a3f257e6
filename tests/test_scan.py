"""The parallel, remembered scan of image files, and the memory rule of ``cache: auto``."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_toolkit.core.imageio import decode_image
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data import image_files, scan


def write(path: Path, width: int, height: int, mode: str = "RGB", seed: int = 0, **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(values).convert(mode).save(path, **save)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write(root / "a.png", 40, 30)
    write(root / "gray.png", 36, 32, "L", seed=1)
    write(root / "alpha.png", 33, 34, "RGBA", seed=2)
    (root / "sub").mkdir()
    shutil.copy(root / "a.png", root / "sub" / "copy_of_a.png")
    (root / "empty.png").write_bytes(b"")
    good = (root / "gray.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "text.png").write_text("not an image")
    return root


def paths(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.png"))


def counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record the files the scan decodes from now on."""
    decoded: list[Path] = []
    check = scan.check_file

    def counted(path: Path) -> scan.FileRecord:
        decoded.append(path)
        return check(path)

    monkeypatch.setattr(scan, "check_file", counted)
    return decoded


def test_records_say_what_a_full_decode_finds(folder: Path) -> None:
    records = scan.scan(paths(folder))
    good = {path.name: records[path] for path in records if records[path].usable}
    assert sorted(good) == ["a.png", "alpha.png", "copy_of_a.png", "gray.png"]
    assert (good["a.png"].width, good["a.png"].height, good["a.png"].mode, good["a.png"].bits) == (40, 30, "RGB", 8)
    assert (good["gray.png"].mode, good["alpha.png"].mode) == ("L", "RGBA")
    assert good["a.png"].digest == good["copy_of_a.png"].digest != good["gray.png"].digest
    assert good["a.png"].size == (folder / "a.png").stat().st_size
    problems = {path.name: records[path].problem for path in records if not records[path].usable}
    assert problems["empty.png"] == "file is empty (0 bytes)"
    assert problems["truncated.png"].startswith("truncated or corrupt image")
    assert problems["text.png"] == "not an image that Pillow can decode"


def test_sizes_are_upright_and_16_bit_files_say_so(tmp_path: Path) -> None:
    turned = write(tmp_path / "turned.jpg", 48, 24)
    with Image.open(turned) as image:
        exif = image.getexif()
        exif[0x0112] = 6  # rotated 90 degrees: shown 24 wide, 48 high
        image.save(turned, exif=exif, quality=95)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(20 * 10, dtype=np.uint16).reshape(10, 20) * 300).save(deep)
    records = scan.scan([turned, deep])
    assert (records[turned].width, records[turned].height) == (24, 48)
    assert tuple(decode_image(turned).pixels.shape[-2:]) == (48, 24)
    assert records[deep].bits == 16 and records[deep].mode.startswith("I")


def test_a_second_scan_decodes_only_new_or_changed_files(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = scan.scan(paths(folder))
    decoded = counting_checks(monkeypatch)
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        assert scan.scan(paths(folder)) == first and decoded == []
    assert "7 images known from the index, none to decode" in caplog.text
    write(folder / "new.png", 20, 20)
    changed = folder / "a.png"
    write(changed, 44, 30, seed=5)
    os.utime(changed, ns=(first[changed].mtime_ns + 10**9, first[changed].mtime_ns + 10**9))
    again = scan.scan(paths(folder))
    assert sorted(path.name for path in decoded) == ["a.png", "new.png"]
    assert again[changed].width == 44 and again[changed].digest != first[changed].digest


def test_an_unreadable_index_is_rebuilt_and_the_index_lives_in_the_cache_dir(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan.scan(paths(folder))
    index = scan.index_file(folder)
    assert index.is_relative_to(Path(os.environ[scan.CACHE_ENV])) and json.loads(index.read_text())["version"] == 1
    index.write_text("{torn")
    decoded = counting_checks(monkeypatch)
    scan.scan(paths(folder))
    assert len(decoded) == len([path for path in paths(folder) if path.parent == folder])
    assert json.loads(index.read_text())["files"].keys() >= {"a.png", "empty.png"}


def test_an_interrupted_scan_keeps_what_it_decoded(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [path for path in paths(folder) if path.parent == folder]
    check = scan.check_file

    def interrupted(path: Path) -> scan.FileRecord:
        if path == files[3]:
            raise KeyboardInterrupt
        return check(path)

    monkeypatch.setattr(scan, "check_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scan.scan(files, workers=1)
    monkeypatch.setattr(scan, "check_file", check)
    decoded = counting_checks(monkeypatch)
    scan.scan(files, workers=1)
    assert decoded == files[3:]


def test_cache_auto_keeps_images_in_memory_only_when_they_fit(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = {"type": "image_folder", "root": str(folder), "patch_size": 16}
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        fits = DATASETS.build(spec)
    assert fits.in_memory and "4 images decoded in memory" in caplog.text
    monkeypatch.setattr(image_files, "cache_budget", lambda: 1000)  # bytes: less than one image
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        too_large = DATASETS.build(spec)
        forced = DATASETS.build({**spec, "cache": True})
    assert not too_large.in_memory and "would pass the memory budget" in caplog.text
    assert forced.in_memory and "cache: true keeps" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        assert not DATASETS.build({**spec, "cache": False}).in_memory
    assert "cache: false: each draw decodes its file" in caplog.text
    for index in range(8):  # the same crops either way
        assert torch.equal(fits[index]["target"], too_large[index]["target"])


def test_cache_budget_is_shared_by_the_local_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_files, "available_memory", lambda: 8 * 2**30)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert image_files.cache_budget() == 4 * 2**30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert image_files.cache_budget() == 2**30
    assert 0 < image_files.available_memory() < 2**50
