"""Train a model from a recipe: ``accelerate launch tools/train.py RECIPE [key.path=value ...]``.

Also runs as plain ``python tools/train.py ...``, as ``sr-toolkit train ...`` and as
``accelerate launch -m sr_toolkit train ...``. RECIPE is a file or the name of a shipped recipe
(``resnet_x4``, ``report/resnet_x4``). See the README for the recipe keys.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rich.logging import RichHandler

from sr_toolkit.commands.exit_codes import OK, exit_status, stopped_by_signal
from sr_toolkit.config.recipe import dump_recipe, load_recipe
from sr_toolkit.config.shipped import find_recipe


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "recipe",
        help="YAML recipe file, e.g. recipes/resnet_x4.yaml, or a shipped recipe's name: resnet_x4, report/resnet_x4",
    )
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. train.max_steps=20")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the latest checkpoint of the run folder, or from CHECKPOINT",
    )
    parser.add_argument("--print-recipe", action="store_true", help="print the resolved recipe and exit")
    return parser.parse_intermixed_args(resume_flag_last(sys.argv[1:] if argv is None else argv))


def resume_flag_last(argv: list[str]) -> list[str]:
    """``--resume train.max_time=20m``: the word after the flag is an override, not a checkpoint path
    (it has ``=`` and names no file), so move the bare flag to the end; overrides keep their order."""
    argv = list(argv)
    for index, word in enumerate(argv[:-1]):
        after = argv[index + 1]
        if word == "--resume" and "=" in after and not after.startswith("-") and not os.path.exists(after):
            return [*argv[:index], *argv[index + 1 :], "--resume"]
    return argv


def setup_logging(level: int) -> None:
    """Rich log lines on a terminal; off one (nohup, SLURM, ``> log``) plain lines with the time,
    each message on one line however long (rich would wrap at 80 columns and cut paths)."""
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def accelerate_defaults_note() -> str | None:
    """Under ``accelerate launch`` without an Accelerate config, the answer to the launcher's note on
    the defaults it used; else None."""
    if "ACCELERATE_DYNAMO_BACKEND" not in os.environ:
        return None
    from accelerate.commands.config.config_args import default_config_file

    if os.path.isfile(default_config_file):
        return None
    return (
        "accelerate launch found no Accelerate config, hence its note on defaults: they are right for one "
        "process; precision and CPU threads are chosen below from the recipe and the machine "
        "(`accelerate config default` saves the defaults and silences the note)"
    )


@exit_status
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)
    note = accelerate_defaults_note()
    if note and rank == 0:
        logging.getLogger("sr_toolkit").info("%s", note)
    recipe = load_recipe(find_recipe(args.recipe), args.overrides)
    if args.print_recipe:
        print(dump_recipe(recipe), end="")
        return OK
    from sr_toolkit.training.engine import Trainer  # heavy imports only when training

    trainer = Trainer(recipe, resume=args.resume)
    trainer.fit()
    if trainer.stopped_by is not None:  # saved and resumable, but not finished: as a killed process says
        return stopped_by_signal(trainer.stopped_by)
    return OK


if __name__ == "__main__":
    sys.exit(main())
