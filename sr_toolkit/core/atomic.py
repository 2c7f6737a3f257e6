"""Atomic file writes: write beside the target, then rename, so a crash never leaves a torn file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask() -> int:
    """The process's file-creation mask (e.g. 0o022), read without changing it where the kernel
    reports it (``Umask:`` in /proc/self/status, Linux 4.7+); elsewhere it is set to 0o077 and back
    at once, so a file another thread creates in between is private rather than open to all."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits ``open()`` gives a new file under the current umask: 0o666 & ~umask
    (0o644 under umask 0o022, 0o600 under 0o077)."""
    return 0o666 & ~umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (created if missing) to write to; renamed onto ``path``
    when the block ends without error, removed when it raises (even on KeyboardInterrupt).

    The file gets the mode a new file gets under the umask (:func:`new_file_mode`), not the private
    0o600 of :func:`tempfile.mkstemp`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
