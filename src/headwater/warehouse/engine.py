"""The load logic shared by both backends. A backend only supplies sessions (connections);
everything a load decides and every SQL statement it runs is here and in ``apply``/``audit``."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from headwater.errors import DataError, UsageError, WarehouseError
from headwater.progress import Progress, no_progress
from headwater.warehouse import apply, audit
from headwater.warehouse.base import (
    ChangeKind,
    LoadMode,
    LoadRequest,
    LoadResult,
    ScdType,
    SchemaChange,
    Source,
    TableData,
    TableInfo,
    utc_now,
)
from headwater.warehouse.evolution import EvolutionPlan, check_primary_key, plan_evolution
from headwater.warehouse.session import Session, quote, quote_all
from headwater.warehouse.types import BIGINT, BOOLEAN, TIMESTAMP, Dialect, SqlType, sql_type_from_arrow

STAGE_PREFIX = "_hw_stage_"
_KEY_VIOLATION = re.compile(r"duplicate|unique|primary key|null", re.IGNORECASE)


def source_files(source: Source) -> list[Path] | None:
    if isinstance(source, pa.Table):
        return None
    return [source] if isinstance(source, Path) else list(source)


def read_source_schema(source: Source) -> pa.Schema:
    files = source_files(source)
    if files is None:
        assert isinstance(source, pa.Table)
        return source.schema
    if not files:
        raise UsageError("nothing to load: no Parquet files given")
    try:
        return pa.unify_schemas([pq.read_schema(f) for f in files])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{files[0]}: cannot read the Parquet schema: {exc}") from exc


class SqlWarehouse(ABC):
    """A warehouse over any backend that provides ``Session``s."""

    url: str
    dialect: Dialect
    declares_keys = True
    """Whether a table's primary key is declared to the database, which then enforces it with an index.
    False (DuckDB's default): the key is recorded in ``_hw_table_keys`` and every load enforces it
    (merge keys unique in the batch, appended and swapped-in keys new to the table), with no index to
    grow: on DuckDB the ART index of a 10M-row merge cost ~1.5 s of its ~3.7 s."""

    def __init__(self) -> None:
        self._meta_ready = False

    def _key_of(self, s: Session, table: str) -> tuple[str, ...]:
        """A table's primary key: declared to the database, or recorded by headwater (a warehouse
        written by an earlier version has no keys table until its next load creates it)."""
        declared = s.primary_key(table)
        if declared or not s.columns(audit.KEYS_TABLE):
            return declared
        return audit.recorded_key(s, table)

    def _enforces(self, s: Session, table: str) -> bool:
        """Whether the database itself refuses a second row with the same key in ``table``."""
        return bool(s.primary_key(table))

    @abstractmethod
    def _session(self, write: bool) -> AbstractContextManager[Session]:
        """A short-lived connection; ``write`` ones are held only for one transaction."""

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._session(write=True) as s:
            s.begin()
            try:
                yield s
            except BaseException:
                s.rollback()
                raise
            s.commit()

    def _ensure_meta(self) -> None:
        if not self._meta_ready:
            with self._transaction() as s:
                audit.ensure_meta_tables(s)
            self._meta_ready = True

    # ------------------------------------------------------------------------------------------ load
    def load(self, source: Source, request: LoadRequest, progress: Progress = no_progress) -> LoadResult:
        self._ensure_meta()
        started, t0 = utc_now(), time.perf_counter()
        schema = read_source_schema(source)
        incoming = {
            f.name: request.column_types.get(f.name)
            or sql_type_from_arrow(f.type, f"{request.table}.{f.name}")
            for f in schema
        }
        deferred: tuple[str, ...] = ()
        try:
            with self._transaction() as s:
                done = audit.find_loaded(s, request)
                if done is not None:
                    return done
                progress("plan", 1)
                key, plan, deferred = self._prepare_target(s, request, incoming)
                stage = STAGE_PREFIX + request.table[:40]
                base = stage + "_in" if request.references else stage
                rows_in = s.stage(base, source, incoming)
                if request.references:
                    apply.stage_references(s, stage, base, request.references)
                progress("stage", rows_in)
                t_stage = time.perf_counter() - t0
                version = audit.record_changes(
                    s, plan.changes, request.batch_id, started
                ) or audit.schema_version(s, request.table)
                columns = [*plan.load_columns, *(r.column for r in request.references)]
                if deferred:  # a table this load created: the key index is built after the rows are in
                    counts = self._fill_new(s, request, source, stage, plan.load_columns, columns, key)
                    self._add_key(s, request.table, deferred)
                else:
                    counts = self._apply(s, request, source, stage, plan.load_columns, columns, key, started)
                progress("apply", counts.inserted + counts.updated + counts.deleted)
                if request.references:
                    s.execute(f"DROP VIEW {quote(stage)}")
                s.unstage(base)
                result = LoadResult(
                    table=request.table,
                    batch_id=request.batch_id,
                    mode=request.mode,
                    rows_in=rows_in,
                    inserted=counts.inserted,
                    updated=counts.updated,
                    deleted=counts.deleted,
                    schema_version=version,
                    seconds=time.perf_counter() - t0,
                    changes=tuple(plan.changes),
                )
                audit.record_load(
                    s, result, request, started, utc_now(), t_stage, time.perf_counter() - t0 - t_stage
                )
                progress("audit", 1)  # last point inside the transaction: the kill tests stop here
        except WarehouseError as exc:
            if deferred and _KEY_VIOLATION.search(str(exc)):
                # PostgreSQL refuses the ALTER; DuckDB checks a key added to a table holding rows
                # when the transaction commits
                raise DataError(
                    f"{request.table}: the batch's key ({', '.join(deferred)}) must be unique and not NULL: {exc}"
                ) from exc
            raise
        return result

    def _prepare_target(
        self, s: Session, request: LoadRequest, incoming: dict[str, SqlType]
    ) -> tuple[tuple[str, ...], EvolutionPlan, tuple[str, ...]]:
        """Create the table or evolve it under the request's policy; the merge key, the plan, and the
        primary key still to declare once the rows are in (a fact or plain table this load creates:
        building the key index over the loaded rows at once is far cheaper than growing it row by row;
        empty otherwise)."""
        table, dim = request.table, request.dimension
        refs = {r.column: BIGINT for r in request.references}
        managed: dict[str, SqlType] = {}
        if dim is not None:
            managed[dim.surrogate_key] = BIGINT
            if dim.scd is ScdType.TYPE2:
                managed |= {apply.VALID_FROM: TIMESTAMP, apply.VALID_TO: TIMESTAMP, apply.IS_CURRENT: BOOLEAN}
        target = s.columns(table)
        if not target:
            key = (dim.surrogate_key,) if dim else request.primary_key
            if request.mode is LoadMode.MERGE and not key and dim is None:
                raise UsageError(f"{table}: a merge needs a primary key; pass one (--key) or use append")
            if request.mode is LoadMode.REPLACE_PARTITION and not request.partition_column:
                raise UsageError(f"{table}: replace_partition needs a partition column (--partition)")
            sk = {dim.surrogate_key: BIGINT} if dim else {}
            columns = sk | incoming | refs | {k: v for k, v in managed.items() if k not in sk}
            deferred = key if dim is None else ()
            updated = request.mode is LoadMode.MERGE or dim is not None
            self._create(s, table, columns, () if deferred else key, updated=updated)
            created = SchemaChange(table, ChangeKind.CREATE_TABLE, None, None, _describe(columns))
            return (dim.natural_key if dim else key), EvolutionPlan(dict(incoming), [created]), deferred
        existing_key = self._key_of(s, table)
        key = check_primary_key(table, existing_key, (dim.surrogate_key,) if dim else request.primary_key)
        if request.mode is LoadMode.MERGE and not key and dim is None:
            raise UsageError(f"{table}: has no primary key to merge on; pass --key or use append")
        plan = plan_evolution(table, target, incoming | refs, request.on_schema_change, [*managed])
        for change in plan.alters:
            new_type = plan.load_columns[change.column or ""].render(self.dialect)
            if change.kind is ChangeKind.ADD_COLUMN:
                s.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(change.column or '')} {new_type}")
            else:
                s.execute(
                    f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(change.column or '')} TYPE {new_type}"
                )
        for ref in refs:
            plan.load_columns.pop(ref, None)
        return (dim.natural_key if dim else key), plan, ()

    def _fill_new(
        self,
        s: Session,
        request: LoadRequest,
        source: Source,
        stage: str,
        types: Mapping[str, SqlType],
        columns: list[str],
        key: tuple[str, ...],
    ) -> apply.Counts:
        """Load a batch into the table this load just created: every mode is an insert of the whole
        batch into an empty table (a merge's keys are checked first, as a merge checks them; other
        modes' keys too where no database index will)."""
        if request.mode is LoadMode.MERGE:
            _check_merge_keys(s, request.table, source, stage, types, key)
        elif key and not self.declares_keys:
            _check_batch_keys(s, request.table, source, stage, types, key)
        return apply.append_rows(s, request.table, stage, columns)

    def _add_key(self, s: Session, table: str, key: tuple[str, ...]) -> None:
        if self.declares_keys:
            s.execute(f"ALTER TABLE {quote(table)} ADD PRIMARY KEY ({quote_all(key)})")
        else:
            audit.record_key(s, table, key)

    def _apply(
        self,
        s: Session,
        request: LoadRequest,
        source: Source,
        stage: str,
        types: Mapping[str, SqlType],
        columns: list[str],
        key: tuple[str, ...],
        now: Any,
    ) -> apply.Counts:
        table = request.table
        if request.dimension is not None:
            apply.check_keys(s, table, stage, request.dimension.natural_key)
            return apply.merge_dimension(s, table, stage, columns, request.dimension, now)
        if request.mode is LoadMode.MERGE:
            _check_merge_keys(s, table, source, stage, types, key)
            return apply.merge_rows(s, table, stage, columns, key, types)
        guard: tuple[str, ...] = ()  # a key no database index guards: the load checks it
        if key and not self._enforces(s, table):
            _check_batch_keys(s, table, source, stage, types, key)
            guard = key
        if request.mode is LoadMode.REPLACE_PARTITION:
            if not request.partition_column:
                raise UsageError(f"{table}: replace_partition needs a partition column (--partition)")
            return apply.replace_partitions(s, table, stage, columns, request.partition_column, guard)
        if guard:
            apply.check_new_keys(s, table, stage, guard)
        return apply.append_rows(s, table, stage, columns)

    def _create(
        self,
        s: Session,
        table: str,
        columns: Mapping[str, SqlType],
        key: Sequence[str],
        updated: bool = False,
    ) -> None:
        """``updated``: the table is made by a merge, so later loads update rows in place. The key is
        declared, or recorded (an empty one forgets what a dropped table of that name had)."""
        cols = [f"{quote(n)} {t.render(self.dialect)}" for n, t in columns.items()]
        internal = table.startswith(audit.INTERNAL_PREFIX)  # the warehouse's own tables keep theirs
        if key and (self.declares_keys or internal):
            cols.append(f"PRIMARY KEY ({quote_all(key)})")
        s.execute(f"CREATE TABLE {quote(table)} ({', '.join(cols)}){self._table_options(updated)}")
        if not internal:
            audit.record_key(s, table, () if self.declares_keys else key)

    def _table_options(self, updated: bool) -> str:
        """Storage options appended to CREATE TABLE (none by default)."""
        return ""

    # ------------------------------------------------------------------------------------------ tables
    def create_table(
        self, name: str, columns: Mapping[str, SqlType], primary_key: Sequence[str] = ()
    ) -> bool:
        self._ensure_meta()
        with self._transaction() as s:
            if s.columns(name):
                return False
            self._create(s, name, columns, primary_key)
            change = SchemaChange(name, ChangeKind.CREATE_TABLE, None, None, _describe(columns))
            audit.record_changes(s, [change], None, utc_now())
        return True

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._session(write=False) as s:
            return s.fetch_arrow(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._transaction() as s:
            return s.execute(sql, params)

    def tables(self, include_internal: bool = False) -> list[TableInfo]:
        with self._session(write=False) as s:
            out = []
            for name in s.table_names():
                if name.startswith(audit.INTERNAL_PREFIX) and not include_internal:
                    continue
                rows = int(s.fetch(f"SELECT count(*) FROM {quote(name)}")[0][0])
                out.append(TableInfo(name, rows, s.columns(name), self._key_of(s, name)))
            return out

    def export_tables(self, names: Sequence[str], folder: Path) -> dict[str, tuple[Path, int]]:
        out: dict[str, tuple[Path, int]] = {}
        with self._session(write=False) as s:
            s.begin()
            if self.dialect is Dialect.POSTGRES:
                s.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try:
                for i, name in enumerate(names):
                    columns, key = s.columns(name), self._key_of(s, name)
                    order = f" ORDER BY {quote_all(key)}" if key else ""
                    path = folder / f"{i:04d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.parquet"
                    out[name] = path, s.export_parquet(f"SELECT * FROM {quote(name)}{order}", columns, path)
            finally:
                s.rollback()
        return out

    def replace_tables(self, tables: Sequence[TableData], progress: Progress = no_progress) -> None:
        self._ensure_meta()
        with self._transaction() as s:
            for t in tables:
                if t.name == audit.KEYS_TABLE:  # derived: each table's key comes with the table
                    continue
                s.execute(f"DROP TABLE IF EXISTS {quote(t.name)}")
                self._create(s, t.name, t.columns, t.primary_key)
                rows = s.copy_into(t.name, t.files, t.columns) if t.files else 0
                progress("restore", rows)
        self._meta_ready = False


def _check_merge_keys(
    s: Session, table: str, source: Source, stage: str, types: Mapping[str, SqlType], key: tuple[str, ...]
) -> None:
    """Refuse NULL or duplicate merge keys: on the source in NumPy where that is exact, else in SQL."""
    if not apply.check_source_keys(table, source, key, types):
        apply.check_keys(s, table, stage, key)


def _check_batch_keys(
    s: Session, table: str, source: Source, stage: str, types: Mapping[str, SqlType], key: tuple[str, ...]
) -> None:
    """The merge-key check for a load that is not a merge, worded as a key violation."""
    try:
        _check_merge_keys(s, table, source, stage, types, key)
    except DataError as exc:
        detail = str(exc).removeprefix(f"{table}: ").split(";")[0]
        raise DataError(
            f"{table}: the batch's key ({', '.join(key)}) must be unique and not NULL: {detail}"
        ) from exc


def _describe(columns: Mapping[str, SqlType]) -> str:
    return ", ".join(f"{n} {t}" for n, t in columns.items())
