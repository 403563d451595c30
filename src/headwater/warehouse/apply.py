"""The SQL that moves a staged batch into its target, identical on DuckDB and PostgreSQL.

merge:             one MERGE: UPDATE rows whose key exists and whose values differ, INSERT keys not yet
                   there (with a one-column ordered key, keys above the table's largest are INSERTed
                   without a join first)
replace_partition: DELETE the partitions present in the batch, then INSERT the batch
append:            INSERT the batch
(Where the table's key has no database index, the batch's keys are checked not to be in the table.)
Dimensions (SCD1/SCD2) are merges on the natural key that also assign surrogate keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from headwater.errors import DataError, KeyConflictError
from headwater.warehouse.base import Dimension, Reference, ScdType, Source
from headwater.warehouse.session import Session, quote, quote_all
from headwater.warehouse.types import Dialect, SqlType, TypeName

VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"
_INTEGER_TYPES = frozenset({TypeName.INTEGER, TypeName.BIGINT})
_ORDERED_KEY_TYPES = _INTEGER_TYPES | {TypeName.DATE, TypeName.TIMESTAMP, TypeName.TIMESTAMPTZ}


@dataclass(frozen=True)
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _key_match(key: Sequence[str], left: str = "t", right: str = "s") -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in key)


def _differs(columns: Sequence[str]) -> str:
    if not columns:
        return "FALSE"
    return " OR ".join(f"t.{quote(c)} IS DISTINCT FROM s.{quote(c)}" for c in columns)


def check_keys(session: Session, table: str, stage: str, key: Sequence[str]) -> None:
    """Refuse a batch with NULL or duplicate keys: a merge on them would be ambiguous."""
    cols = quote_all(key)
    nulls = " OR ".join(f"{quote(k)} IS NULL" for k in key)
    bad = session.fetch(f"SELECT count(*) FROM {quote(stage)} WHERE {nulls}")
    if bad[0][0]:
        raise DataError(f"{table}: {bad[0][0]} rows of the batch have a NULL in key ({', '.join(key)})")
    dup = session.fetch(
        f"SELECT {cols}, count(*) FROM {quote(stage)} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1"
    )
    if dup:
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, dup[0][:-1], strict=True))
        raise DataError(
            f"{table}: key ({shown}) appears {dup[0][-1]} times in the batch; dedupe it before a merge"
        )


def check_source_keys(table: str, source: Source, key: Sequence[str], types: Mapping[str, SqlType]) -> bool:
    """``check_keys`` done on the source itself, in NumPy, where that is exact and cheaper than an
    aggregate over the staged rows: one integer key column loaded into an integer column (the cast
    cannot merge two values). A batch whose keys are strictly increasing is checked in one pass,
    any other by sorting a copy of the key. False when the key does not qualify (the caller falls
    back to ``check_keys``); raises DataError on a NULL or duplicate key."""
    if len(key) != 1 or key[0] not in types or types[key[0]].name not in _INTEGER_TYPES:
        return False
    column = _source_column(source, key[0])
    if column is None or not pa.types.is_integer(column.type):
        return False
    import numpy as np

    if column.null_count:
        raise DataError(f"{table}: {column.null_count} rows of the batch have a NULL in key ({key[0]})")
    values = column.to_numpy()
    if values.size < 2 or bool(np.all(values[1:] > values[:-1])):
        return True
    ordered = np.sort(values)
    same = ordered[1:] == ordered[:-1]
    if same.any():
        value = ordered[int(np.argmax(same))]
        times = int(np.count_nonzero(values == value))
        raise DataError(
            f"{table}: key ({key[0]}={value.item()!r}) appears {times} times in the batch; "
            "dedupe it before a merge"
        )
    return True


def _source_column(source: Source, name: str) -> pa.Array | None:
    """One column of an Arrow table or of every Parquet file (read alone), as one array."""
    if isinstance(source, pa.Table):
        if name not in source.column_names:
            return None
        chunks = source.column(name)
    else:
        files = [source] if isinstance(source, Path) else list(source)
        if not files or any(name not in pq.read_schema(f).names for f in files):
            return None
        parts = [pq.read_table(f, columns=[name]).column(0) for f in files]
        if len({p.type for p in parts}) != 1:
            return None
        chunks = pa.chunked_array([c for p in parts for c in p.chunks], parts[0].type)
    return chunks.combine_chunks() if chunks.num_chunks != 1 else chunks.chunk(0)


def merge_rows(
    session: Session,
    table: str,
    stage: str,
    columns: Sequence[str],
    key: Sequence[str],
    types: Mapping[str, SqlType] | None = None,
) -> Counts:
    """UPSERT by ``key``: unchanged rows are not touched, so loading the same data again changes nothing.

    One MERGE (one join of batch and table) where the backend has it (DuckDB >= 1.4, PostgreSQL >= 15),
    else UPDATE then INSERT. MERGE reports only the total of rows changed, so the inserts are the
    growth of the table, counted before and after inside the transaction (on PostgreSQL the table is
    first locked against other writers, so the count is this load's own).

    A one-column integer or temporal key (``types`` says which) splits the batch first: a key above the
    table's largest cannot match any row, so those rows are INSERTed without a join and only the rest
    goes through the MERGE. Ids that grow (events, orders, sequences) make most of a batch such rows; a
    10M-row batch of half new ids merged in 1.6-1.8 s on DuckDB this way against 2.3-2.4 s in one MERGE."""
    values = [c for c in columns if c not in key]
    sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in values)
    if not session.has_merge:
        updated = 0
        if values:
            updated = session.execute(
                f"UPDATE {quote(table)} AS t SET {sets} FROM {quote(stage)} AS s "
                f"WHERE {_key_match(key)} AND ({_differs(values)})"
            )
        inserted = session.execute(
            f"INSERT INTO {quote(table)} ({quote_all(columns)}) SELECT {quote_all(columns, 's.')} "
            f"FROM {quote(stage)} AS s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {quote(table)} AS t WHERE {_key_match(key)})"
        )
        return Counts(inserted=inserted, updated=updated)
    if session.dialect is Dialect.POSTGRES:
        session.execute(f"LOCK TABLE {quote(table)} IN SHARE ROW EXCLUSIVE MODE")
    before = _count(session, table)
    source, params, above, on = quote(stage), [], 0, _key_match(key)
    if types is not None and len(key) == 1 and key[0] in types and types[key[0]].name in _ORDERED_KEY_TYPES:
        k = quote(key[0])
        (largest,) = session.fetch(f"SELECT max({k}) FROM {quote(table)}")[0]
        if largest is None:  # an empty table: every row is new
            return append_rows(session, table, stage, columns)
        above = session.execute(
            f"INSERT INTO {quote(table)} ({quote_all(columns)}) SELECT {quote_all(columns)} "
            f"FROM {quote(stage)} WHERE {k} > ?",
            [largest],
        )
        (smallest,) = session.fetch(f"SELECT min({k}) FROM {quote(stage)}")[0]
        source, params = f"(SELECT * FROM {quote(stage)} WHERE {k} <= ?)", [largest]
        # only the table's rows in the batch's key range can match: saying so lets the join read (and
        # hash) just those, not the whole table nor the rows the INSERT above just added
        on, params = f"{on} AND t.{k} BETWEEN ? AND ?", [*params, smallest, largest]
    matched = f"WHEN MATCHED AND ({_differs(values)}) THEN UPDATE SET {sets} " if values else ""
    changed = session.execute(
        f"MERGE INTO {quote(table)} AS t USING {source} AS s ON {on} {matched}"
        f"WHEN NOT MATCHED THEN INSERT ({quote_all(columns)}) VALUES ({quote_all(columns, 's.')})",
        params,
    )
    inserted = _count(session, table) - before
    return Counts(inserted=inserted, updated=changed - (inserted - above))


def _count(session: Session, table: str) -> int:
    return int(session.fetch(f"SELECT count(*) FROM {quote(table)}")[0][0])


def append_rows(session: Session, table: str, stage: str, columns: Sequence[str]) -> Counts:
    inserted = session.execute(
        f"INSERT INTO {quote(table)} ({quote_all(columns)}) SELECT {quote_all(columns)} FROM {quote(stage)}"
    )
    return Counts(inserted=inserted)


def check_new_keys(session: Session, table: str, stage: str, key: Sequence[str]) -> None:
    """Refuse a batch holding a key that is already in ``table`` (for loads that insert without a
    merge into a table whose key no database index guards)."""
    found = session.fetch(
        f"SELECT {quote_all(key, 's.')} FROM {quote(stage)} AS s WHERE EXISTS "
        f"(SELECT 1 FROM {quote(table)} AS t WHERE {_key_match(key)}) LIMIT 1"
    )
    if found:
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, found[0], strict=True))
        raise KeyConflictError(
            f"{table}: key ({shown}) is already in the table; load the batch with merge to update rows"
        )


def replace_partitions(
    session: Session,
    table: str,
    stage: str,
    columns: Sequence[str],
    partition: str,
    guard: Sequence[str] = (),
) -> Counts:
    """Swap every partition (distinct value of ``partition``) present in the batch; others stay.
    ``guard``: a key the batch's rows must not share with the rows of the other partitions."""
    p = quote(partition)
    deleted = session.execute(
        f"DELETE FROM {quote(table)} WHERE {p} IN (SELECT DISTINCT {p} FROM {quote(stage)})"
    )
    if session.fetch(f"SELECT count(*) FROM {quote(stage)} WHERE {p} IS NULL")[0][0]:
        deleted += session.execute(f"DELETE FROM {quote(table)} WHERE {p} IS NULL")
    if guard:
        check_new_keys(session, table, stage, guard)
    inserted = append_rows(session, table, stage, columns).inserted
    return Counts(inserted=inserted, deleted=deleted)


def merge_dimension(
    session: Session, table: str, stage: str, columns: Sequence[str], dim: Dimension, now: dt.datetime
) -> Counts:
    """SCD1: update attributes in place. SCD2: close the current version of changed rows and insert
    a new version. New natural keys get surrogate keys max+1, max+2, ... in natural-key order."""
    key, sk = dim.natural_key, quote(dim.surrogate_key)
    attrs = [c for c in columns if c not in key]
    current = f" AND t.{quote(IS_CURRENT)}" if dim.scd is ScdType.TYPE2 else ""
    updated = 0
    if attrs and dim.scd is ScdType.TYPE1:
        sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in attrs)
        updated = session.execute(
            f"UPDATE {quote(table)} AS t SET {sets} FROM {quote(stage)} AS s "
            f"WHERE {_key_match(key)} AND ({_differs(attrs)})"
        )
    elif attrs:
        updated = session.execute(
            f"UPDATE {quote(table)} AS t SET {quote(VALID_TO)} = ?, {quote(IS_CURRENT)} = FALSE "
            f"FROM {quote(stage)} AS s WHERE {_key_match(key)}{current} AND ({_differs(attrs)})",
            [now],
        )
    extra_cols, extra_vals, params = "", "", []
    if dim.scd is ScdType.TYPE2:
        extra_cols = f", {quote(VALID_FROM)}, {quote(VALID_TO)}, {quote(IS_CURRENT)}"
        extra_vals, params = ", ?, NULL, TRUE", [now]
    order = quote_all(key, "s.")
    inserted = session.execute(
        f"INSERT INTO {quote(table)} ({sk}, {quote_all(columns)}{extra_cols}) "
        f"SELECT (SELECT coalesce(max({sk}), 0) FROM {quote(table)}) + row_number() OVER (ORDER BY {order}), "
        f"{quote_all(columns, 's.')}{extra_vals} FROM {quote(stage)} AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {quote(table)} AS t WHERE {_key_match(key)}{current})",
        params,
    )
    return Counts(inserted=inserted, updated=updated)


def stage_references(session: Session, view: str, stage: str, references: Sequence[Reference]) -> None:
    """Make ``view``: the staged facts of ``stage`` plus, per reference, the dimension's surrogate key
    (its current version for SCD2), NULL for facts without a matching dimension row. A join read as
    the rows are loaded, not an UPDATE of a copied stage (dimension natural keys are unique, so the
    join keeps one row per fact)."""
    picked, joins = [], []
    for i, ref in enumerate(references):
        d = f"_d{i}"
        current = f" AND {d}.{quote(IS_CURRENT)}" if IS_CURRENT in session.columns(ref.dimension) else ""
        match = " AND ".join(f"{d}.{quote(k)} = s.{quote(k)}" for k in ref.on)
        joins.append(f"LEFT JOIN {quote(ref.dimension)} AS {d} ON {match}{current}")
        picked.append(f"CAST({d}.{quote(ref.surrogate_key)} AS BIGINT) AS {quote(ref.column)}")
    session.execute(
        f"CREATE TEMP VIEW {quote(view)} AS SELECT s.*, {', '.join(picked)} FROM {quote(stage)} AS s "
        + " ".join(joins)
    )
