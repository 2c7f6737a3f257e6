"""``python -m sr_toolkit list [models|losses|degradations|datasets|metrics]``."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from sr_toolkit.errors import SrToolkitError
from sr_toolkit.registry import REGISTRIES


def list_components(kinds: list[str]) -> None:
    """Print every registered component of the given kinds, one a line."""
    table = Table("kind", "name", "plugin", "description", box=None, pad_edge=False)
    for plural in kinds:
        for entry in REGISTRIES[plural].entries():
            table.add_row(entry.kind, entry.name, entry.plugin, entry.summary)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


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
