"""The warehouse's own tables: the load audit (one row per landed batch and table), the schema history
(one row per change to a table's shape) and the recorded keys (a table's primary key where the database
is not asked to enforce it: see ``SqlWarehouse.declares_keys``). All are written in the load's
transaction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from headwater.errors import WarehouseError
from headwater.warehouse.base import ChangeKind, LoadRequest, LoadResult, SchemaChange
from headwater.warehouse.session import Session
from headwater.warehouse.types import Dialect

AUDIT_TABLE = "_hw_load_audit"
HISTORY_TABLE = "_hw_schema_history"
KEYS_TABLE = "_hw_table_keys"
INTERNAL_PREFIX = "_hw_"

_AUDIT_DDL = f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    table_name VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    manifest_sha256 VARCHAR,
    rows_in BIGINT NOT NULL,
    rows_inserted BIGINT NOT NULL,
    rows_updated BIGINT NOT NULL,
    rows_deleted BIGINT NOT NULL,
    schema_version INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    stage_seconds DOUBLE PRECISION NOT NULL,
    apply_seconds DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (table_name, batch_id))"""

_HISTORY_DDL = f"""CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    table_name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    change VARCHAR NOT NULL,
    column_name VARCHAR,
    old_type VARCHAR,
    new_type VARCHAR,
    batch_id VARCHAR,
    changed_at TIMESTAMP NOT NULL)"""

_KEYS_DDL = f"""CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
    table_name VARCHAR NOT NULL PRIMARY KEY,
    key_columns VARCHAR NOT NULL)"""

# changes that alter a table's shape and so bump its schema version
_VERSIONED = frozenset({ChangeKind.CREATE_TABLE, ChangeKind.ADD_COLUMN, ChangeKind.WIDEN_COLUMN})


def ensure_meta_tables(session: Session) -> None:
    """Create the audit and history tables when missing (idempotent, cheap)."""
    if session.dialect is Dialect.POSTGRES:
        # concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog
        session.execute("SELECT pg_advisory_xact_lock(?)", [0x6877_6D65])
    session.execute(_AUDIT_DDL)
    session.execute(_HISTORY_DDL)
    session.execute(_KEYS_DDL)


def recorded_key(session: Session, table: str) -> tuple[str, ...]:
    """The primary key recorded for ``table`` (empty when none is)."""
    rows = session.fetch(f"SELECT key_columns FROM {KEYS_TABLE} WHERE table_name = ?", [table])
    return tuple(json.loads(rows[0][0])) if rows else ()


def record_key(session: Session, table: str, key: Sequence[str]) -> None:
    """Record ``key`` as ``table``'s primary key, replacing any earlier record (none: forget it)."""
    session.execute(f"DELETE FROM {KEYS_TABLE} WHERE table_name = ?", [table])
    if key:
        session.execute(f"INSERT INTO {KEYS_TABLE} VALUES (?, ?)", [table, json.dumps(list(key))])


def find_loaded(session: Session, request: LoadRequest) -> LoadResult | None:
    """The earlier result when this batch already landed in this table; refuses a changed batch."""
    rows = session.fetch(
        f"SELECT manifest_sha256, mode, rows_in, rows_inserted, rows_updated, rows_deleted, schema_version "
        f"FROM {AUDIT_TABLE} WHERE table_name = ? AND batch_id = ?",
        [request.table, request.batch_id],
    )
    if not rows:
        return None
    checksum, _mode, rows_in, inserted, updated, deleted, version = rows[0]
    if checksum != request.manifest_sha256:
        raise WarehouseError(
            f"{request.table}: batch {request.batch_id} was already loaded with manifest sha256 "
            f"{checksum}, now {request.manifest_sha256}; load changed data under a new batch id"
        )
    return LoadResult(
        table=request.table,
        batch_id=request.batch_id,
        mode=request.mode,
        rows_in=rows_in,
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        schema_version=version,
        seconds=0.0,
        skipped=True,
    )


def schema_version(session: Session, table: str) -> int:
    rows = session.fetch(f"SELECT max(version) FROM {HISTORY_TABLE} WHERE table_name = ?", [table])
    return int(rows[0][0] or 0)


def record_changes(
    session: Session, changes: Sequence[SchemaChange], batch_id: str | None, now: dt.datetime
) -> int:
    """Append changes to the history; the table's schema version afterwards. A column reported
    missing from the source is recorded once, not on every load that lacks it."""
    if not changes:
        return 0
    table = changes[0].table
    version = schema_version(session, table)
    for change in changes:
        if change.kind is ChangeKind.MISSING_IN_SOURCE and _last_change(session, table, change.column) == (
            ChangeKind.MISSING_IN_SOURCE
        ):
            continue
        if change.kind in _VERSIONED:
            version += 1
        session.execute(
            f"INSERT INTO {HISTORY_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                table,
                version,
                change.kind.value,
                change.column,
                change.old_type,
                change.new_type,
                batch_id,
                now,
            ],
        )
    return version


def _last_change(session: Session, table: str, column: str | None) -> str | None:
    rows = session.fetch(
        f"SELECT change FROM {HISTORY_TABLE} WHERE table_name = ? AND column_name = ? "
        "ORDER BY changed_at DESC, version DESC LIMIT 1",
        [table, column],
    )
    return str(rows[0][0]) if rows else None


def record_load(
    session: Session,
    result: LoadResult,
    request: LoadRequest,
    started: dt.datetime,
    finished: dt.datetime,
    stage_seconds: float,
    apply_seconds: float,
) -> None:
    """The audit row, written in the load's own transaction (so it exists if and only if the load does)."""
    session.execute(
        f"INSERT INTO {AUDIT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            request.table,
            request.batch_id,
            request.mode.value,
            request.manifest_sha256,
            result.rows_in,
            result.inserted,
            result.updated,
            result.deleted,
            result.schema_version,
            started,
            finished,
            stage_seconds,
            apply_seconds,
        ],
    )
