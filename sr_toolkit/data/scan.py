"""Every image file decoded once, on all cores, and remembered: what a dataset or ``data check`` knows of a file.

:func:`scan` gives each file's :class:`FileRecord` (its size and modification time, a digest of its
bytes, its upright image size, mode and bit depth, or why it cannot be used). A full decode is the only
sure way to find truncated files, and a 2040x1350 PNG takes about 0.1 s, so the records are kept in an
index, one JSON file per folder under :func:`cache_dir`: a second start, a resumed run and the other
processes of a distributed run read it instead of decoding again, and only files added or changed
since (another size or modification time) are decoded. The index is written atomically and, during
a long scan, every :data:`SAVE_EVERY` seconds, so an interrupted scan keeps what it did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.errors import DataError
from sr_toolkit.core.imageio import inspect_image

log = logging.getLogger("sr_toolkit")

INDEX_VERSION = 1
"""Bumped whenever what a record holds or how it is found changes: older index files are ignored."""

SAVE_EVERY = 30.0
"""Seconds between two writes of the index during a scan."""

PROGRESS_FROM = 64
"""A scan of at least this many files shows a progress bar (on a terminal) or logs its rate."""

CACHE_ENV = "SR_TOOLKIT_CACHE_DIR"


@dataclass(frozen=True)
class FileRecord:
    """One file as a full decode found it.

    ``size`` in bytes and ``mtime_ns`` identify the version decoded; ``digest`` is the BLAKE2b-128
    hex digest of its bytes (equal digests: exact duplicates); ``width``, ``height`` in pixels after
    the EXIF orientation, ``mode`` Pillow's (``RGB``, ``L``, ``RGBA``, ``P``, ``I;16``, ``CMYK``...)
    and ``bits`` per sample (8 or 16) when it decodes; otherwise ``problem`` says why (one line,
    without the path) and the image fields are 0 and empty.
    """

    size: int
    mtime_ns: int
    digest: str
    width: int = 0
    height: int = 0
    mode: str = ""
    bits: int = 0
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None


def cache_dir() -> Path:
    """Where sr-toolkit keeps what it can compute again: ``$SR_TOOLKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/sr_toolkit``, else ``~/.cache/sr_toolkit``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sr_toolkit"


def index_file(folder: Path) -> Path:
    """The index file of the images directly in ``folder`` (named by a digest of its absolute path)."""
    key = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=10).hexdigest()
    return cache_dir() / "index" / f"{key}.json"


def default_workers() -> int:
    """Threads for a scan: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_file(path: Path) -> FileRecord:
    """Read and fully decode one file (any failure is the record's ``problem``, never raised)."""
    try:
        stat = path.stat()
    except OSError as exc:
        return FileRecord(0, 0, "", problem=f"cannot be read ({exc.strerror or exc})")
    try:
        digest = _digest(path)
        info = inspect_image(path)
    except DataError as exc:
        return FileRecord(stat.st_size, stat.st_mtime_ns, "", problem=_without_path(str(exc), path))
    except OSError as exc:
        return FileRecord(stat.st_size, stat.st_mtime_ns, "", problem=f"cannot be read ({exc.strerror or exc})")
    return FileRecord(stat.st_size, stat.st_mtime_ns, digest, info.width, info.height, info.mode, info.bits)


def scan(paths: Sequence[Path], workers: int | None = None, what: str = "images") -> dict[Path, FileRecord]:
    """The record of every file in ``paths``: from the index where the file is unchanged, otherwise
    decoded now by ``workers`` threads (default: :func:`default_workers`), then remembered.

    ``what`` names the files in the progress bar and the log line. Nothing is raised for a bad
    file: its record says what is wrong. An index that cannot be read is ignored (and rewritten);
    one that cannot be written costs only the next start's time (one warning).
    """
    indexes = {folder: _Index.load(folder) for folder in {path.parent for path in paths}}
    records: dict[Path, FileRecord] = {}
    stale: list[Path] = []
    for path in paths:
        known = indexes[path.parent].fresh(path)
        if known is None:
            stale.append(path)
        else:
            records[path] = known
    if not stale:
        if paths:
            log.info("data: %d %s known from the index, none to decode", len(paths), what)
        return records
    start = time.perf_counter()
    try:
        for path, record in _checked(stale, workers or default_workers(), what):
            records[path] = record
            indexes[path.parent].add(path, record)
    finally:
        for index in indexes.values():
            index.save()
    seconds = time.perf_counter() - start
    log.info(
        "data: decoded %d %s in %.1f s (%.0f/s); %d known from the index in %s",
        len(stale),
        what,
        seconds,
        len(stale) / max(seconds, 1e-9),
        len(paths) - len(stale),
        cache_dir() / "index",
    )
    return records


def _checked(paths: list[Path], workers: int, what: str) -> Iterator[tuple[Path, FileRecord]]:
    """(path, record) for each path, checked in ``workers`` threads, with a progress bar on a terminal
    when there are many; the indexes are saved every :data:`SAVE_EVERY` seconds by the caller's loop."""
    show = len(paths) >= PROGRESS_FROM and sys.stderr.isatty()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with progress(show, len(paths), f"checking {what}") as advance:
            for path, record in zip(paths, pool.map(check_file, paths)):
                advance()
                yield path, record
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: the files not yet started are not decoded


@contextmanager
def progress(show: bool, total: int, label: str) -> Iterator[Callable[[], None]]:
    """A function advancing a rich progress bar (``label``, done / ``total``) when ``show``; else one doing nothing."""
    if not show:
        yield lambda: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("", total=total)
        yield lambda: progress.advance(task)


class _Index:
    """The remembered records of one folder's files, by file name; saved only when it changed."""

    def __init__(self, folder: Path, entries: dict[str, list]) -> None:
        self.folder, self.entries = folder, entries
        self.changed = False
        self.saved_at = time.monotonic()

    @classmethod
    def load(cls, folder: Path) -> _Index:
        try:
            stored = json.loads(index_file(folder).read_text())
            entries = stored["files"] if stored.get("version") == INDEX_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            entries = {}
        return cls(folder, entries)

    def fresh(self, path: Path) -> FileRecord | None:
        """The record of ``path`` when its size and modification time are those recorded."""
        entry = self.entries.get(path.name)
        if entry is None:
            return None
        try:
            stat = path.stat()
            record = FileRecord(*entry)
        except (OSError, TypeError):
            return None
        return record if (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns) else None

    def add(self, path: Path, record: FileRecord) -> None:
        self.entries[path.name] = list(astuple(record))
        self.changed = True
        if time.monotonic() - self.saved_at > SAVE_EVERY:
            self.save()

    def save(self) -> None:
        if not self.changed:
            return
        target = index_file(self.folder)
        try:
            with atomic_path(target) as temporary:
                document = {"version": INDEX_VERSION, "folder": str(self.folder.resolve()), "files": self.entries}
                temporary.write_text(json.dumps(document, separators=(",", ":")))
        except OSError as exc:
            log.warning("data: could not write the scan index %s (%s); the next start scans again", target, exc)
        self.changed = False
        self.saved_at = time.monotonic()


def _digest(path: Path) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _without_path(message: str, path: Path) -> str:
    """A DataError's message less its leading ``"<path>: "``."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
