"""What training would make of a folder (or an input folder with its targets): the findings of
``sr-toolkit data check``, found by the rules the datasets use, without printing anything.

Every file is scanned by :func:`sr_toolkit.data.scan.scan` (on all cores, remembered in the index
that training reads too); the sources are built as ``image_folder`` (every image under the folder)
or ``paired_folder`` (:mod:`sr_toolkit.data.pairing` at the scale) builds them, and each is judged
by :func:`sr_toolkit.data.image_files.source_problem`, so the files said to be skipped are exactly
those training skips. Exact duplicates and the files' modes are reported but never skipped.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sr_toolkit.core.errors import DataError
from sr_toolkit.data import pairing
from sr_toolkit.data.image_files import (
    Source,
    TooSmall,
    cache_budget,
    folder_sources,
    input_size_problem,
    source_problem,
)
from sr_toolkit.data.patches import PatchDataset
from sr_toolkit.data.scan import FileRecord, scan

UNUSABLE = "unusable file"
TOO_SMALL = "too small"
INPUT_SIZE = "input size"
UNPAIRED_INPUT = "unpaired input"
UNPAIRED_TARGET = "unpaired target"
AMBIGUOUS = "ambiguous name"
DUPLICATE = "duplicate"
KINDS = (UNUSABLE, TOO_SMALL, INPUT_SIZE, UNPAIRED_INPUT, UNPAIRED_TARGET, AMBIGUOUS, DUPLICATE)
"""Every kind of problem, in the order a report lists them; all but :data:`DUPLICATE` are skipped."""

MODE_NAMES = {
    "1": "bilevel",
    "L": "gray",
    "LA": "gray + alpha",
    "La": "gray + alpha",
    "P": "palette",
    "PA": "palette + alpha",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "I": "gray",
    "I;16": "gray",
    "I;16L": "gray",
    "I;16B": "gray",
    "I;16N": "gray",
}
"""Pillow modes by what a person calls them; other modes (RGB, CMYK, YCbCr...) keep Pillow's name."""


@dataclass(frozen=True)
class Problem:
    """One finding: its kind (one of :data:`KINDS`), the files it concerns and one line saying
    what is wrong, naming them; ``skipped``: whether training leaves these files out."""

    kind: str
    files: tuple[Path, ...]
    message: str

    @property
    def skipped(self) -> bool:
        return self.kind != DUPLICATE


@dataclass(frozen=True)
class Sizes:
    """The sizes of one role's decodable files: their count, (min, median, max) width and height in
    pixels (the median of an even count is the mean of the middle two) and their total megapixels."""

    count: int
    width: tuple[int, float, int]
    height: tuple[int, float, int]
    megapixels: float


@dataclass(frozen=True)
class Findings:
    """What :func:`check_folder` found.

    ``files``: every file found (inputs and targets when paired), with its scan record;
    ``pairs``: pairs matched by name (None when not paired); ``problems`` in :data:`KINDS` order;
    ``sizes`` of each role's files (``"target"``, and ``"input"`` when paired; None when none
    decodes); ``modes``: how many decodable
    files have each mode (:func:`mode_name`); ``decoded_bytes``: the images training would use,
    decoded as uint8 RGB; ``budget``: what ``cache: auto`` lets them take, in bytes.
    """

    target_folder: Path
    input_folder: Path | None
    scale: int
    patch_size: int | None
    files: dict[Path, FileRecord]
    pairs: int | None
    problems: tuple[Problem, ...]
    sizes: dict[str, Sizes | None]
    modes: dict[str, int]
    decoded_bytes: int
    budget: int

    @property
    def usable(self) -> int:
        """How many files decode."""
        return sum(record.usable for record in self.files.values())

    @property
    def skipped(self) -> list[Path]:
        """The files training would leave out, sorted."""
        return sorted({path for problem in self.problems if problem.skipped for path in problem.files})

    def count(self, kind: str) -> int:
        """How many problems of ``kind`` there are (for duplicates and ambiguous names: groups)."""
        return sum(problem.kind == kind for problem in self.problems)


def mode_name(record: FileRecord) -> str:
    """What a decodable file holds, by name: ``gray``, ``gray + alpha``, ``RGB``, ``RGBA``,
    ``palette``, ``bilevel``, ``CMYK``..., after ``16-bit`` when it has 16 bits per sample."""
    name = MODE_NAMES.get(record.mode, record.mode)
    return f"16-bit {name}" if record.bits == 16 else name


