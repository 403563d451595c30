"""The two catalog databases behind one small interface: SQLite (embedded default, WAL mode) and PostgreSQL.

A backend opens short-lived connections, runs a block in one transaction, and supplies the few pieces of SQL
that differ between the two (column types, JSON access, listing JSON keys). The catalog logic itself
(:mod:`headwater.sessions.catalog`) is written once, with ``?`` placeholders that a backend translates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from headwater.errors import ConfigError, WarehouseError

SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Connection(Protocol):
    """The part of a DB-API connection the catalog uses, with ``?`` placeholders on both backends."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Backend(Protocol):
    """What differs between the embedded file and PostgreSQL."""

    name: str
    url: str
    TYPES: ClassVar[dict[str, str]]

    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Connection]: ...

    def lock_for_setup(self, con: Connection) -> None: ...

    def catalog_exists(self, con: Connection) -> bool: ...

    def json_param(self, value: dict[str, Any]) -> Any: ...

    def json_value(self, raw: Any) -> dict[str, Any]: ...

    def to_db(self, value: Any, kind: str) -> Any: ...

    def from_db(self, value: Any, kind: str) -> Any: ...

    def json_keys_sql(self) -> str: ...

    def json_expr(self, kind: str) -> tuple[str, int]: ...

    def json_missing_expr(self) -> tuple[str, int]: ...

    def json_path(self, key: str) -> str: ...


def _iso(value: dt.datetime) -> str:
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class _SqliteConnection:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.con.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.con.executemany(sql, [tuple(r) for r in rows])

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, tuple(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class SqliteBackend:
    """A local SQLite file in WAL mode: readers never block the writer, writers queue on ``busy_timeout``
    (BEGIN IMMEDIATE), so the CLI and the Dagster daemon can use the same catalog at once."""

    name = "sqlite"
    TYPES: ClassVar[dict[str, str]] = {
        "int": "INTEGER",
        "float": "REAL",
        "str": "TEXT",
        "bool": "INTEGER",
        "timestamp": "TEXT",
        "date": "TEXT",
        "json": "TEXT",
        "serial": "INTEGER PRIMARY KEY",
    }

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.url = str(path)
        self.busy_timeout = busy_timeout

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise WarehouseError(f"{self.path}: cannot open the session catalog: {exc}") from exc
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteConnection(con)
            except BaseException:
                con.rollback()
                raise
            con.commit()
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            hint = f"; another process held it for over {self.busy_timeout:.0f} s" if busy else ""
            raise WarehouseError(f"{self.path}: session catalog: {exc}{hint}") from exc
        except sqlite3.Error as exc:
            raise WarehouseError(f"{self.path}: session catalog: {exc}") from exc
        finally:
            con.close()

    def lock_for_setup(self, con: Connection) -> None:
        """BEGIN IMMEDIATE already holds the write lock: nothing to add."""

    def catalog_exists(self, con: Connection) -> bool:
        found = con.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'catalog_schema_history'"
        )
        return bool(found)

    def json_param(self, value: dict[str, Any]) -> Any:
        return json.dumps(value, sort_keys=True, default=str)

    def json_value(self, raw: Any) -> dict[str, Any]:
        value = json.loads(raw) if isinstance(raw, str) else raw
        return dict(value or {})

    def to_db(self, value: Any, kind: str) -> Any:
        if value is None:
            return None
        if kind == "timestamp" and isinstance(value, dt.datetime):
            return _iso(value)
        if (
            kind in ("timestamp", "date")
            and isinstance(value, dt.date)
            and not isinstance(value, dt.datetime)
        ):
            return value.isoformat() if kind == "date" else _iso(dt.datetime.combine(value, dt.time()))
        if kind == "bool":
            return int(bool(value))
        return value

    def from_db(self, value: Any, kind: str) -> Any:
        if value is None:
            return None
        if kind == "timestamp" and isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        if kind == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if kind == "bool":
            return bool(value)
        return value

    def json_keys_sql(self) -> str:
        return "SELECT DISTINCT j.key AS key FROM sessions, json_each(sessions.extra) AS j"

    def json_expr(self, kind: str) -> tuple[str, int]:
        """SQL giving the JSON value of a key (bound as ``$."key"`` twice) when it has ``kind``, else NULL."""
        types = {"number": "('integer','real')", "string": "('text')", "bool": "('true','false')"}[kind]
        return f"(CASE WHEN json_type(extra, ?) IN {types} THEN json_extract(extra, ?) END)", 2

    def json_missing_expr(self) -> tuple[str, int]:
        return "(json_type(extra, ?) IS NULL OR json_type(extra, ?) = 'null')", 2

    def json_path(self, key: str) -> str:
        return f'$."{key}"'


