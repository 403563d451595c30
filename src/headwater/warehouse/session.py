"""What the shared load logic needs from a backend connection, and safe identifier quoting.

SQL handed to a session uses ``?`` placeholders; values are always bound as parameters and
identifiers always pass through ``quote``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from headwater.errors import UsageError
from headwater.sqltext import quote_identifier
from headwater.warehouse.types import Dialect, SqlType

MAX_IDENTIFIER = 63  # PostgreSQL silently truncates longer names; refuse them on both backends


def quote(name: str) -> str:
    """A double-quoted SQL identifier (embedded quotes doubled). Refuses names no backend keeps intact."""
    if not name or len(name.encode()) > MAX_IDENTIFIER or "\x00" in name or "?" in name or "%" in name:
        raise UsageError(
            f"identifier {name!r}: must be 1-{MAX_IDENTIFIER} bytes without NUL, '?' or '%'; rename it"
        )
    return quote_identifier(name)


def quote_all(names: Sequence[str], prefix: str = "") -> str:
    """``"a", "b"`` or, with a prefix such as ``s.``, ``s."a", s."b"``."""
    return ", ".join(prefix + quote(n) for n in names)


class Session(Protocol):
    """One open connection of a backend, inside or outside a transaction."""

    dialect: Dialect
    has_merge: bool  # the backend runs MERGE INTO (DuckDB >= 1.4, PostgreSQL >= 15)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed (-1 when unknown)."""
        ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def columns(self, table: str) -> dict[str, SqlType]:
        """A table's columns in order; empty when it does not exist."""
        ...

    def primary_key(self, table: str) -> tuple[str, ...]: ...

    def table_names(self) -> list[str]: ...

    def copy_into(
        self, table: str, source: pa.Table | Path | Sequence[Path], columns: dict[str, SqlType]
    ) -> int:
        """Bulk-copy ``source`` (columns matched by name) into existing ``table``; the rows copied."""
        ...

    def stage(self, name: str, source: pa.Table | Path | Sequence[Path], columns: dict[str, SqlType]) -> int:
        """Make ``source`` readable as relation ``name`` (columns cast to ``columns``) until ``unstage``;
        the rows staged. A temporary table, or a view that reads the source in place (an Arrow table
        or Parquet files) where the backend can scan it directly."""
        ...

    def unstage(self, name: str) -> None:
        """Drop what ``stage`` made."""
        ...

    def export_parquet(self, sql: str, columns: dict[str, SqlType], path: Path) -> int:
        """Write the result of ``sql`` to a Parquet file; its rows."""
        ...
