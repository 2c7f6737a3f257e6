"""Training batches: cut on the device from held images, or by a DataLoader, the same stream either way."""

from __future__ import annotations

import logging
from itertools import islice
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data

from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.batches import DrawSampler, HeldOnDevice, training_batches

CPU = torch.device("cpu")


def collated(dataset: torch.utils.data.Dataset, draws: list[int]) -> dict[str, torch.Tensor]:
    """What a DataLoader's default collate makes of these items (names aside)."""
    items = [dataset[draw] for draw in draws]
    return {key: torch.stack([item[key] for item in items]) for key in items[0] if key != "name"}


def test_sampler_draws_per_rank_and_resume() -> None:
    assert list(islice(DrawSampler(3, start=2, rank=1, world=2), 6)) == [15, 16, 17, 21, 22, 23]
    assert list(islice(DrawSampler(3), 6)) == list(range(6))


def test_held_batches_equal_collated_items() -> None:
    dataset = DATASETS.build({"type": "builtin", "patch_size": 32, "scale": 4, "seed": 5})
    assert isinstance(dataset, HeldOnDevice)
    sampler = DrawSampler(4, start=3, rank=1, world=2)
    batches = list(islice(training_batches(dataset, sampler, 0, CPU), 3))
    draws = list(islice(iter(sampler), 12))
    for index, batch in enumerate(batches):
        expected = collated(dataset, draws[4 * index : 4 * index + 4])
        assert batch.keys() == expected.keys() == {"target"}
        assert batch["target"].dtype == torch.float32 and batch["target"].shape == (4, 3, 32, 32)
        assert torch.equal(batch["target"], expected["target"])


def test_held_paired_batches_keep_input_and_target_in_register(tmp_path: Path) -> None:
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    for name, source in (("a", "astronaut"), ("b", "chelsea")):
        target = Image.fromarray(getattr(data, source)()).resize((68, 52))
        targets.mkdir(exist_ok=True), inputs.mkdir(exist_ok=True)
        target.save(targets / f"{name}.png")
        target.resize((17, 13), Image.Resampling.BOX).save(inputs / f"{name}.png")
    dataset = DATASETS.build(
        {"type": "paired_folder", "input_root": str(inputs), "target_root": str(targets), "patch_size": 16, "scale": 4}
    )
    batch = next(training_batches(dataset, DrawSampler(6), 0, CPU))
    expected = collated(dataset, list(range(6)))
    assert batch.keys() == {"input", "target"}
    assert torch.equal(batch["input"], expected["input"]) and torch.equal(batch["target"], expected["target"])


def test_loader_path_when_images_are_not_in_memory_or_workers_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((80, 64)).save(tmp_path / f"{name}.png")
    spec = {"type": "image_folder", "root": str(tmp_path), "patch_size": 32, "scale": 2}
    uncached = DATASETS.build({**spec, "cache": False})
    cached = DATASETS.build(spec)
    assert not uncached.hold_on(CPU) and cached.in_memory
    expected = collated(cached, list(range(4)))
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        for dataset, workers in ((uncached, 0), (cached, 1), (cached, 0)):
            batch = next(training_batches(dataset, DrawSampler(4), workers, CPU))
            assert torch.equal(batch["target"], expected["target"])
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        "data: DataLoader with 0 worker process(es)",
        "data: DataLoader with 1 worker process(es)",
        "data: decoded images held on cpu; crops cut in the training step",
    ]


def test_val_split_is_never_held() -> None:
    assert not DATASETS.build({"type": "builtin", "split": "val", "scale": 4}).hold_on(CPU)


def test_image_folder_without_root_reads_the_builtin_photos() -> None:
    folder = DATASETS.build({"type": "image_folder", "split": "val", "scale": 4})
    builtin = DATASETS.build({"type": "builtin", "split": "val", "scale": 4})
    assert [folder[i]["name"] for i in range(2)] == [builtin[i]["name"] for i in range(2)] == ["chelsea", "coffee"]
    assert torch.equal(folder[1]["target"], builtin[1]["target"])
