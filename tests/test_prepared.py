"""``sr-toolkit data prepare`` and the ``prepared`` dataset: positions, exact read-back, bad files,
safe writing, DataLoader workers and a bit-exact resume on prepared data."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from conftest import machine_numerics
from PIL import Image
from test_engine import TINY_RECIPE, train
from torch.utils.data import DataLoader

from sr_toolkit.__main__ import main
from sr_toolkit.commands import data_prepare
from sr_toolkit.config.rules import gives_inputs
from sr_toolkit.core.errors import DataError
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.image_files import decode, shrink
from sr_toolkit.data.prepared import METADATA, read_metadata
from sr_toolkit.data.sub_images import starts, windows

SMALL = ["--size", "48", "--step", "24", "--min-leftover", "8"]


def write_noise(path: Path, height: int, width: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)


def prepare(*argv: str | Path) -> int:
    return main(["data", "prepare", *map(str, argv)])


def build(root: Path, **kwargs: object) -> torch.utils.data.Dataset:
    return DATASETS.build({"type": "prepared", "root": str(root), **kwargs})


def place(key: str) -> tuple[int, int]:
    found = re.search(r"/y(\d+)_x(\d+)$", key)
    assert found, key
    return int(found.group(1)), int(found.group(2))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_noise(folder / "wide.png", 60, 110, seed=1)  # rows at 0 and 12, columns at 0, 24, 48 and 62
    write_noise(folder / "sub" / "small.png", 30, 70, seed=2)  # kept whole in height; columns at 0 and 22
    return folder


def test_sub_image_positions() -> None:
    assert starts(100, 48, 24, 8) == [0, 24, 48]  # leftover 100-96 = 4 < 8: dropped
    assert starts(110, 48, 24, 8) == [0, 24, 48, 62]  # leftover 14: one more, aligned to the edge
    assert starts(104, 48, 24, 8) == [0, 24, 48, 56]  # leftover exactly 8: kept
    assert starts(48, 48, 24, 8) == [0] and starts(30, 48, 24, 8) == [0]  # kept whole
    found = windows(30, 110, 48, 24, 8)
    assert [(w.top, w.left, w.height, w.width) for w in found] == [(0, x, 30, 48) for x in (0, 24, 48, 62)]


@pytest.mark.parametrize("codec", ["png", "raw"])
def test_prepare_stores_exact_crops(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str
) -> None:
    out = tmp_path / "set"
    assert prepare(photos, out, *SMALL, "--codec", codec) == 0
    assert "2 photos used, 0 files skipped, 10 sub-images" in capsys.readouterr().out
    metadata = read_metadata(out)
    assert metadata.options["size"] == 48 and not metadata.paired and metadata.options["codec"] == codec
    dataset = build(out, split="val")
    assert len(dataset) == 10
    for index in range(len(dataset)):
        key = dataset.name(index)
        source = decode(photos / f"{key.split('/y')[0]}.png")
        top, left = place(key)
        target = dataset.images(index)["target"]
        height, width = target.shape[-2:]
        assert torch.equal(target, source[:, top : top + height, left : left + width]), key
    keys = {sub.key for sub in metadata.sub_images}
    assert "wide/y0000_x0062" in keys and "wide/y0012_x0000" in keys  # edge-aligned on both axes
    assert {key for key in keys if key.startswith("sub/small/")} == {f"sub/small/y0000_x{x:04d}" for x in (0, 22)}


def test_downscaled_copies_are_cut_too(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert prepare(photos, out, *SMALL, "--downscales", "0.5") == 0
    dataset = build(out, split="val")
    copies = [i for i in range(len(dataset)) if dataset.name(i).startswith("wide@0.5/")]
    assert copies and read_metadata(out).options["downscales"] == [0.5]
    shrunk = shrink({"target": decode(photos / "wide.png")}, 0.5)["target"]
    for index in copies:
        top, left = place(dataset.name(index))
        target = dataset.images(index)["target"]
        assert torch.equal(target, shrunk[:, top : top + target.shape[1], left : left + target.shape[2]])


def test_paired_sub_images_correspond(tmp_path: Path) -> None:
    write_noise(tmp_path / "hr" / "a.png", 101, 131, seed=3)  # modcropped to 100x130
    write_noise(tmp_path / "lr" / "a.png", 50, 65, seed=4)
    out = tmp_path / "set"
    assert prepare(tmp_path / "hr", out, "--input", tmp_path / "lr", "--scale", "2", *SMALL, "--codec", "raw") == 0
    assert gives_inputs({"type": "prepared", "root": str(out)})
    dataset = build(out, split="val", scale=2)
    hr, lr = decode(tmp_path / "hr" / "a.png"), decode(tmp_path / "lr" / "a.png")
    for index in range(len(dataset)):
        top, left = place(dataset.name(index))
        images = dataset.images(index)
        assert images["target"].shape == (3, 48, 48) and images["input"].shape == (3, 24, 24)
        assert torch.equal(images["target"], hr[:, top : top + 48, left : left + 48])
        assert torch.equal(images["input"], lr[:, top // 2 : top // 2 + 24, left // 2 : left // 2 + 24])
    assert place(dataset.name(len(dataset) - 1)) == (48, 82)  # rows: leftover 4 < 8 dropped; columns: edge-aligned
    with pytest.raises(DataError, match="prepared at scale 2, the dataset's scale is 4"):
        build(out, split="val", scale=4)


def test_size_must_be_a_multiple_of_the_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_noise(tmp_path / "hr" / "a.png", 64, 64)
    assert prepare(tmp_path / "hr", tmp_path / "set", "--input", tmp_path / "hr", "--scale", "7", *SMALL[2:]) == 2
    assert "error: --size: must be a positive multiple of the scale (7), got 480" in capsys.readouterr().err


def test_bad_files_are_skipped_with_a_warning(photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = (photos / "wide.png").read_bytes()
    (photos / "empty.png").write_bytes(b"")
    (photos / "cut.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        assert prepare(photos, tmp_path / "set", *SMALL) == 0
    warned = [record.getMessage() for record in caplog.records if record.name == "sr_toolkit"]
    assert len(warned) == 2
    for name in ("empty.png", "cut.png"):
        assert sum(str(photos / name) in message for message in warned) == 1, name
    assert len(read_metadata(tmp_path / "set").sub_images) == 10


def test_existing_out_is_refused_unless_overwrite(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert prepare(photos, out, *SMALL) == 2
    assert f"error: {out}: already exists" in capsys.readouterr().err
    assert prepare(photos, out, *SMALL, "--overwrite") == 2  # not a prepared set: never removed
    assert (out / "mine.txt").read_text() == "keep"
    (out / "mine.txt").unlink()
    assert prepare(photos, out, *SMALL, "--overwrite") == 0
    assert prepare(photos, out, "--size", "32", "--step", "32", "--overwrite") == 0
    assert read_metadata(out).options["size"] == 32


def test_an_interrupted_prepare_leaves_no_set(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data_prepare, "cut_photo", interrupted)
    assert prepare(photos, tmp_path / "set", *SMALL) == 130
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photos"]


def test_folders_and_sets_are_not_mistaken_for_each_other(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{METADATA} not found.*sr-toolkit data prepare"):
        build(photos, split="val")
    out = tmp_path / "set"
    assert prepare(photos, out, *SMALL) == 0
    with pytest.raises(DataError, match=r"is a prepared set .*type: prepared"):
        DATASETS.build({"type": "image_folder", "root": str(out), "split": "val"})
    document = json.loads((out / METADATA).read_text())
    (out / METADATA).write_text(json.dumps({**document, "version": 99}))
    with pytest.raises(DataError, match="format version 99"):
        build(out, split="val")
    with pytest.raises(DataError, match="missing: folder not found"):
        build(tmp_path / "missing", split="val")


def test_a_patch_larger_than_every_sub_image_says_what_to_do(photos: Path, tmp_path: Path) -> None:
    assert prepare(photos, tmp_path / "set", *SMALL) == 0
    with pytest.raises(DataError, match=r"smaller than patch_size 64 \(the largest is 48x48\).*larger --size"):
        build(tmp_path / "set", patch_size=64)


def test_paired_summary_counts_every_skipped_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b", "lonely"):
        write_noise(tmp_path / "hr" / f"{name}.png", 64, 64)
    write_noise(tmp_path / "lr" / "a.png", 32, 32)
    write_noise(tmp_path / "lr" / "b.png", 20, 20)  # not the target's size / 2
    write_noise(tmp_path / "lr" / "stray.png", 32, 32)
    assert prepare(tmp_path / "hr", tmp_path / "set", "--input", tmp_path / "lr", "--scale", "2", *SMALL) == 0
    assert "1 pairs used, 4 files skipped" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["check", "prepare"])
def test_a_scale_below_one_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str) -> None:
    write_noise(tmp_path / "hr" / "a.png", 64, 64)
    out = [str(tmp_path / "set")] if action == "prepare" else []
    with pytest.raises(SystemExit) as exit_:
        main(["data", action, str(tmp_path / "hr"), *out, "--input", str(tmp_path / "hr"), "--scale", "0"])
    assert exit_.value.code == 2 and "--scale: expected a positive whole number, got '0'" in capsys.readouterr().err


def test_small_sub_images_are_left_out(photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "set"
    assert prepare(photos, out, *SMALL) == 0
    assert not gives_inputs({"type": "prepared", "root": str(out)})
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        dataset = build(out, patch_size=40)
    assert len(dataset) == 8 and "2 sub-image(s) too small for patch_size 40 left out, from sub/small" in caplog.text


def test_data_loader_workers_give_the_same_items(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert prepare(photos, out, *SMALL) == 0
    dataset = build(out, patch_size=16, seed=5)
    indices = list(range(40, 52))
    single = list(DataLoader(dataset, batch_size=4, sampler=indices, num_workers=0))
    workers = list(DataLoader(dataset, batch_size=4, sampler=indices, num_workers=2))
    for a, b in zip(single, workers, strict=True):
        assert a["name"] == b["name"] and torch.equal(a["target"], b["target"])
    assert torch.equal(dataset[40]["target"], single[0]["target"][0])  # the main process reads on after the fork


@pytest.mark.parametrize("numerics", machine_numerics())
def test_resume_on_prepared_data_is_bit_exact(tmp_path: Path, numerics: str) -> None:
    for index in range(3):
        write_noise(tmp_path / "photos" / f"{index}.png", 70, 90, seed=index)
    assert prepare(tmp_path / "photos", tmp_path / "set", "--size", "64", "--step", "32", "--min-leftover", "8") == 0
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.replace("{type: builtin, split: train, patch_size: 32}", "{type: prepared}"))
    settings = (  # a step schedule depends on the step alone: a 2-step run is the first half of a 4-step one
        "scheduler.type=step",
        "scheduler.step_size=2",
        "scheduler.warmup_steps=1",
        f"data.train.root={tmp_path / 'set'}",
        "data.train.patch_size=32",
        "data.num_workers=2",
        "train.val_every=100",
        f"train.mixed_precision={numerics}",
    )
    full = train(recipe, f"output_dir={tmp_path / 'full'}", "train.max_steps=4", *settings)
    train(recipe, f"output_dir={tmp_path / 'half'}", "train.max_steps=2", *settings)
    resumed = train(recipe, f"output_dir={tmp_path / 'half'}", "train.max_steps=4", *settings, resume=True)
    assert resumed.state.step == 4
    a = full.accelerator.unwrap_model(full.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
