"""``python -m sr_toolkit list [models|losses|degradations|datasets|metrics]``."""

from __future__ import annotations

import argparse
import sys

from sr_toolkit.errors import SrToolkitError
from sr_toolkit.registry import REGISTRIES


def list_components(kinds: list[str]) -> None:
    """Print every registered component of the given kinds, one a line, in aligned columns."""
    rows = [("kind", "name", "plugin", "description")]
    for plural in kinds:
        rows += [(e.kind, e.name, e.plugin, e.summary) for e in REGISTRIES[plural].entries()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[3]]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr_toolkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list registered components")
    listing.add_argument("kind", nargs="?", choices=list(REGISTRIES), help="one kind (default: all)")
    args = parser.parse_args(argv)
    try:
        list_components([args.kind] if args.kind else list(REGISTRIES))
    except SrToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
