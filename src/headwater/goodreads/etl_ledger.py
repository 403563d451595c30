"""The batch ledger: where each landing batch stands, so nothing is wiped before it is loaded and nothing
loaded is processed again.

    landed -> working -> processed -> loaded -> (cleaned: working/processed copies removed after retention)
                                   \\-> blocked (a quality gate held it back; re-checked every cycle)
    any stage failing records ``error`` and keeps the last state reached, so the next cycle resumes there.

One SQLite file (WAL) under ``goodreads.state_dir``; a cycle holds ``cycle.lock`` (an OS lock, released
even on kill -9) so two cycles never work on the same batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from headwater.goodreads.etl_zones import BatchRef

LEDGER_FILE = "ledger.sqlite"
LOCK_FILE = "cycle.lock"


class BatchState(StrEnum):
    LANDED = "landed"
    WORKING = "working"
    PROCESSED = "processed"
    LOADED = "loaded"
    BLOCKED = "blocked"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    BatchState.LANDED: 0,
    BatchState.WORKING: 1,
    BatchState.PROCESSED: 2,
    BatchState.BLOCKED: 2,
    BatchState.LOADED: 3,
}

_DDL = """
CREATE TABLE IF NOT EXISTS batches (
    batch_key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    landing_sha256 TEXT NOT NULL,
    landing_bytes INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    loaded_at TEXT,
    cleaned_at TEXT,
    facts TEXT NOT NULL DEFAULT '{}'
)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class BatchRecord:
    """A batch's row in the ledger. ``facts`` holds counts per stage (rows in, held, out, loaded)."""

    ref: BatchRef
    state: BatchState
    landing_sha256: str
    landing_bytes: int = 0
    attempts: int = 0
    error: str | None = None
    first_seen: str = ""
    updated_at: str = ""
    loaded_at: str | None = None
    cleaned_at: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


class Ledger:
    """The batch ledger file of one project."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / LEDGER_FILE
        with self._connect() as con:
            con.execute(_DDL)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            yield con
        finally:
            con.close()

    @staticmethod
    def _record(row: tuple[Any, ...]) -> BatchRecord:
        key, state, sha, size, attempts, error, first, updated, loaded, cleaned, facts = row
        return BatchRecord(
            BatchRef.parse(key),
            BatchState(state),
            sha,
            size,
            attempts,
            error,
            first,
            updated,
            loaded,
            cleaned,
            json.loads(facts),
        )

    def get(self, ref: BatchRef) -> BatchRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM batches WHERE batch_key = ?", [ref.key]).fetchone()
        return self._record(row) if row else None

    def all(self) -> list[BatchRecord]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM batches ORDER BY batch_key").fetchall()
        return [self._record(r) for r in rows]

    def add(self, ref: BatchRef, landing_sha256: str, landing_bytes: int) -> BatchRecord:
        """Record a landing batch as seen (no-op when it is already known)."""
        now = _now()
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO batches (batch_key, state, landing_sha256, landing_bytes, first_seen, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [ref.key, BatchState.LANDED.value, landing_sha256, landing_bytes, now, now],
            )
        found = self.get(ref)
        assert found is not None
        return found

    def advance(self, ref: BatchRef, state: BatchState, **facts: Any) -> None:
        """Move a batch to ``state`` (clearing its error) and merge ``facts`` into what is known of it."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT facts FROM batches WHERE batch_key = ?", [ref.key]).fetchone()
            merged = {**(json.loads(row[0]) if row else {}), **facts}
            loaded = _now() if state is BatchState.LOADED else None
            con.execute(
                "UPDATE batches SET state = ?, error = NULL, updated_at = ?, facts = ?, "
                "loaded_at = coalesce(?, loaded_at) WHERE batch_key = ?",
                [state.value, _now(), json.dumps(merged, default=str), loaded, ref.key],
            )
            con.execute("COMMIT")

    def fail(self, ref: BatchRef, error: str) -> None:
        """Record a failed attempt; the state stays where the batch got to."""
        with self._connect() as con:
            con.execute(
                "UPDATE batches SET error = ?, attempts = attempts + 1, updated_at = ? WHERE batch_key = ?",
                [error, _now(), ref.key],
            )

    def mark_cleaned(self, ref: BatchRef) -> None:
        with self._connect() as con:
            con.execute("UPDATE batches SET cleaned_at = ? WHERE batch_key = ?", [_now(), ref.key])


class CycleLock:
    """An exclusive OS lock on ``state_dir/cycle.lock`` for the length of one cycle."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when the lock was taken; False when another cycle holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
