"""The local capture spool: records on disk within moments of receipt, never lost, never twice.

Layout under ``spool_dir``::

    open/<entity>_<yyyymmddTHHMMSSZ>_<seq>.csv.partial   the file being written (one per entity at most)
    closed/<entity>_<...>.csv                           complete files, waiting for the push
    outbox/<batch_id>/<file>.csv + manifest.json         files a push has claimed (see capture_push)
    pushed/<batch_id>/...                                pushed and verified, kept for the retention period
    state/<entity>.json                                  the checkpoint of each entity
    capture.lock, push.lock                              one capture, one push at a time

Write and commit protocol (``EntitySpool.append`` and ``EntitySpool.sync``):

1. each page's CSV rows are appended to the entity's open ``.partial`` file and flushed at once: the
   records are in the spool (and survive a crash of the process) within milliseconds of receipt;
2. at most ``sync_seconds`` later (0.5 s by default; at once with 0), a sync ``fsync``s the file and then
   replaces ``state/<entity>.json`` atomically (temp file, fsync, rename, fsync folder) with the cursor after
   the last page written, the open file's name and its length: the commit. A syncer thread runs it on time
   whatever the fetching thread is doing, so records are durable (power loss included) within a second.

The checkpoint is the truth. On restart (``EntitySpool.recover``) the open file is cut back to the committed
length (bytes written after the last commit belong to records that are fetched again from the saved
cursor), and ``.partial`` files the checkpoint does not name are deleted (opened, never committed). A file
is rotated (``rotate_bytes`` or ``rotate_seconds``) only after a commit that covers all of it: it is renamed
into ``closed/`` (folders fsynced) and the checkpoint then forgets it; a crash between the two finds it gone
from ``open/`` and knows it was closed. A kill -9 at any point therefore loses nothing committed and stores
nothing twice: every record lies in exactly one committed byte range, and records past the checkpoint are
discarded and fetched again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from headwater.errors import DataError, UsageError
from headwater.goodreads.capture_schema import Entity, csv_header
from headwater.manifest import fsync_dir, write_atomic

log = logging.getLogger(__name__)

PARTIAL = ".partial"
CHECKPOINT_VERSION = 1
FILE_NAME = re.compile(r"^(author|book|user|reviews)_(\d{8}T\d{6}Z)_(\d{6,})\.csv$")


def spool_file_name(entity: Entity, opened: datetime, seq: int) -> str:
    """``<entity>_<UTC yyyymmddTHHMMSSZ>_<seq>.csv``."""
    return f"{entity}_{opened.astimezone(UTC):%Y%m%dT%H%M%SZ}_{seq:06d}.csv"


def entity_of(name: str) -> Entity | None:
    """The entity a spool file name starts with, or None for a name that is not a spool file."""
    m = FILE_NAME.match(name)
    return Entity(m.group(1)) if m else None


@dataclass(frozen=True)
class SpoolLayout:
    """The folders of one spool."""

    root: Path

    @property
    def open(self) -> Path:
        return self.root / "open"

    @property
    def closed(self) -> Path:
        return self.root / "closed"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def pushed(self) -> Path:
        return self.root / "pushed"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def create(self) -> SpoolLayout:
        for folder in (self.open, self.closed, self.outbox, self.pushed, self.state):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def checkpoint_path(self, entity: Entity) -> Path:
        return self.state / f"{entity}.json"

    def closed_files(self) -> list[Path]:
        """Complete files waiting for a push, oldest name first."""
        if not self.closed.is_dir():
            return []
        return sorted(p for p in self.closed.iterdir() if p.is_file() and entity_of(p.name) is not None)

    def find_closed(self, name: str) -> Path | None:
        """Where a closed file went: ``closed/``, a batch in ``outbox/`` or in ``pushed/``; None if nowhere."""
        for candidate in (self.closed / name, *self.outbox.glob(f"*/{name}"), *self.pushed.glob(f"*/{name}")):
            if candidate.is_file():
                return candidate
        return None

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool, what: str) -> Iterator[None]:
        """Hold ``<root>/<name>.lock`` (released by the kernel even on kill -9). Without ``wait`` a held lock
        is a :class:`UsageError` naming ``what``."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{name}.lock"
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                raise UsageError(
                    f"{path}: another {what} is running on this spool; stop it first or use another spool_dir"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class OpenFile:
    """The file being written: its name, committed length (header included), rows and opening time."""

    name: str
    bytes: int
    rows: int
    opened_at: float


@dataclass(frozen=True)
class Checkpoint:
    """What is durably captured for one entity: the cursor to ask for next and where the data went."""

    entity: str
    cursor: str | None = None
    rows: int = 0
    next_seq: int = 1
    source: str | None = None
    open: OpenFile | None = None
    version: int = CHECKPOINT_VERSION

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode()

    @classmethod
    def read(cls, path: Path, entity: Entity) -> Checkpoint:
        if not path.exists():
            return cls(entity.value)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            opened = data.pop("open", None)
            return cls(**data, open=OpenFile(**opened) if opened else None)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a capture checkpoint ({exc}); move it away to start over") from exc


@dataclass
class Recovery:
    """What restarting an entity's spool found and fixed."""

    truncated_bytes: int = 0
    discarded_files: int = 0
    closed_by_crash: bool = False


class EntitySpool:
    """The append-only spool of one entity and its checkpoint. The fetching thread appends; a syncer thread
    may call :meth:`sync` at the same time (a lock keeps them apart)."""

    def __init__(
        self,
        layout: SpoolLayout,
        entity: Entity,
        *,
        rotate_bytes: int,
        rotate_seconds: float,
        sync_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self.entity = entity
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.sync_seconds = sync_seconds
        self._clock = clock
        self._path = layout.checkpoint_path(entity)
        self._lock = threading.RLock()
        self.checkpoint = Checkpoint(entity.value)
        self._fh: BinaryIO | None = None
        self._current: OpenFile | None = None  # the open file as written (committed or not)
        self._next_seq = 1
        self._pending_cursor: str | None = None
        self._pending_rows = 0
        self._last_sync = clock()
        self.files_closed = 0

    @property
    def cursor(self) -> str | None:
        """The cursor after the last committed page: where a restart resumes."""
        return self.checkpoint.cursor

    def recover(self, source: str | None) -> Recovery:
        """Load the checkpoint and put the files back in line with it (see the module docstring). ``source``
        is the API's fingerprint: a spool captured from other data refuses to continue."""
        layout = self.layout
        for leftover in layout.state.glob(f".{self._path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        cp = Checkpoint.read(self._path, self.entity)
        if source is not None and cp.source is not None and cp.source != source:
            raise UsageError(
                f"{layout.root}: {self.entity} was captured from source {cp.source}, the API now serves "
                f"{source}; use another spool_dir (cursors of one source mean nothing to another)"
            )
        found = Recovery()
        keep = f"{cp.open.name}{PARTIAL}" if cp.open else None
        for orphan in layout.open.glob(f"{self.entity}_*{PARTIAL}"):
            if orphan.name != keep:
                log.info("spool: deleting %s, opened but never committed", orphan)
                orphan.unlink()
                found.discarded_files += 1
        if cp.open is not None:
            partial = layout.open / f"{cp.open.name}{PARTIAL}"
            if partial.exists():
                size = partial.stat().st_size
                if size < cp.open.bytes:
                    raise DataError(
                        f"{partial}: {size} bytes on disk but {cp.open.bytes} committed; the spool lost data "
                        "that was fsynced (disk or file system fault); inspect it before capturing again"
                    )
                if size > cp.open.bytes:
                    with partial.open("r+b") as fh:
                        fh.truncate(cp.open.bytes)
                        os.fsync(fh.fileno())
                    found.truncated_bytes = size - cp.open.bytes
                self._fh = partial.open("ab")
                self._current = cp.open
            else:
                if layout.find_closed(cp.open.name) is None:
                    log.warning("spool: %s was closed and has left the spool since", cp.open.name)
                cp = replace(cp, open=None)
                write_atomic(self._path, cp.to_json())
                found.closed_by_crash = True
        if cp.source is None and source is not None:
            cp = replace(cp, source=source)
        self.checkpoint = cp
        self._next_seq = cp.next_seq
        fsync_dir(layout.open)
        return found

    def append(self, rows_csv: bytes, rows: int, next_cursor: str) -> None:
        """Write ``rows`` records (CSV rows without header) and flush them; commit when a sync is due (at
        once with ``sync_seconds`` 0); rotate when the file reached ``rotate_bytes`` or ``rotate_seconds``."""
        with self._lock:
            if self._fh is None or self._current is None:
                self._open_new()
            fh, cur = self._fh, self._current
            assert fh is not None
            assert cur is not None
            fh.write(rows_csv)
            fh.flush()
            self._current = OpenFile(cur.name, cur.bytes + len(rows_csv), cur.rows + rows, cur.opened_at)
            self._pending_cursor = next_cursor
            self._pending_rows += rows
            if self._current.bytes >= self.rotate_bytes or self._age() >= self.rotate_seconds:
                self.close_file()
            elif self.sync_seconds <= 0 or self._clock() - self._last_sync >= self.sync_seconds:
                self.sync()

    def _open_new(self) -> None:
        now = self._clock()
        name = spool_file_name(self.entity, datetime.fromtimestamp(now, UTC), self._next_seq)
        self._next_seq += 1
        self._fh = (self.layout.open / f"{name}{PARTIAL}").open("xb")
        header = csv_header(self.entity)
        self._fh.write(header)
        fsync_dir(self.layout.open)
        self._current = OpenFile(name, len(header), 0, now)

    def _age(self) -> float:
        return self._clock() - self._current.opened_at if self._current else 0.0

    def sync(self) -> bool:
        """Commit what was written: fsync the open file, then replace the checkpoint. False if nothing was
        pending."""
        with self._lock:
            self._last_sync = self._clock()
            if self._pending_cursor is None or self._fh is None:
                return False
            os.fsync(self._fh.fileno())
            cp = replace(
                self.checkpoint,
                open=self._current,
                cursor=self._pending_cursor,
                rows=self.checkpoint.rows + self._pending_rows,
                next_seq=self._next_seq,
            )
            write_atomic(self._path, cp.to_json())
            self.checkpoint = cp
            self._pending_cursor = None
            self._pending_rows = 0
            return True

    def sync_if_due(self) -> bool:
        """:meth:`sync` when ``sync_seconds`` have passed since the last one."""
        with self._lock:
            if self._clock() - self._last_sync >= self.sync_seconds:
                return self.sync()
            return False

    def rotate_if_old(self) -> bool:
        """Close the open file when it is ``rotate_seconds`` old; True when it did."""
        with self._lock:
            if self._current is not None and self._age() >= self.rotate_seconds:
                self.close_file()
                return True
            return False

    def close_file(self) -> Path | None:
        """Commit, then rename the open file into ``closed/`` (atomic, folders fsynced) and forget it in the
        checkpoint."""
        with self._lock:
            self.sync()
            opened = self._current
            if opened is None:
                return None
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            target = self.layout.closed / opened.name
            os.rename(self.layout.open / f"{opened.name}{PARTIAL}", target)
            fsync_dir(self.layout.closed)
            fsync_dir(self.layout.open)
            self._current = None
            self.checkpoint = replace(self.checkpoint, open=None)
            write_atomic(self._path, self.checkpoint.to_json())
            self.files_closed += 1
            return target

    def close(self) -> None:
        """End of capture: commit and close the open file so the push can take it."""
        self.close_file()

    def release(self) -> None:
        """Let go of the open file's handle and leave everything as it is, uncommitted rows included: the
        state a crash leaves; the next :meth:`recover` continues from the last commit."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
