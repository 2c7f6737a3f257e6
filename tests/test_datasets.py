"""Dataset plugins: what an index gives, that it is a pure function of (seed, index), and bad data."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch.utils.data import DataLoader

from sr_toolkit.core.errors import DataError, RegistryError
from sr_toolkit.core.imageio import read_image, to_uint8
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.core.resize import imresize_uint8
from sr_toolkit_plugins.datasets.builtin import TRAIN_PHOTOS, VAL_PHOTOS

PHOTOS = {
    "astronaut.png": (72, 64),
    "chelsea.png": (90, 60),
    "coffee.jpg": (100, 70),
    "sub/rocket.png": (64, 52),
}
"""Test photos (from scikit-image) and the (width, height) they are resized to."""


def write_photo(path: Path, size: tuple[int, int], source: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = getattr(data, source or path.stem)()
    Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC).save(path, quality=95)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name, size in PHOTOS.items():
        write_photo(folder / name, size)
    return folder


def folder_dataset(root: Path, **kwargs: object) -> torch.utils.data.Dataset:
    spec = {"type": "image_folder", "root": str(root), "patch_size": 32, "scale": 4, **kwargs}
    return DATASETS.build(spec)


def symmetries(patch: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips and rotations of a (C, H, W) patch."""
    return [torch.rot90(p, k, (1, 2)) for p in (patch, patch.flip(2)) for k in range(4)]


def grid_windows(image: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """Every size x size window of (C, H, W) ``image`` whose corner lies on the ``step`` grid, as uint8."""
    windows = to_uint8(image).unfold(1, size, step).unfold(2, size, step)
    return windows.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], size, size)


def is_window(patch: torch.Tensor, windows: torch.Tensor, flipped: bool) -> bool:
    """Whether ``patch`` (or, when ``flipped``, one of its symmetries) is one of ``windows``."""
    candidates = symmetries(patch) if flipped else [patch]
    return any(bool((windows == to_uint8(c)).all((1, 2, 3)).any()) for c in candidates)


def file_of(root: Path, name: str) -> Path:
    return next(root.glob(f"{name}.*"))


def test_image_folder_lists_recursively(photo_folder: Path) -> None:
    dataset = folder_dataset(photo_folder, split="val", patch_size=None)
    assert len(dataset) == 4
    assert [dataset[i]["name"] for i in range(4)] == ["astronaut", "chelsea", "coffee", "sub/rocket"]


@pytest.mark.parametrize("augment", [False, True])
def test_train_items_are_crops_of_the_images_at_any_pixel(photo_folder: Path, augment: bool) -> None:
    dataset = folder_dataset(photo_folder, augment=augment)
    windows, on_scale_grid = {}, {}
    for index in range(24):
        item = dataset[index]
        assert set(item) == {"target", "name"}
        target = item["target"]
        assert target.shape == (3, 32, 32) and target.dtype == torch.float32
        assert target.min() >= 0 and target.max() <= 1
        name = item["name"]
        if name not in windows:
            image = read_image(file_of(photo_folder, name))
            windows[name], on_scale_grid[name] = grid_windows(image, 32, step=1), grid_windows(image, 32, step=4)
        assert is_window(target, windows[name], flipped=augment), (index, name)
    # clean images are not snapped to the scale grid (paired data is: see the paired_folder test)
    assert sum(is_window(dataset[i]["target"], on_scale_grid[dataset[i]["name"]], augment) for i in range(24)) < 12
    if augment:  # 7 of the 8 symmetries change a patch: most draws must be flipped or rotated
        straight = [is_window(dataset[i]["target"], windows[dataset[i]["name"]], False) for i in range(24)]
        assert sum(straight) < 12


