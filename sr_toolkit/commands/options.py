"""Command-line options that several commands share, spelled the same everywhere."""

from __future__ import annotations

import argparse


def add_plugins_option(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--plugins PLUGIN...``: plugin modules or ``.py`` files to import before the command runs
    (``purpose`` finishes the help line), as a recipe's ``plugins:`` list does for training."""
    parser.add_argument(
        "--plugins",
        nargs="+",
        default=[],
        metavar="PLUGIN",
        help=f"plugin modules or .py files to import first, {purpose}",
    )


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (``--scale``, ``--workers``), else a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value
