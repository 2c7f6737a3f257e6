"""The one rule for every command's exit status, and the decorator that applies it.

====== ==========================================================================================
0      done
1      ran, but the outcome is a failure: training diverged (NaN loss), an ``upscale`` input failed
       while the others completed, an ONNX export that onnxruntime cannot run or that does not match
       PyTorch; also Python's own status for an unexpected error (a traceback: a bug to report)
2      bad input: a recipe, argument, model file or data the command cannot use, said in one
       ``error:`` line (argparse's usage errors are 2 as well)
128+N  stopped by signal N after saving, resumable: ``train`` on Ctrl-C (130) or SIGTERM (143)
130    interrupted at once: a second Ctrl-C, or one before the work started
====== ==========================================================================================

Commands raise :class:`~sr_toolkit.core.errors.SrToolkitError` (or :class:`CommandFailed`) and
return one of the constants here; :func:`exit_status` turns what they raise into the line and the code.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import ParamSpec

from sr_toolkit.core.errors import SrToolkitError, TrainingDiverged

OK = 0
FAILED = 1
BAD_INPUT = 2


def stopped_by_signal(signum: int) -> int:
    """The status of a command that saved its work and stopped on signal ``signum``: as a killed process's."""
    return 128 + signum


INTERRUPTED = stopped_by_signal(signal.SIGINT)


class CommandFailed(SrToolkitError):
    """The command ran to its end, but its outcome is a failure (exit status 1, not 2)."""


FAILURES: tuple[type[SrToolkitError], ...] = (TrainingDiverged, CommandFailed)
"""Errors that mean a failed outcome (status 1); every other SrToolkitError is bad input (status 2)."""

P = ParamSpec("P")


def exit_status(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a command's ``main``: an :class:`SrToolkitError` becomes one ``error:`` line on stderr and
    status 1 or 2 (see :data:`FAILURES`), Ctrl-C one ``interrupted:`` line and status 130."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except SrToolkitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return FAILED if isinstance(exc, FAILURES) else BAD_INPUT
        except KeyboardInterrupt:
            print("interrupted: stopped at once", file=sys.stderr)
            return INTERRUPTED

    return run
