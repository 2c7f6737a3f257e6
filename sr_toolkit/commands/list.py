"""``sr-toolkit list [models|losses|degradations|datasets|metrics [NAME]]``: the registered components."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sr_toolkit.commands.exit_codes import OK, exit_status
from sr_toolkit.commands.options import add_plugins_option
from sr_toolkit.core.discovery import import_plugins
from sr_toolkit.core.registry import REGISTRIES, Parameter, parameters
from sr_toolkit.core.typecheck import describe


def list_components(kinds: list[str]) -> None:
    """Print every registered component of the given kinds, one a line, in aligned columns."""
    rows = [("kind", "name", "plugin", "description")]
    for plural in kinds:
        rows += [(e.kind, e.name, e.plugin, e.summary) for e in REGISTRIES[plural].entries()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[3]]))


def shown_default(param: Parameter) -> str:
    """An argument's default as a recipe writes it (JSON, which YAML reads: ``true``, ``null``,
    ``"direct"``, ``[0.5, 1.0]``), its repr when JSON cannot say it, or ``required``."""
    if param.required:
        return "required"
    try:
        return json.dumps(param.default)
    except (TypeError, ValueError):
        return repr(param.default)


def argument_table(accepted: dict[str, Parameter]) -> Table:
    """One row per argument: name, type hint (as recipe errors describe it), default."""
    table = Table("argument", "type", "default")
    for param in accepted.values():
        table.add_row(*(Text(cell) for cell in (param.name, describe(param.hint), shown_default(param))))
    return table


def show_component(plural: str, name: str, console: Console) -> None:
    """Print one component's first docstring line, then its arguments as a table.

    An unknown name raises :class:`~sr_toolkit.core.errors.RegistryError` naming close matches.
    """
    entry = REGISTRIES[plural].get(name)
    console.print(Text(f"{entry.kind} '{entry.name}' ({entry.plugin}): {entry.summary}"))
    accepted = parameters(entry.factory)
    console.print(argument_table(accepted) if accepted is not None else "takes any keyword arguments")


def run(args: argparse.Namespace) -> None:
    """Carry out the parsed command line (a name comes only after a kind)."""
    if args.name is None:
        list_components([args.kind] if args.kind else list(REGISTRIES))
    else:
        show_component(args.kind, args.name, Console())


@exit_status
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", nargs="?", choices=list(REGISTRIES), help="one kind (default: all)")
    parser.add_argument("name", nargs="?", help="one component: its arguments, types and defaults")
    add_plugins_option(parser, "to list their components too (after the kind and name)")
    args = parser.parse_args(argv)
    import_plugins(args.plugins)
    run(args)
    return OK
