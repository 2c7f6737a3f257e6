"""``paired_folder``: low-resolution inputs and their targets in two folders, matched by file name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from sr_toolkit.errors import DataError
from sr_toolkit.imageio import list_images
from sr_toolkit.registry import DATASETS
from sr_toolkit_plugins.datasets._files import FileDataset, Source, relative_name, skip
from sr_toolkit_plugins.datasets._patches import Split

_RESOLUTION_TAG = re.compile(r"(?:[_\-.](?:lr|hr)|[_\-.]?x\d+)$", re.IGNORECASE)


def match_key(path: Path) -> str:
    """The name an input and its target share: the stem, lower-cased, without trailing resolution tags.

    Tags are ``_lr``/``_hr`` (also after '-' or '.') and ``x4``-style scale marks, removed repeatedly
    from the end: ``baby_LR``, ``baby_HR`` and ``babyx4`` all give ``baby``; ``0801x4`` gives ``0801``.
    """
    key = path.stem.lower()
    while (stripped := _RESOLUTION_TAG.sub("", key)) not in (key, ""):
        key = stripped
    return key


def _by_key(paths: list[Path]) -> dict[str, Path]:
    """Files by match key; files that share a key with another are skipped with a warning."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(match_key(path), []).append(path)
    for key, group in groups.items():
        if len(group) > 1:
            for path in group:
                skip(f"{path}: ambiguous, {len(group)} files in its folder match the name '{key}'")
    return {key: group[0] for key, group in groups.items() if len(group) == 1}


@DATASETS.register("paired_folder")
class PairedFolder(FileDataset):
    """Inputs and targets from two folders, matched by name (``baby_LR.png`` with ``baby_HR.png``).

    Files are matched by :func:`match_key` (sub-folders are ignored); unmatched files are skipped with
    a warning each. An input must be its target's size divided by ``scale`` (after cutting the target
    to a multiple of ``scale``); the input crop is ``patch_size // scale`` at the matching position.
    Items are ``{"input", "target", "name"}``, the name being the target's path without suffix.
    """

    def __init__(
        self,
        input_root: str,
        target_root: str,
        split: Split = "train",
        patch_size: Optional[int] = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        cache: bool = True,
    ) -> None:
        input_folder, target_folder = Path(input_root).expanduser(), Path(target_root).expanduser()
        inputs, targets = _by_key(list_images(input_folder)), _by_key(list_images(target_folder))
        for key in sorted(inputs.keys() ^ targets.keys()):
            path, other = (inputs[key], target_folder) if key in inputs else (targets[key], input_folder)
            skip(f"{path}: no file named like it in {other}")
        sources: list[Source] = [
            (relative_name(targets[key], target_folder), {"input": inputs[key], "target": targets[key]})
            for key in sorted(inputs.keys() & targets.keys(), key=lambda key: targets[key])
        ]
        if not sources:
            raise DataError(f"no input in {input_folder} matches a target in {target_folder} by name")
        where = f"{input_folder} with {target_folder}"
        super().__init__(sources, where, split, patch_size, augment, seed, scale, cache)
