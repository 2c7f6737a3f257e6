"""``sr-toolkit COMMAND [ARGS...]``, also ``python -m sr_toolkit COMMAND [ARGS...]``.

Each command is a module of ``sr_toolkit.commands`` with a ``main(argv) -> int``, imported only when
it runs: ``sr-toolkit --version`` imports nothing heavy. ``sr-toolkit COMMAND --help`` gives a
command's options; the exit status follows one rule for all (``sr_toolkit.commands.exit_codes``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence

from sr_toolkit import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sr_toolkit.commands.train", "train a model from a recipe file or a shipped recipe's name"),
    "eval": ("sr_toolkit.commands.eval", "score models and interpolation baselines on a folder of images"),
    "upscale": ("sr_toolkit.commands.upscale", "upscale or restore images with a trained model"),
    "export": ("sr_toolkit.commands.export", "export a trained model to ONNX"),
    "data": ("sr_toolkit.commands.data", "check a training folder, or prepare it as sub-images for fast reading"),
    "list": ("sr_toolkit.commands.list", "list registered components, or one's arguments"),
    "schema": ("sr_toolkit.commands.schema", "print the recipe schema as JSON Schema"),
}
"""Command name -> (module with ``main(argv) -> int``, one-line summary)."""

PROG = "sr-toolkit"


def top_parser() -> argparse.ArgumentParser:
    """The parser of what comes before a command: ``--help``, ``--version``."""
    summaries = "\n".join(f"  {name:<9}{summary}" for name, (_, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [--version] COMMAND [ARGS...]",
        description=f"commands:\n{summaries}",
        epilog=f"{PROG} COMMAND --help: that command's arguments",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


def run_command(name: str, argv: Sequence[str]) -> int:
    """Import command ``name``'s module and run its ``main``; its usage lines read ``sr-toolkit NAME``."""
    module = importlib.import_module(COMMANDS[name][0])
    saved = sys.argv
    sys.argv = [f"{PROG} {name}", *argv]  # argparse names the program after argv[0]
    try:
        return int(module.main(list(argv)))
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command that ``argv`` (default: the command line) names with the arguments after it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    parser = top_parser()
    word = parser.parse_args(argv[:1]).command  # --help and --version exit here
    if word is None:
        parser.error(f"a command is needed: {', '.join(COMMANDS)}")
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    parser.error(
        f"unknown command '{word}'"
        + (f" (did you mean {close[0]}?)" if close else "")
        + f"; commands: {', '.join(COMMANDS)}"
    )


if __name__ == "__main__":
    sys.exit(main())
