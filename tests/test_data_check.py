"""``sr-toolkit data check``: its findings on small generated folders, its report and exit status,
and its agreement with what the ``image_folder`` and ``paired_folder`` datasets skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sr_toolkit.data.scan
from sr_toolkit.__main__ import main
from sr_toolkit.core.errors import DataError
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data import folder_check
from sr_toolkit.data.folder_check import check_folder
from sr_toolkit.data.image_files import relative_name

SCALE, PATCH = 2, 32


def write(path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0) -> Path:
    """A noise image of ``size`` (width, height) in ``mode`` at ``path`` (format by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 4), dtype=np.uint8), "RGBA").convert(mode).save(path)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Three good photos, gray, RGBA, 16-bit and JPEG ones, two byte-identical copies, and four
    files training skips: empty, truncated, text named .png, and one too small for the patch."""
    root = tmp_path / "mixed"
    for seed in range(3):
        write(root / f"good{seed}.png", seed=seed)
    write(root / "gray.png", mode="L", seed=3)
    write(root / "sub" / "rgba.png", mode="RGBA", seed=4)
    write(root / "deep.png", mode="I;16", seed=5)
    write(root / "photo.jpg", seed=6)
    shutil.copyfile(write(root / "copy_a.png", seed=7), root / "copy_b.png")
    write(root / "small.png", size=(16, 16), seed=8)
    (root / "empty.png").write_bytes(b"")
    whole = write(tmp_path / "whole.png", seed=9).read_bytes()
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "text.png").write_text("not an image")
    return root


@pytest.fixture
def paired(tmp_path: Path) -> tuple[Path, Path]:
    """(inputs, targets): ``a`` pairs well; ``b``'s input is the wrong size; ``c`` has no input,
    ``d`` no target; two inputs (``e``, ``e_x2``) find target ``e``."""
    inputs, targets = tmp_path / "lr", tmp_path / "hr"
    for seed, name in enumerate("abce"):
        write(targets / f"{name}.png", seed=seed)
    write(inputs / "a.png", size=(32, 24), seed=10)
    write(inputs / "b.png", size=(30, 24), seed=11)
    write(inputs / "d.png", size=(32, 24), seed=12)
    write(inputs / "e.png", size=(32, 24), seed=13)
    write(inputs / "e_x2.png", size=(32, 24), seed=14)
    return inputs, targets


def by_kind(findings: folder_check.Findings) -> dict[str, list[set[str]]]:
    """Each kind's problems, as the sets of file names they concern."""
    kinds: dict[str, list[set[str]]] = {}
    for problem in findings.problems:
        kinds.setdefault(problem.kind, []).append({path.name for path in problem.files})
        assert all(str(path) in problem.message for path in problem.files)
    return kinds


def test_findings_on_a_mixed_folder(mixed: Path) -> None:
    findings = check_folder(mixed, scale=SCALE, patch_size=PATCH, workers=2)
    assert len(findings.files) == 13 and findings.usable == 10 and findings.pairs is None
    assert by_kind(findings) == {
        folder_check.UNUSABLE: [{"empty.png"}, {"text.png"}, {"truncated.png"}],
        folder_check.TOO_SMALL: [{"small.png"}],
        folder_check.DUPLICATE: [{"copy_a.png", "copy_b.png"}],
    }
    assert [path.name for path in findings.skipped] == ["empty.png", "small.png", "text.png", "truncated.png"]
    assert findings.modes == {"RGB": 7, "gray": 1, "RGBA": 1, "16-bit gray": 1}
    sizes = findings.sizes["target"]
    assert sizes is not None and sizes.count == 10
    assert sizes.width == (16, 64, 64) and sizes.height == (16, 48, 48)
    assert sizes.megapixels == pytest.approx((9 * 64 * 48 + 16 * 16) / 1e6)
    assert findings.decoded_bytes == 9 * 3 * 64 * 48  # the images training keeps, as uint8 RGB


def test_findings_on_paired_folders(paired: tuple[Path, Path]) -> None:
    inputs, targets = paired
    findings = check_folder(targets, inputs, scale=SCALE, patch_size=PATCH)
    assert findings.pairs == 2 and len(findings.files) == 9
    kinds = by_kind(findings)
    assert kinds[folder_check.INPUT_SIZE] == [{"b.png"}]  # the input and its target, both named b.png
    assert kinds[folder_check.UNPAIRED_INPUT] == [{"d.png"}]
    assert kinds[folder_check.UNPAIRED_TARGET] == [{"c.png"}]
    assert kinds[folder_check.AMBIGUOUS] == [{"e.png", "e_x2.png"}]
    assert set(kinds) == {folder_check.INPUT_SIZE, folder_check.UNPAIRED_INPUT, folder_check.UNPAIRED_TARGET,
                          folder_check.AMBIGUOUS}  # fmt: skip
    kept = set(findings.files) - set(findings.skipped)
    assert kept == {inputs / "a.png", targets / "a.png"}