@pytest.mark.parametrize("cache", [True, False])
def test_downscales_add_shrunk_copies_of_training_images(
    photo_folder: Path, caplog: pytest.LogCaptureFixture, cache: bool
) -> None:
    with caplog.at_level(logging.INFO, logger="sr_toolkit"):
        dataset = folder_dataset(photo_folder, downscales=[0.5], cache=cache)
    # at half size 72x64 and 100x70 still hold a 32-pixel patch; 90x60 and 64x52 do not
    names = [dataset.name(index) for index in range(len(dataset))]
    assert names == ["astronaut", "astronaut@0.5", "chelsea", "coffee", "coffee@0.5", "sub/rocket"]
    assert any("2 downscaled copies too small" in record.getMessage() for record in caplog.records)
    for copy in ("astronaut@0.5", "coffee@0.5"):
        original = to_uint8(read_image(file_of(photo_folder, copy.split("@")[0])))
        shrunk = imresize_uint8(original, scale=0.5)
        assert torch.equal(dataset.images(names.index(copy))["target"], shrunk)
        draws = [index for index in range(60) if dataset[index]["name"] == copy]
        assert draws, copy
        windows = grid_windows(shrunk.float() / 255, 32, step=1)
        assert all(is_window(dataset[index]["target"], windows, flipped=True) for index in draws)
    validation = folder_dataset(photo_folder, split="val", patch_size=None, downscales=[0.5])
    names = [validation.name(index) for index in range(len(validation))]
    assert names == ["astronaut", "chelsea", "coffee", "sub/rocket"]


def test_bad_downscales_are_refused(photo_folder: Path) -> None:
    for factors, message in (([1.0], "between 0 and 1"), ([0.5, 0], "got 0"), ([0.5, 0.5], "factors repeat")):
        with pytest.raises(RegistryError, match=message):
            folder_dataset(photo_folder, downscales=factors)
    with pytest.raises(RegistryError, match="downscales"):
        folder_dataset(photo_folder, downscales=["half"])


def test_augmentation_reaches_all_eight_symmetries(tmp_path: Path) -> None:
    write_photo(tmp_path / "chelsea.png", (32, 32))  # one window: every difference is a flip or rotation
    dataset = folder_dataset(tmp_path)
    whole = to_uint8(read_image(tmp_path / "chelsea.png"))
    drawn = {tuple(to_uint8(dataset[i]["target"]).flatten().tolist()) for i in range(64)}
    assert drawn == {tuple(s.flatten().tolist()) for s in symmetries(whole)}
    assert len(drawn) == 8


def test_train_item_is_a_pure_function_of_seed_and_index(photo_folder: Path) -> None:
    first = folder_dataset(photo_folder, seed=3)
    second = folder_dataset(photo_folder, seed=3, cache=False)
    indices = [7, 0, 123, 10**9, 7, 1]
    for index in indices:
        a, b = first[index], second[index]
        assert a["name"] == b["name"] and torch.equal(a["target"], b["target"])
    items = [first[i]["target"] for i in range(8)]
    assert all(not torch.equal(items[i], items[j]) for i in range(8) for j in range(i + 1, 8))
    other_seed = folder_dataset(photo_folder, seed=4)
    assert not all(torch.equal(first[i]["target"], other_seed[i]["target"]) for i in range(4))


