"""``sr-toolkit data check|prepare ...``: look over a training folder, or cut it into a prepared set.

``check`` scans a folder (or an input folder with its targets) on all cores and reports what
training would use and skip; ``prepare`` cuts the photos into overlapping sub-images stored in one
LMDB file that the ``prepared`` dataset reads. ``sr-toolkit data ACTION --help`` gives each one's options.
"""

from __future__ import annotations

import argparse
import importlib

ACTIONS: dict[str, tuple[str, str]] = {
    "check": ("sr_toolkit.commands.data_check", "report what training would use and skip in a folder"),
    "prepare": ("sr_toolkit.commands.data_prepare", "cut a folder's photos into sub-images in one LMDB file"),
}
"""Action name -> (module with ``add_arguments(parser)`` and ``run(args) -> int``, one-line summary)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (module_name, summary) in ACTIONS.items():
        sub = actions.add_parser(name, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter)
        if argv[:1] == [name]:  # only the action that runs is imported: the others cost nothing
            module = importlib.import_module(module_name)
            sub.description = (module.__doc__ or "").replace("``", "")  # its literals as plain text
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(argv or []))
    return int(args.run(args))
