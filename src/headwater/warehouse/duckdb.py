"""The embedded backend: one DuckDB file.

DuckDB lets one process at a time open a file for writing. Write connections are opened per
transaction and closed right after; when another process holds the file, opening retries until
``lock_timeout`` and then raises WarehouseBusyError naming the file. Reads use read-only
connections, which also wait while a writer holds the file (DuckDB's lock is exclusive). Within one
process, write transactions on a file take turns (a lock per file), so two threads' loads cannot
both insert the same new key: primary keys are recorded and enforced by the loads, not declared to
DuckDB (no ART index), unless ``key_index`` asks for them to be.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.errors import WarehouseBusyError, WarehouseError
from headwater.sqltext import sql_list, sql_string
from headwater.warehouse.engine import SqlWarehouse, source_files
from headwater.warehouse.session import quote, quote_all
from headwater.warehouse.types import Dialect, SqlType, parse_sql_type

_COUNTED = ("INSERT", "UPDATE", "DELETE", "MERGE")
_LOCK_WORDS = ("lock", "conflicting")
_names = itertools.count()
_WRITERS: dict[Path, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    """The lock that write transactions on ``path`` take in this process."""
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(path.resolve(), threading.RLock())


def _translate(exc: duckdb.Error) -> WarehouseError:
    return WarehouseError(f"duckdb: {str(exc).strip().splitlines()[0]}")


_HAS_MERGE = tuple(int(p) for p in duckdb.__version__.split(".")[:2] if p.isdigit()) >= (1, 4)


class DuckDBSession:
    dialect = Dialect.DUCKDB
    has_merge = _HAS_MERGE

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._views: dict[str, str] = {}  # staged view -> the Arrow table it reads ("" for Parquet files)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            result = self.con.execute(sql, list(params))
            if sql.lstrip().upper().startswith(_COUNTED):
                row = result.fetchone()
                return int(row[0]) if row else 0
        except duckdb.Error as exc:
            raise _translate(exc) from exc
        return -1

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise _translate(exc) from exc

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        try:
            relation = self.con.sql(sql, params=list(params) or None)
        except duckdb.Error as exc:
            raise _translate(exc) from exc
        if relation is None:
            return pa.table({})
        table: pa.Table = relation.to_arrow_table()
        return table

    def begin(self) -> None:
        self.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # no transaction open: DuckDB already aborted it
            self.con.execute("ROLLBACK")

    def columns(self, table: str) -> dict[str, SqlType]:
        rows = self.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = "
            "current_database() AND table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            [table],
        )
        return {name: parse_sql_type(dtype, table, name) for name, dtype in rows}

    def primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.fetch(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND schema_name = current_schema() AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        )
        return tuple(rows[0][0]) if rows else ()

    def table_names(self) -> list[str]:
        rows = self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        return [r[0] for r in rows]

    def copy_into(
        self, table: str, source: pa.Table | Path | Sequence[Path], columns: dict[str, SqlType]
    ) -> int:
        files = source_files(source)
        names = quote_all(list(columns))
        if files is None:
            assert isinstance(source, pa.Table)
            view = f"_hw_arrow_{next(_names)}"
            self.con.register(view, source)
            try:
                return self.execute(f"INSERT INTO {quote(table)} ({names}) SELECT {names} FROM {quote(view)}")
            finally:
                self.con.unregister(view)
        return self.execute(
            f"INSERT INTO {quote(table)} ({names}) SELECT {names} FROM read_parquet(?, union_by_name = true)",
            [[str(f) for f in files]],
        )

    def stage(self, name: str, source: pa.Table | Path | Sequence[Path], columns: dict[str, SqlType]) -> int:
        # read in place (DuckDB scans Arrow memory and Parquet files), not copied into a table first
        cols = ", ".join(
            f"CAST({quote(n)} AS {t.render(self.dialect)}) AS {quote(n)}" for n, t in columns.items()
        )
        files = source_files(source)
        if files is None:
            assert isinstance(source, pa.Table)
            relation = f"_hw_arrow_{next(_names)}"
            self.con.register(relation, source)
            self._views[name] = relation
            rows = int(source.num_rows)
            scan = quote(relation)
        else:
            self._views[name] = ""
            rows = sum(pq.read_metadata(f).num_rows for f in files)
            scan = f"read_parquet({sql_list(files)}, union_by_name = true)"
        self.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT {cols} FROM {scan}")
        return rows

    def unstage(self, name: str) -> None:
        arrow = self._views.pop(name)
        self.execute(f"DROP VIEW {quote(name)}")
        if arrow:
            self.con.unregister(arrow)

    def export_parquet(self, sql: str, columns: dict[str, SqlType], path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.execute(f"COPY ({sql}) TO {sql_string(path)} (FORMAT parquet, COMPRESSION zstd)")
        return int(pq.read_metadata(path).num_rows)


class DuckDBWarehouse(SqlWarehouse):
    """A warehouse in one DuckDB file (created on first write)."""

    dialect = Dialect.DUCKDB

    def __init__(self, path: Path, lock_timeout: float = 30.0, key_index: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"
        self.lock_timeout = lock_timeout
        self.declares_keys = key_index

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                # without insertion order, a bulk insert's row groups are written once, in parallel; with
                # it, the checkpoint at close compressed every inserted row group a second time
                return duckdb.connect(
                    str(self.path), read_only=read_only, config={"preserve_insertion_order": False}
                )
            except duckdb.Error as exc:
                message = str(exc).strip().splitlines()[0]
                if not any(w in message.lower() for w in _LOCK_WORDS):
                    raise WarehouseError(f"{self.path}: cannot open the DuckDB file: {message}") from exc
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"{self.path}: still locked by another process after {self.lock_timeout:.0f}s "
                        f"({message}); wait for it to finish or stop it"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextmanager
    def _session(self, write: bool) -> Iterator[DuckDBSession]:
        read_only = not write and self.path.exists()
        with contextlib.ExitStack() as stack:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                stack.enter_context(_writer_lock(self.path))
            con = self._connect(read_only)
            try:
                yield DuckDBSession(con)
            finally:
                con.close()
