"""The warehouse interface: one Protocol, the values it takes and returns, and the fixed sets
(load modes, schema-change policies, SCD types). DuckDB and PostgreSQL implement it alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from headwater.progress import Progress, no_progress
from headwater.warehouse.types import SqlType

if TYPE_CHECKING:
    import pyarrow as pa

# What a load reads: an Arrow table, or one or more Parquet files. A string, so that importing this module
# (the CLI needs LoadMode and SchemaChangePolicy for its help) does not import PyArrow.
Source: TypeAlias = "pa.Table | Path | Sequence[Path]"


class LoadMode(StrEnum):
    MERGE = "merge"  # UPSERT by primary key: insert new keys, update changed rows
    REPLACE_PARTITION = "replace_partition"  # delete the partitions present in the batch, then insert
    APPEND = "append"  # insert every row


class SchemaChangePolicy(StrEnum):
    EVOLVE = "evolve"  # add new columns, widen compatible types, keep dropped columns (NULL-filled)
    FREEZE = "freeze"  # never change the table: new source columns are ignored, widening refused
    FAIL = "fail"  # any difference between source and table refuses the load


class ScdType(StrEnum):
    TYPE1 = "1"  # overwrite attributes in place
    TYPE2 = "2"  # close the current version (valid_to, is_current) and insert a new one


class ChangeKind(StrEnum):
    CREATE_TABLE = "create_table"
    ADD_COLUMN = "add_column"
    WIDEN_COLUMN = "widen_column"
    MISSING_IN_SOURCE = "missing_in_source"  # kept in the table, NULL for new rows
    IGNORED_COLUMN = "ignored_column"  # in the source, not loaded (policy freeze)


@dataclass(frozen=True)
class Dimension:
    """A dimension table: rows identified by ``natural_key``, each given a BIGINT ``surrogate_key``.
    SCD type 2 adds ``valid_from``, ``valid_to`` and ``is_current`` columns."""

    natural_key: tuple[str, ...]
    surrogate_key: str
    scd: ScdType = ScdType.TYPE1


@dataclass(frozen=True)
class Reference:
    """A fact column ``column`` filled with the surrogate key of ``dimension``'s current row whose
    natural key equals the fact's columns ``on`` (same names as the dimension's natural key)."""

    column: str
    dimension: str
    on: tuple[str, ...]
    surrogate_key: str


@dataclass(frozen=True)
class LoadRequest:
    """How to load one batch into one table."""

    table: str
    batch_id: str
    mode: LoadMode = LoadMode.MERGE
    primary_key: tuple[str, ...] = ()
    partition_column: str | None = None
    on_schema_change: SchemaChangePolicy = SchemaChangePolicy.EVOLVE
    manifest_sha256: str | None = None
    column_types: Mapping[str, SqlType] = field(default_factory=dict)
    dimension: Dimension | None = None
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class SchemaChange:
    table: str
    kind: ChangeKind
    column: str | None = None
    old_type: str | None = None
    new_type: str | None = None

    def describe(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        types = f" {self.old_type or ''} -> {self.new_type}" if self.new_type else ""
        return f"{where}: {self.kind.value}{types}"


@dataclass(frozen=True)
class LoadResult:
    """What one load did. ``skipped`` means the batch was already loaded (nothing changed)."""

    table: str
    batch_id: str
    mode: LoadMode
    rows_in: int
    inserted: int
    updated: int
    deleted: int
    schema_version: int
    seconds: float
    skipped: bool = False
    changes: tuple[SchemaChange, ...] = ()


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    columns: dict[str, SqlType]
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class TableData:
    """A table to (re)create from Parquet files, as restore does."""

    name: str
    columns: dict[str, SqlType]
    primary_key: tuple[str, ...]
    files: list[Path]


class Warehouse(Protocol):
    """A warehouse backend. Every write is one short transaction; reads use short-lived connections."""

    url: str

    def load(self, source: Source, request: LoadRequest, progress: Progress = no_progress) -> LoadResult:
        """Stage ``source`` and apply it to ``request.table`` in one transaction with its audit row."""
        ...

    def create_table(
        self, name: str, columns: Mapping[str, SqlType], primary_key: Sequence[str] = ()
    ) -> bool:
        """Create a table (recorded as schema version 1); False when it already exists."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run one statement on a read connection and return its rows as Arrow."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement on a write connection in its own transaction; the affected row count."""
        ...

    def tables(self, include_internal: bool = False) -> list[TableInfo]:
        """Tables in the warehouse (schema), with row counts, columns and primary keys."""
        ...

    def export_tables(self, names: Sequence[str], folder: Path) -> dict[str, tuple[Path, int]]:
        """Write tables to Parquet files in ``folder`` (ordered by primary key) from one consistent
        snapshot; each table's file and row count."""
        ...

    def replace_tables(self, tables: Sequence[TableData], progress: Progress = no_progress) -> None:
        """Drop and recreate ``tables`` from their Parquet files, all in one transaction."""
        ...


def utc_now() -> dt.datetime:
    """Now in UTC as a naive timestamp (the warehouse stores UTC wall-clock times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