def test_bad_settings_and_folders_are_data_errors(mixed: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="positive multiple of scale"):
        check_folder(mixed, scale=3, patch_size=PATCH)
    with pytest.raises(DataError, match="folder not found"):
        check_folder(tmp_path / "missing")
    (tmp_path / "blank").mkdir()
    with pytest.raises(DataError, match="no image files"):
        check_folder(tmp_path / "blank")


def test_skips_agree_with_the_image_folder_dataset(mixed: Path) -> None:
    findings = check_folder(mixed, scale=SCALE, patch_size=PATCH)
    spec = {"type": "image_folder", "root": str(mixed), "split": "train", "patch_size": PATCH, "scale": SCALE}
    dataset = DATASETS.build(spec)
    kept = {relative_name(path, mixed) for path in set(findings.files) - set(findings.skipped)}
    assert {dataset.name(index) for index in range(len(dataset))} == kept


def test_skips_agree_with_the_paired_folder_dataset(paired: tuple[Path, Path]) -> None:
    inputs, targets = paired
    findings = check_folder(targets, inputs, scale=SCALE, patch_size=PATCH)
    spec = {"input_root": str(inputs), "target_root": str(targets), "patch_size": PATCH, "scale": SCALE}
    dataset = DATASETS.build({"type": "paired_folder", "split": "train", **spec})
    kept = {
        relative_name(path, targets) for path in set(findings.files) - set(findings.skipped) if path.parent == targets
    }
    assert {dataset.name(index) for index in range(len(dataset))} == kept == {"a"}


def test_a_second_check_decodes_nothing(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = check_folder(mixed, patch_size=PATCH)
    checked: list[Path] = []
    original = sr_toolkit.data.scan.check_file
    monkeypatch.setattr(sr_toolkit.data.scan, "check_file", lambda path: checked.append(path) or original(path))
    assert check_folder(mixed, patch_size=PATCH) == first and checked == []
    write(mixed / "good0.png", seed=20)  # another version of one file: only it is decoded again
    check_folder(mixed, patch_size=PATCH)
    assert checked == [mixed / "good0.png"]


def test_cli_clean_folder_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed in range(3):
        write(tmp_path / "clean" / f"{seed}.png", seed=seed)
    assert main(["data", "check", str(tmp_path / "clean"), "--patch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "training would use all 3 files" in out and "RGB 3" in out and "within cache: auto's budget" in out


def test_cli_bad_files_exit_1_naming_every_one(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(mixed), "--scale", "2", "--patch-size", "32", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    for name in ("empty.png", "text.png", "truncated.png", "small.png", "copy_a.png", "copy_b.png"):
        assert str(mixed / name) in out
    assert "too small (16x16) for patch_size 32" in out and "training would skip 4 of 13 files" in out


def test_cli_paired_reports_pairs(paired: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    inputs, targets = paired
    assert main(["data", "check", str(targets), "--input", str(inputs), "--scale", "2"]) == 1
    out = capsys.readouterr().out
    assert "input is 30x24, expected 32x24" in out and str(inputs / "d.png") in out and str(targets / "c.png") in out


def test_cli_long_lists_are_shortened_on_a_terminal(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sr_toolkit.commands import data_check

    findings = check_folder(mixed)
    console = data_check.Console(force_terminal=True, color_system=None, width=400)
    data_check.report(findings, console, shown=1)
    out = capsys.readouterr().out
    assert str(mixed / "empty.png") in out and str(mixed / "truncated.png") not in out and "... and 2 more" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing"], "folder not found"),
        (["{mixed}", "--input", "{mixed}"], "--input needs --scale"),
        (["{mixed}", "--patch-size", "33", "--scale", "2"], "positive multiple of scale"),
        (["{mixed}", "--workers", "0"], "workers must be at least 1"),
    ],
)
def test_cli_bad_input_exits_2(
    tmp_path: Path, mixed: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [arg.format(tmp=tmp_path, mixed=mixed) for arg in args]
    assert main(["data", "check", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_is_the_module_docstring_and_needs_no_other_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["data", "check", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: sr-toolkit data check ") and "--patch-size P" in out
    assert "Exit status: 0 when training would use every file" in out
