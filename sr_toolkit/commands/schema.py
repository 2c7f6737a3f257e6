"""Print the recipe schema as JSON Schema (draft 2020-12): ``sr-toolkit schema > recipe.schema.json``.

Editors that read JSON Schema then complete and check recipes; with the YAML language server, start a
recipe with ``# yaml-language-server: $schema=recipe.schema.json``. Components of installed plugins
are included; ``--plugins`` adds a recipe's own plugin modules or files. Also runs as
``python -m sr_toolkit.commands.schema``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sr_toolkit.commands.exit_codes import OK, exit_status
from sr_toolkit.commands.options import add_plugins_option
from sr_toolkit.config.json_schema import recipe_json_schema
from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.discovery import import_plugins
from sr_toolkit.core.errors import SrToolkitError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sr-toolkit schema", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the schema to FILE (default: stdout)")
    add_plugins_option(parser, "to describe their components too (a recipe's own plugins)")
    return parser.parse_args(argv)


def schema_text(plugins: list[str]) -> str:
    """The JSON Schema text, after importing ``plugins`` (module names, or ``.py`` paths from here)."""
    import_plugins(plugins)
    return json.dumps(recipe_json_schema(), indent=2) + "\n"


@exit_status
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = schema_text(args.plugins)
    if args.out is None:
        sys.stdout.write(text)
        return OK
    try:
        with atomic_path(args.out) as temporary:
            temporary.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SrToolkitError(f"cannot write {args.out}: {exc.strerror}") from exc
    return OK


if __name__ == "__main__":
    sys.exit(main())