class _PostgresConnection:
    def __init__(self, con: Any) -> None:
        self.con = con

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.con.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.con.execute(self._sql(sql), tuple(params))
        if cur.description is None:
            return []
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class PostgresBackend:
    """The catalog on a PostgreSQL server, in its own schema (``sessions.catalog_schema``)."""

    name = "postgres"
    TYPES: ClassVar[dict[str, str]] = {
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "str": "TEXT",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "json": "JSONB",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    }

    def __init__(self, url: str, schema: str = "public", connect_timeout: int = 10) -> None:
        if not SCHEMA_NAME.match(schema):
            raise ConfigError(f"sessions.catalog_schema {schema!r}: use letters, digits and '_' only")
        self._url = url
        self.schema = schema
        self.url = _redact(url) + f" (schema {schema})"
        self.connect_timeout = connect_timeout

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        import psycopg

        try:
            con = psycopg.connect(self._url, connect_timeout=self.connect_timeout, autocommit=True)
        except psycopg.Error as exc:
            raise WarehouseError(f"{self.url}: cannot connect to the session catalog: {_first(exc)}") from exc
        try:
            con.execute(f'SET search_path TO "{self.schema}"')
            with con.transaction():
                yield _PostgresConnection(con)
        except psycopg.Error as exc:
            raise WarehouseError(f"{self.url}: session catalog: {_first(exc)}") from exc
        finally:
            con.close()

    def lock_for_setup(self, con: Connection) -> None:
        """Serialise table creation and promotions between processes (CREATE ... IF NOT EXISTS can race)."""
        con.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"headwater.sessions.{self.schema}",))
        if not con.rows("SELECT 1 AS found FROM pg_namespace WHERE nspname = ?", (self.schema,)):
            con.execute(f'CREATE SCHEMA "{self.schema}"')

    def catalog_exists(self, con: Connection) -> bool:
        """True when the tables are there: a read-only role (researchers) then never needs CREATE rights."""
        found = con.rows(
            "SELECT to_regclass(?) IS NOT NULL AS found", (f'"{self.schema}".catalog_schema_history',)
        )
        return bool(found[0]["found"])

    def json_param(self, value: dict[str, Any]) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(json.loads(json.dumps(value, default=str)))

    def json_value(self, raw: Any) -> dict[str, Any]:
        value = json.loads(raw) if isinstance(raw, str) else raw
        return dict(value or {})

    def to_db(self, value: Any, kind: str) -> Any:
        if kind == "timestamp" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return dt.datetime.combine(value, dt.time())
        if kind == "timestamp" and isinstance(value, dt.datetime):
            return value.replace(tzinfo=None)
        return value

    def from_db(self, value: Any, kind: str) -> Any:
        return value

    def json_keys_sql(self) -> str:
        return "SELECT DISTINCT jsonb_object_keys(extra) AS key FROM sessions"

    def json_expr(self, kind: str) -> tuple[str, int]:
        if kind == "number":
            cast = "CAST(extra ->> ? AS DOUBLE PRECISION)"
            return f"(CASE WHEN jsonb_typeof(extra -> ?) = 'number' THEN {cast} END)", 2
        if kind == "bool":
            return "(CASE WHEN jsonb_typeof(extra -> ?) = 'boolean' THEN CAST(extra ->> ? AS BOOLEAN) END)", 2
        return "(CASE WHEN jsonb_typeof(extra -> ?) = 'string' THEN extra ->> ? END)", 2

    def json_missing_expr(self) -> tuple[str, int]:
        return "(extra -> ? IS NULL OR jsonb_typeof(extra -> ?) = 'null')", 2

    def json_path(self, key: str) -> str:
        return key


def _redact(url: str) -> str:
    """A connection URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _first(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
