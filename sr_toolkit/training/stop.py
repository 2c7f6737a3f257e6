"""Clean stops: SIGINT and SIGTERM ask the training loop to stop instead of killing it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class StopRequested(Exception):
    """Raised by :class:`StopSignal` inside :meth:`StopSignal.abortable`; its message is the signal."""


class StopSignal:
    """Within its ``with`` block, SIGINT and SIGTERM ask the loop to stop instead of killing it.

    The first signal sets :attr:`requested` (and, inside :meth:`abortable`, raises
    :class:`StopRequested` to drop that work); a second raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.requested: str | None = None  # the first signal's name
        self.signum: int | None = None  # and its number
        self._abortable = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested, self.signum = signal.Signals(signum).name, signum
        if self._abortable:
            raise StopRequested(self.requested)

    @contextlib.contextmanager
    def abortable(self) -> Iterator[None]:
        """Work that the first signal may cut short (validation): nothing depends on its end."""
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False

    def __enter__(self) -> StopSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
