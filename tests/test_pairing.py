"""sr_toolkit.data.pairing: the one rule that matches LR inputs with their targets by file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_toolkit.data import pairing
from sr_toolkit.data.pairing import Ambiguity, images, match_key, pair, role_tag, scale_free_key


def files(*names: str) -> dict[str, Path]:
    """Relative names mapped to made-up paths, as :func:`pairing.images` gives them."""
    return {name: Path("/data") / name for name in names}


def matched(inputs: dict[str, Path], targets: dict[str, Path], scale: int) -> list[tuple[str, str]]:
    """(target name, input name) of every pair."""
    names = {path: name for name, path in inputs.items()}
    return [(name, names[source]) for name, _, source in pair(inputs, targets, scale).pairs]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("tex1.png", "tex1"),
        ("img_001.png", "img_001"),
        ("baby_LR.png", "baby"),
        ("baby_HR.png", "baby"),
        ("baby-LR.png", "baby"),
        ("Baby-hr.jpg", "baby"),
        ("baby.LR.png", "baby"),
        ("Baby_LR.PNG", "baby"),
        ("babyx4.png", "babyx4"),  # scale marks are left to scale_free_key
        ("baby_x4_LR.png", "baby_x4"),
        ("sub/Dir/Baby_HR.png", "sub/dir/baby"),
        ("img_001_SRF_4_HR.png", "img_001_srf_4"),
        ("img_001_SRF_4_LR.png", "img_001_srf_4"),
        ("flower.png", "flower"),
        ("_LR.png", "_lr"),  # a tag never takes the whole name
        ("sub/_hr.png", "sub/_hr"),
        ("baby__lr.png", "baby__lr"),  # nor follows a separator
        ("babylr.png", "babylr"),  # and needs one
    ],
)
def test_match_key(name: str, key: str) -> None:
    assert match_key(name) == key


@pytest.mark.parametrize(
    ("key", "scale", "expected"),
    [
        ("tex1x4", 4, "tex1"),
        ("img_001x4", 4, "img_001"),
        ("0801x4", 4, "0801"),
        ("baby_x4", 4, "baby"),
        ("baby-x4", 4, "baby"),
        ("baby.x4", 4, "baby"),
        ("babyx2", 2, "baby"),
        ("babyx3", 3, "baby"),
        ("sub/tex1x4", 4, "sub/tex1"),
        ("tex1x2", 4, None),  # another scale's mark is part of the name
        ("tex1x4", 2, None),
        ("tex1", 4, None),  # trailing digits are part of the name
        ("img_001", 4, None),
        ("x4", 4, None),  # a mark never takes the whole name
        ("sub/x4", 4, None),
        ("a__x4", 4, None),  # nor follows a separator
        ("tex1x44", 4, None),
    ],
)
def test_scale_free_key(key: str, scale: int, expected: str | None) -> None:
    assert scale_free_key(key, scale) == expected


def test_role_tag() -> None:
    assert [role_tag(name) for name in ("a_HR.png", "a-lr.png", "a.Lr.bmp", "a.png", "_lr.png")] == [
        "hr",
        "lr",
        "lr",
        None,
        None,
    ]


def test_names_ending_in_digits_pair_with_their_scale_marked_inputs() -> None:
    # paired_folder once stripped any 'x<digits>': tex1x4 and tex2x4 both became 'te'
    targets = files("tex1.png", "tex2.png", "img_001.png", "img_010.png")
    inputs = files("tex1x4.png", "tex2x4.png", "img_001x4.png", "img_010_x4.png")
    assert matched(inputs, targets, 4) == [
        ("img_001.png", "img_001x4.png"),
        ("img_010.png", "img_010_x4.png"),
        ("tex1.png", "tex1x4.png"),
        ("tex2.png", "tex2x4.png"),
    ]


def test_role_tags_separators_and_case() -> None:
    targets = files("baby_HR.png", "bird-HR.png", "butterfly.HR.png", "head_hr.png", "Woman.png")
    inputs = files("Baby_LR.PNG", "bird-lr.png", "butterfly.LR.png", "HEAD_X4.png", "woman_x4_LR.png")
    assert matched(inputs, targets, 4) == [
        ("Woman.png", "woman_x4_LR.png"),
        ("baby_HR.png", "Baby_LR.PNG"),
        ("bird-HR.png", "bird-lr.png"),
        ("butterfly.HR.png", "butterfly.LR.png"),
        ("head_hr.png", "HEAD_X4.png"),
    ]


def test_only_the_run_scale_mark_is_dropped() -> None:
    targets = files("tex1.png", "tex2.png")
    inputs = files("tex1x2.png", "tex2x4.png")
    result = pair(inputs, targets, 4)
    assert [(name, source.name) for name, _, source in result.pairs] == [("tex2.png", "tex2x4.png")]
    assert result.lone_inputs == (inputs["tex1x2.png"],)
    assert result.lone_targets == (targets["tex1.png"],)
    assert matched(inputs, targets, 2) == [("tex1.png", "tex1x2.png")]


def test_an_input_named_like_a_target_keeps_its_own_name() -> None:
    # 'box4' at scale 4 ends in the mark x4, but a target of that very name exists
    targets = files("bo.png", "box4.png")
    inputs = files("box4.png")
    result = pair(inputs, targets, 4)
    assert [(name, source.name) for name, _, source in result.pairs] == [("box4.png", "box4.png")]
    assert result.lone_targets == (targets["bo.png"],) and not result.ambiguous
    assert matched(inputs, files("bo.png"), 4) == [("bo.png", "box4.png")]


def test_sub_folders_are_part_of_the_name() -> None:
    targets = files("a/1.png", "b/1.png")
    inputs = files("a/1x4.png", "b/1_LR.png", "1x4.png")
    result = pair(inputs, targets, 4)
    assert [(name, str(source)) for name, _, source in result.pairs] == [
        ("a/1.png", "/data/a/1x4.png"),
        ("b/1.png", "/data/b/1_LR.png"),
    ]
    assert result.lone_inputs == (inputs["1x4.png"],) and not result.ambiguous


def test_two_inputs_for_one_target_are_ambiguous() -> None:
    targets = files("tex1.png", "tex2.png")
    inputs = files("tex1.png", "tex1x4.png", "tex2x4.png")
    result = pair(inputs, targets, 4)
    assert [name for name, _, _ in result.pairs] == ["tex2.png"]
    assert result.ambiguous == (Ambiguity("tex1", (targets["tex1.png"], inputs["tex1.png"], inputs["tex1x4.png"])),)
    assert str(result.ambiguous[0]) == (
        "/data/tex1.png, /data/tex1.png and /data/tex1x4.png: all match the name 'tex1'"
    )
    assert not result.lone_inputs and not result.lone_targets


def test_two_targets_with_one_name_are_ambiguous() -> None:
    targets = files("Baby.png", "baby_HR.png", "bird.png")
    inputs = files("bird_LR.png")
    result = pair(inputs, targets, 2)
    assert [name for name, _, _ in result.pairs] == ["bird.png"]
    assert str(result.ambiguous[0]) == "/data/Baby.png and /data/baby_HR.png: both match the name 'baby'"
    assert not result.lone_targets


def test_one_folder_holding_both_roles(tmp_path: Path) -> None:
    # SelfExSR's Set5: HR and LR images side by side
    for name in (
        "img_001_SRF_4_HR.png",
        "img_001_SRF_4_LR.png",
        "img_002_SRF_4_HR.png",
        "img_002_SRF_4_LR.png",
        "notes.png",
        "sub/img_003_SRF_4_HR.png",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert list(images(tmp_path, "target")) == [
        "img_001_SRF_4_HR.png",
        "img_002_SRF_4_HR.png",
        "notes.png",
        "sub/img_003_SRF_4_HR.png",
    ]
    assert list(images(tmp_path, "input")) == ["img_001_SRF_4_LR.png", "img_002_SRF_4_LR.png", "notes.png"]
    result = pair(images(tmp_path, "input"), images(tmp_path, "target"), 4)
    assert [(name, source.name) for name, _, source in result.pairs] == [
        ("img_001_SRF_4_HR.png", "img_001_SRF_4_LR.png"),
        ("img_002_SRF_4_HR.png", "img_002_SRF_4_LR.png"),
        ("notes.png", "notes.png"),
    ]
    assert result.lone_targets == (tmp_path / "sub/img_003_SRF_4_HR.png",)
    # a folder with no tag of the role's own keeps every file
    lr = tmp_path / "lr"
    lr.mkdir()
    (lr / "a_HR.png").touch()
    assert list(images(lr, "input")) == ["a_HR.png"]


@pytest.mark.parametrize("scale", [0, -2, 1.5])
def test_bad_scale_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="scale: expected a positive integer"):
        pairing.pair(files("a.png"), files("a.png"), scale)  # type: ignore[arg-type]
