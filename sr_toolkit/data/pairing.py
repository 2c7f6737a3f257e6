"""Low-resolution inputs matched with their targets by file name: the one rule of the
``paired_folder`` dataset and of ``tools/eval.py --lr``.

A file is named by its path relative to its folder (``sub/Baby_LR.png``). The rule:

1. Its **key** is that path without the file suffix, lower-cased, less one role tag at the end of
   the file name: ``_hr``, ``_lr``, ``-hr``, ``-lr``, ``.hr`` or ``.lr`` (``sub/baby``). Sub-folders
   are part of the key: ``a/1.png`` and ``b/1.png`` are different images.
2. A target is found by its key. An input is found by its key or, when no target has that key, by
   its key less the run's scale mark: ``x4`` at scale 4, alone or after ``_``, ``-`` or ``.``
   (``babyx4``, ``baby_x4_LR``, ``0801-x4`` and ``tex1x4`` give ``baby``, ``baby``, ``0801`` and
   ``tex1``). Any other ending is part of the name: another scale's mark (``tex1x2`` at scale 4)
   and trailing digits (``img_001``, ``tex1``). A tag never takes a whole file name (``x4.png`` has
   the key ``x4``, ``_LR.png`` the key ``_lr``), nor follows a separator (``a__x4`` keeps its mark).
3. A key that more than one target has, or that more than one input finds, is ambiguous: none of
   its files is paired, and the caller reports them together (:class:`Ambiguity`).
4. One folder can hold both roles, as SelfExSR's benchmark folders do (``img_001_SRF_4_HR.png`` next
   to ``img_001_SRF_4_LR.png``): when any file under it has its role's tag (``_hr`` for targets,
   ``_lr`` for inputs, after any separator above), the files with the other role's tag are left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from sr_toolkit.core.imageio import list_images

Role = Literal["input", "target"]
ROLE_TAGS: dict[str, str] = {"input": "lr", "target": "hr"}
"""The tag that marks each role's files (``baby_LR.png`` is an input, ``baby_HR.png`` a target)."""

# A tag must follow a character of the file name that is not itself a separator.
_AFTER_NAME = r"(?<=[^/_.\-])"
_ROLE_TAG = re.compile(_AFTER_NAME + r"[_.\-](hr|lr)$")


def _stem(name: str) -> str:
    """``name`` (a relative path with '/' separators) without its file suffix, lower-cased."""
    return PurePosixPath(name).with_suffix("").as_posix().lower()


def role_tag(name: str) -> str | None:
    """``"hr"`` or ``"lr"`` when the file name ends in that role tag (rule 1), else None."""
    found = _ROLE_TAG.search(_stem(name))
    return found.group(1) if found else None


def match_key(name: str) -> str:
    """The key of a relative path (rule 1): ``sub/Baby_LR.png`` gives ``sub/baby``."""
    return _ROLE_TAG.sub("", _stem(name))


def _check_scale(scale: int) -> int:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    return int(scale)


def scale_free_key(key: str, scale: int) -> str | None:
    """``key`` less its trailing scale mark for ``scale`` (rule 2: ``babyx4`` at 4 gives ``baby``),
    or None when it has none. Raises ValueError for a scale that is not a positive integer."""
    stripped = re.sub(_AFTER_NAME + rf"[_.\-]?x{_check_scale(scale)}$", "", key)
    return None if stripped == key else stripped


def images(root: Path, role: Role) -> dict[str, Path]:
    """Image files under ``root`` (recursive, sorted) by path relative to it, less the other role's
    files in a folder that holds both (rule 4). Raises DataError when ``root`` is not a folder."""
    found = {path.relative_to(root).as_posix(): path for path in list_images(root)}
    tags = {name: role_tag(name) for name in found}
    own = ROLE_TAGS[role]
    if own not in tags.values():
        return found
    return {name: path for name, path in found.items() if tags[name] in (own, None)}


@dataclass(frozen=True)
class Ambiguity:
    """Files that share one key (rule 3): the targets that have it, then the inputs that find it."""

    key: str
    files: tuple[Path, ...]

    def __str__(self) -> str:
        names = [str(path) for path in self.files]
        every = "both" if len(names) == 2 else "all"
        return f"{', '.join(names[:-1])} and {names[-1]}: {every} match the name '{self.key}'"


@dataclass(frozen=True)
class Pairing:
    """What :func:`pair` found: ``pairs`` as (target name, target, input), sorted by target name;
    the ambiguous keys; the targets no input finds and the inputs that find no target."""

    pairs: tuple[tuple[str, Path, Path], ...]
    ambiguous: tuple[Ambiguity, ...]
    lone_targets: tuple[Path, ...]
    lone_inputs: tuple[Path, ...]

    @property
    def file_count(self) -> int:
        """How many files the pairing saw: both files of each pair, the ambiguous ones and the lone ones."""
        ambiguous = sum(len(ambiguity.files) for ambiguity in self.ambiguous)
        return 2 * len(self.pairs) + ambiguous + len(self.lone_targets) + len(self.lone_inputs)


def pair(inputs: Mapping[str, Path], targets: Mapping[str, Path], scale: int) -> Pairing:
    """Match ``inputs`` with ``targets`` (files by relative name, as :func:`images` gives them) by
    the rule above at ``scale``. Raises ValueError for a scale that is not a positive integer."""
    _check_scale(scale)
    targets_by_key: dict[str, list[str]] = {}
    for name in sorted(targets):  # so the pairs come out sorted by target name
        targets_by_key.setdefault(match_key(name), []).append(name)
    inputs_by_key: dict[str, list[Path]] = {}
    lone_inputs: list[Path] = []
    for name in sorted(inputs):
        key = match_key(name)
        if key not in targets_by_key:
            key = scale_free_key(key, scale) or key
        if key in targets_by_key:
            inputs_by_key.setdefault(key, []).append(inputs[name])
        else:
            lone_inputs.append(inputs[name])
    pairs: list[tuple[str, Path, Path]] = []
    ambiguous: list[Ambiguity] = []
    lone_targets: list[Path] = []
    for key, names in targets_by_key.items():
        found = inputs_by_key.get(key, [])
        if len(names) > 1 or len(found) > 1:
            ambiguous.append(Ambiguity(key, (*(targets[name] for name in names), *found)))
        elif found:
            pairs.append((names[0], targets[names[0]], found[0]))
        else:
            lone_targets.append(targets[names[0]])
    return Pairing(tuple(pairs), tuple(ambiguous), tuple(lone_targets), tuple(lone_inputs))
