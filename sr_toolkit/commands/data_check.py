"""``sr-toolkit data check DIR [--input LR_DIR --scale N] [--patch-size P]``: what training would
use and skip in a folder, found by the rules the datasets use.

DIR is read as the ``image_folder`` dataset reads it (every image under it) or, with ``--input``, as
the targets that ``paired_folder`` matches with the inputs in LR_DIR by name at ``--scale``. Every
file is decoded once on all cores (a progress bar on a terminal) and remembered in the index that
training reads, so a second check, or training after it, decodes only what changed.

The report: how many files were found, how many decode and how many training would skip (and, paired,
the pairs and unmatched files); their sizes, modes and the memory their decoded pixels take against the budget of
``cache: auto``; then one line per problem: files that cannot be decoded (empty, truncated, not an
image), too small for ``--patch-size`` (or for the scale), inputs not their target's size divided by
the scale, unpaired files, names that match more than one file, and exact duplicates (a warning:
training uses them). On a terminal each kind shows its first 20 lines unless ``--list-all``.

Exit status: 0 when training would use every file, 1 when it would skip any, 2 for a bad argument or
a missing folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sr_toolkit.commands.exit_codes import FAILED, OK, exit_status
from sr_toolkit.commands.options import positive_int
from sr_toolkit.core.errors import DataError
from sr_toolkit.data.folder_check import AMBIGUOUS, KINDS, UNPAIRED_INPUT, UNPAIRED_TARGET, Findings, check_folder

SHOWN = 20
"""Lines of each kind of problem shown on a terminal without ``--list-all``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="the training images (the targets when paired)")
    parser.add_argument(
        "--input", type=Path, metavar="LR_DIR", help="the low-resolution inputs, paired with DIR's images by name"
    )
    parser.add_argument(
        "--scale",
        type=positive_int,
        metavar="N",
        help="the training scale: inputs are 1/N of their targets (needed with --input; default 1)",
    )
    parser.add_argument(
        "--patch-size",
        type=int,
        metavar="P",
        help="the training crop size, in target pixels: smaller images are skipped (default: whole images)",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="decoding threads (default: every CPU)")
    parser.add_argument("--list-all", action="store_true", help="every problem line, even on a terminal")


@exit_status
def run(args: argparse.Namespace) -> int:
    """Check the folder(s), print the report; OK when training would use every file, else FAILED."""
    if args.input is not None and args.scale is None:
        raise DataError("--input needs --scale: inputs are matched and sized at the training scale")
    findings = check_folder(args.folder, args.input, args.scale or 1, args.patch_size, args.workers)
    console = Console()
    report(findings, console, shown=None if args.list_all or not console.is_terminal else SHOWN)
    return FAILED if findings.skipped else OK


def report(findings: Findings, console: Console, shown: int | None) -> None:
    """Print the summary tables, then the problems by kind, ``shown`` lines of each (None: all)."""
    console.print(counts_table(findings))
    console.print(sizes_table(findings))
    console.print(Text(memory_line(findings)), soft_wrap=True)
    modes = ", ".join(f"{name} {count}" for name, count in findings.modes.items())
    console.print(Text(f"modes (training converts each to RGB): {modes or 'none'}"), soft_wrap=True)
    for kind in KINDS:
        problems = [problem for problem in findings.problems if problem.kind == kind]
        if not problems:
            continue
        heading = f"{kind}: {len(problems)}" + ("" if problems[0].skipped else " (training uses them)")
        console.print(Text(heading, style="bold"))
        for problem in problems[:shown]:
            console.print(Text(f"  {problem.message}"), soft_wrap=True)
        if shown is not None and len(problems) > shown:
            console.print(f"  ... and {len(problems) - shown} more (--list-all shows them)")
    skipped = len(findings.skipped)
    if skipped:
        console.print(f"training would skip {skipped} of {len(findings.files)} files")
    else:
        console.print(f"training would use all {len(findings.files)} files")


def counts_table(findings: Findings) -> Table:
    """Files found, decoding and skipped; with inputs, the pairs and unmatched files too."""
    table = Table("files", "count")
    rows = [
        ("found", len(findings.files)),
        ("decodable", findings.usable),
        ("training would skip", len(findings.skipped)),
    ]
    if findings.pairs is not None:
        rows += [
            ("pairs", findings.pairs),
            ("unpaired inputs", findings.count(UNPAIRED_INPUT)),
            ("unpaired targets", findings.count(UNPAIRED_TARGET)),
            ("ambiguous names", findings.count(AMBIGUOUS)),
        ]
    for what, count in rows:
        table.add_row(what, str(count))
    return table


def sizes_table(findings: Findings) -> Table:
    """Each role's decodable files: count, width and height (min / median / max) and megapixels."""
    table = Table("images", "count", "width min/median/max", "height min/median/max", "megapixels")
    for role, sizes in findings.sizes.items():
        if sizes is None:
            table.add_row(f"{role}s", "0", "-", "-", "-")
        else:
            width, height = ("/".join(f"{value:g}" for value in side) for side in (sizes.width, sizes.height))
            table.add_row(f"{role}s", str(sizes.count), width, height, f"{sizes.megapixels:.2f}")
    return table


def memory_line(findings: Findings) -> str:
    """The decoded size of the images training would use, against ``cache: auto``'s budget."""
    size, budget = findings.decoded_bytes / 2**30, findings.budget / 2**30
    if findings.decoded_bytes <= findings.budget:
        verdict = f"within cache: auto's budget ({budget:.1f} GiB): kept in memory"
    else:
        verdict = f"over cache: auto's budget ({budget:.1f} GiB): each draw decodes its file again"
    return f"decoded as uint8 RGB: {size:.2f} GiB, {verdict}"