def too_small_rule(scale: int, patch_size: int | None) -> TooSmall:
    """The training datasets' ``too_small(height, width)`` for crops of ``patch_size`` at ``scale``
    (None: whole images, as a validation set). Raises DataError, as a dataset's ValueError, for a
    scale below 1 or a patch size that is not a positive multiple of the scale."""
    try:
        return PatchDataset("train" if patch_size else "val", patch_size, False, 0, scale).too_small
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def check_folder(
    target_folder: Path,
    input_folder: Path | None = None,
    scale: int = 1,
    patch_size: int | None = None,
    workers: int | None = None,
) -> Findings:
    """The findings on ``target_folder``'s images as ``image_folder`` reads them or, with an
    ``input_folder``, on the pairs ``paired_folder`` makes of the two at ``scale``; files scanned by
    ``workers`` threads (default: every CPU). Raises DataError for a missing folder, a folder without
    images, a bad scale or patch size (see :func:`too_small_rule`) or a worker count below 1."""
    too_small = too_small_rule(scale, patch_size)
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    problems: list[Problem] = []
    if input_folder is None:
        sources: list[Source] = folder_sources(target_folder)
        by_role = {"target": [files["target"] for _, files in sources]}
        pairs = None
    else:
        inputs, targets = pairing.images(input_folder, "input"), pairing.images(target_folder, "target")
        by_role = {"input": list(inputs.values()), "target": list(targets.values())}
        matched = pairing.pair(inputs, targets, scale)
        sources = [(name, {"input": source, "target": target}) for name, target, source in matched.pairs]
        pairs = len(sources)
        problems += [Problem(AMBIGUOUS, ambiguity.files, str(ambiguity)) for ambiguity in matched.ambiguous]
        problems += [_lone(UNPAIRED_INPUT, path, target_folder) for path in matched.lone_inputs]
        problems += [_lone(UNPAIRED_TARGET, path, input_folder) for path in matched.lone_targets]
    if not any(by_role.values()):
        raise DataError(f"{target_folder}: no image files (png, jpg, bmp, tif, webp) found")
    records = scan([path for paths in by_role.values() for path in paths], workers)
    kept: list[Source] = []
    for source in sources:
        problem = source_problem(source[1], records, scale, too_small)
        if problem is None:
            kept.append(source)
        else:
            problems.append(Problem(_kind(source[1], records, scale), tuple(source[1].values()), problem))
    problems += _duplicates(records)
    return Findings(
        target_folder=target_folder,
        input_folder=input_folder,
        scale=scale,
        patch_size=patch_size,
        files=records,
        pairs=pairs,
        problems=tuple(sorted(problems, key=lambda problem: KINDS.index(problem.kind))),
        sizes={role: _sizes([records[path] for path in paths]) for role, paths in by_role.items()},
        modes=dict(Counter(mode_name(record) for record in records.values() if record.usable).most_common()),
        decoded_bytes=sum(
            3 * records[path].width * records[path].height for _, files in kept for path in files.values()
        ),
        budget=cache_budget(),
    )


def _kind(files: dict[str, Path], records: dict[Path, FileRecord], scale: int) -> str:
    """Which rule a skipped source broke, in :func:`source_problem`'s order of precedence."""
    if not all(records[path].usable for path in files.values()):
        return UNUSABLE
    if "input" in files and input_size_problem(records[files["input"]], records[files["target"]], scale):
        return INPUT_SIZE
    return TOO_SMALL


def _lone(kind: str, path: Path, folder: Path) -> Problem:
    """An unpaired file: no file in the other role's ``folder`` is named like it."""
    return Problem(kind, (path,), f"{path}: no file named like it in {folder}")


def _duplicates(records: dict[Path, FileRecord]) -> list[Problem]:
    """One problem per group of files with the same bytes (unreadable files have no digest)."""
    groups: dict[str, list[Path]] = {}
    for path, record in records.items():
        if record.digest:
            groups.setdefault(record.digest, []).append(path)
    return [
        Problem(DUPLICATE, tuple(paths), f"{', '.join(map(str, paths))}: the same bytes")
        for paths in groups.values()
        if len(paths) > 1
    ]


def _sizes(records: list[FileRecord]) -> Sizes | None:
    """The :class:`Sizes` of the decodable ones of ``records``; None when none decodes."""
    usable = [record for record in records if record.usable]
    if not usable:
        return None
    widths, heights = [record.width for record in usable], [record.height for record in usable]
    return Sizes(
        count=len(usable),
        width=(min(widths), statistics.median(widths), max(widths)),
        height=(min(heights), statistics.median(heights), max(heights)),
        megapixels=sum(record.width * record.height for record in usable) / 1e6,
    )