def test_every_epoch_draws_each_image_once_in_a_new_order(photo_folder: Path) -> None:
    dataset = folder_dataset(photo_folder)
    count = len(dataset)
    orders = [[dataset[epoch * count + i]["name"] for i in range(count)] for epoch in range(6)]
    assert all(sorted(order) == sorted(orders[0]) and len(set(order)) == count for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_items_identical_in_data_loader_workers(photo_folder: Path) -> None:
    dataset = folder_dataset(photo_folder, seed=11)
    indices = list(range(100, 112))
    loader = DataLoader(dataset, batch_size=4, sampler=indices, num_workers=2)
    batches = list(loader)
    loaded = torch.cat([batch["target"] for batch in batches])
    expected = torch.stack([dataset[i]["target"] for i in indices])
    assert torch.equal(loaded, expected)
    assert [name for batch in batches for name in batch["name"]] == [dataset[i]["name"] for i in indices]


def test_val_gives_whole_modcropped_images(photo_folder: Path) -> None:
    dataset = folder_dataset(photo_folder, split="val", patch_size=None, scale=3, augment=True)
    for index in range(len(dataset)):
        item = dataset[index]
        original = read_image(file_of(photo_folder, item["name"]))
        height, width = original.shape[1] // 3 * 3, original.shape[2] // 3 * 3
        assert torch.equal(to_uint8(item["target"]), to_uint8(original[:, :height, :width]))
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_val_patches_are_centre_crops(photo_folder: Path) -> None:
    dataset = folder_dataset(photo_folder, split="val", patch_size=32, scale=4)
    item = dataset[1]
    assert item["name"] == "chelsea"  # 90x60 -> modcropped 88x60 -> centre 32x32 at (top 14, left 28)
    original = read_image(photo_folder / "chelsea.png")
    assert torch.equal(to_uint8(item["target"]), to_uint8(original[:, 14:46, 28:60]))
    assert torch.equal(dataset[1]["target"], item["target"])


def test_grayscale_file_gives_three_equal_channels(tmp_path: Path) -> None:
    write_photo(tmp_path / "camera.png", (48, 48))
    target = folder_dataset(tmp_path, patch_size=16)[0]["target"]
    assert target.shape == (3, 16, 16)
    assert torch.equal(target[0], target[1]) and torch.equal(target[0], target[2])


def test_bad_files_are_skipped_with_one_warning_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_photo(tmp_path / "astronaut.png", (64, 64))
    write_photo(tmp_path / "coffee.png", (64, 48))
    write_photo(tmp_path / "chelsea.png", (30, 20))  # smaller than the 32-pixel patch
    good = (tmp_path / "coffee.png").read_bytes()
    bad = {"empty.png": b"", "cut.png": good[: len(good) // 2], "notes.jpg": b"not an image"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        dataset = folder_dataset(tmp_path)
    assert len(dataset) == 2
    assert {dataset[i]["name"] for i in range(10)} == {"astronaut", "coffee"}
    warned = [record.getMessage() for record in caplog.records if record.name == "sr_toolkit"]
    assert len(warned) == 4
    for name in [*bad, "chelsea.png"]:
        assert sum(str(tmp_path / name) in message for message in warned) == 1, name
    assert any("too small (30x20) for patch_size 32" in message for message in warned)


def test_no_usable_image_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    write_photo(tmp_path / "chelsea.png", (20, 20))
    with pytest.raises(DataError, match="no usable images") as error:
        folder_dataset(tmp_path)
    assert str(tmp_path) in str(error.value)
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    with pytest.raises(DataError, match="none found"):
        folder_dataset(nothing)
    with pytest.raises(DataError, match="folder not found"):
        folder_dataset(tmp_path / "missing")


def test_bad_crop_settings_are_refused(photo_folder: Path) -> None:
    with pytest.raises(RegistryError, match="patch_size must be a positive multiple of scale"):
        folder_dataset(photo_folder, patch_size=30, scale=4)
    with pytest.raises(RegistryError, match="'train' needs a patch_size"):
        folder_dataset(photo_folder, patch_size=None)
    with pytest.raises(RegistryError, match=r"expects one of train|val"):
        folder_dataset(photo_folder, split="test")


def write_pair(input_path: Path, target_path: Path, source: str, size: tuple[int, int], scale: int) -> None:
    """A target photo and its input: the mean of each scale x scale block, rounded to 8 bits."""
    write_photo(target_path, size, source)
    target = read_image(target_path)
    height, width = target.shape[1] // scale * scale, target.shape[2] // scale * scale
    small = torch.nn.functional.avg_pool2d(target[None, :, :height, :width], scale)[0]
    input_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(small).permute(1, 2, 0).numpy()).save(input_path)


def test_paired_folder_matches_names_and_crops_in_register(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    write_pair(inputs / "baby_LR.png", targets / "baby_HR.png", "astronaut", (70, 66), 4)
    write_pair(inputs / "0801x4.png", targets / "0801.png", "chelsea", (64, 48), 4)
    write_pair(inputs / "lonely_LR.png", targets / "other_HR.png", "coffee", (64, 48), 4)
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        train = DATASETS.build(
            {
                "type": "paired_folder",
                "input_root": str(inputs),
                "target_root": str(targets),
                "patch_size": 32,
                "scale": 4,
            }
        )
    assert len(train) == 2
    warned = " | ".join(record.getMessage() for record in caplog.records)
    assert str(inputs / "lonely_LR.png") in warned and str(targets / "other_HR.png") in warned
    for index in range(16):
        item = train[index]
        assert item["name"] in {"baby_HR", "0801"}
        assert item["input"].shape == (3, 8, 8) and item["target"].shape == (3, 32, 32)
        pooled = torch.nn.functional.avg_pool2d(item["target"][None], 4)[0]
        assert (pooled - item["input"]).abs().max() <= 0.5 / 255 + 1e-6, index
    val = DATASETS.build(
        {"type": "paired_folder", "input_root": str(inputs), "target_root": str(targets), "split": "val", "scale": 4}
    )
    whole = val[1]
    assert whole["name"] == "baby_HR"
    assert whole["input"].shape == (3, 16, 17) and whole["target"].shape == (3, 64, 68)


def test_paired_folder_skips_wrong_sizes_and_fails_without_matches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    write_pair(inputs / "a.png", targets / "a.png", "astronaut", (64, 64), 4)
    write_pair(inputs / "b.png", targets / "b.png", "chelsea", (64, 64), 2)  # input is 1/2, not 1/4
    spec = {"type": "paired_folder", "input_root": str(inputs), "target_root": str(targets), "scale": 4}
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        dataset = DATASETS.build({**spec, "patch_size": 16})
    assert len(dataset) == 1 and dataset[0]["name"] == "a"
    assert "input is 32x32, expected 16x16" in caplog.text and str(inputs / "b.png") in caplog.text
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="matches a target"):
        DATASETS.build({**spec, "target_root": str(empty), "patch_size": 16})


def test_paired_folder_pairs_names_ending_in_digits_and_sub_folders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the names a scale-blind rule cut to 'te' (tex1x4, tex2x4), cased tags, a sub-folder
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    for input_name, target_name, photo in (
        ("tex1x4.png", "tex1.png", "astronaut"),
        ("tex2x4.png", "tex2.png", "chelsea"),
        ("Baby_LR.PNG", "baby_hr.png", "coffee"),
        ("sub/img_001_x4.png", "sub/img_001.png", "rocket"),
        ("tex3x2.png", "tex3.png", "camera"),
    ):
        write_pair(inputs / input_name, targets / target_name, photo, (32, 32), 4)
    spec = {"type": "paired_folder", "input_root": str(inputs), "target_root": str(targets), "split": "val", "scale": 4}
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        dataset = DATASETS.build(spec)
    assert [dataset[index]["name"] for index in range(len(dataset))] == ["baby_hr", "sub/img_001", "tex1", "tex2"]
    expected = [
        ("Baby_LR.PNG", "baby_hr.png"),
        ("sub/img_001_x4.png", "sub/img_001.png"),
        ("tex1x4.png", "tex1.png"),
        ("tex2x4.png", "tex2.png"),
    ]
    for index, (input_name, target_name) in enumerate(expected):
        assert torch.equal(dataset[index]["input"], read_image(inputs / input_name))
        assert torch.equal(dataset[index]["target"], read_image(targets / target_name))
    # only the run's scale mark is dropped: tex3x2 is not tex3's input at scale 4
    assert caplog.messages == [
        f"skipping {inputs / 'tex3x2.png'}: no file named like it in {targets}",
        f"skipping {targets / 'tex3.png'}: no file named like it in {inputs}",
    ]


def test_paired_folder_reads_one_selfexsr_folder(tmp_path: Path) -> None:
    folder = tmp_path / "image_SRF_4"
    write_pair(folder / "img_001_SRF_4_LR.png", folder / "img_001_SRF_4_HR.png", "astronaut", (32, 24), 4)
    write_pair(folder / "img_002_SRF_4_LR.png", folder / "img_002_SRF_4_HR.png", "chelsea", (24, 32), 4)
    dataset = DATASETS.build(
        {"type": "paired_folder", "input_root": str(folder), "target_root": str(folder), "split": "val", "scale": 4}
    )
    assert [dataset[index]["name"] for index in range(2)] == ["img_001_SRF_4_HR", "img_002_SRF_4_HR"]
    assert dataset[0]["input"].shape == (3, 6, 8) and dataset[1]["target"].shape == (3, 32, 24)


def test_paired_folder_skips_ambiguous_names_with_one_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    write_pair(inputs / "tex1.png", targets / "tex1.png", "astronaut", (32, 32), 4)
    write_pair(inputs / "tex1x4.png", targets / "tex2.png", "chelsea", (32, 32), 4)
    write_pair(inputs / "tex2x4.png", targets / "tex3.png", "coffee", (32, 32), 4)
    spec = {"type": "paired_folder", "input_root": str(inputs), "target_root": str(targets), "split": "val", "scale": 4}
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        dataset = DATASETS.build(spec)
    assert len(dataset) == 1 and dataset[0]["name"] == "tex2"
    assert caplog.messages == [
        f"skipping {targets / 'tex1.png'}, {inputs / 'tex1.png'} and {inputs / 'tex1x4.png'}: "
        "all match the name 'tex1'",
        f"skipping {targets / 'tex3.png'}: no file named like it in {inputs}",
    ]


def write_fake_cifar(root: Path) -> dict[str, np.ndarray]:
    """CIFAR-10 python batches holding 32x32 tiles of a real photo: 2 per train batch, 3 for test."""
    blocks = data.astronaut()[:128, :128].reshape(4, 32, 4, 32, 3)
    tiles = blocks.transpose(0, 2, 4, 1, 3).reshape(16, 3, 32, 32)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{n}": tiles[2 * n - 2 : 2 * n] for n in range(1, 6)}
    batches["test_batch"] = tiles[10:13]
    for name, images in batches.items():
        with (folder / name).open("wb") as file:
            pickle.dump({"data": images.reshape(len(images), -1), "labels": [0] * len(images)}, file)
    return batches


def test_cifar10_reads_python_batches(tmp_path: Path) -> None:
    batches = write_fake_cifar(tmp_path)
    train = DATASETS.build({"type": "cifar10", "root": str(tmp_path), "patch_size": 32, "scale": 2})
    val = DATASETS.build({"type": "cifar10", "root": str(tmp_path), "split": "val", "scale": 3})
    assert len(train) == 10 and len(val) == 3
    tiles = torch.from_numpy(np.concatenate([batches[f"data_batch_{n}"] for n in range(1, 6)]))
    for index in range(12):
        item = train[index]
        image = tiles[int(item["name"].split("_")[1])]
        assert any(torch.equal(to_uint8(item["target"]), s) for s in symmetries(image))
    assert val[2]["name"] == "val_00002"
    assert torch.equal(to_uint8(val[2]["target"]), torch.from_numpy(batches["test_batch"][2])[:, :30, :30])


def test_cifar10_missing_or_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.train\.download=true") as error:
        DATASETS.build({"type": "cifar10", "root": str(tmp_path), "split": "val"})
    assert "cifar-10-batches-py" in str(error.value)
    write_fake_cifar(tmp_path)
    broken = tmp_path / "cifar-10-batches-py" / "test_batch"
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable CIFAR-10 batch") as error:
        DATASETS.build({"type": "cifar10", "root": str(tmp_path), "split": "val"})
    assert str(broken) in str(error.value)


def test_builtin_photos_split_into_train_and_val() -> None:
    train = DATASETS.build({"type": "builtin", "patch_size": 48, "scale": 4})
    val = DATASETS.build({"type": "builtin", "split": "val", "scale": 4})
    assert len(train) == len(TRAIN_PHOTOS) == 6 and len(val) == len(VAL_PHOTOS) == 2
    train_names = {train[i]["name"] for i in range(len(train))}
    val_names = [val[i]["name"] for i in range(len(val))]
    assert train_names == {Path(name).stem for name in TRAIN_PHOTOS}
    assert val_names == ["chelsea", "coffee"] and not train_names & set(val_names)
    assert train[0]["target"].shape == (3, 48, 48)
    assert val[0]["target"].shape == (3, 300, 448) and val[1]["target"].shape == (3, 400, 600)
    chelsea = torch.from_numpy(data.chelsea()).permute(2, 0, 1)
    assert torch.equal(to_uint8(val[0]["target"]), chelsea[:, :, :448])
