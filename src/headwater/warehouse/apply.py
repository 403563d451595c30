"""The SQL that moves a staged batch into its target, identical on DuckDB and PostgreSQL.

merge:             UPDATE rows whose key exists and whose values differ, then INSERT keys not yet there
replace_partition: DELETE the partitions present in the batch, then INSERT the batch
append:            INSERT the batch
Dimensions (SCD1/SCD2) are merges on the natural key that also assign surrogate keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from headwater.errors import DataError
from headwater.warehouse.base import Dimension, Reference, ScdType
from headwater.warehouse.session import Session, quote, quote_all

VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"


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


def merge_rows(
    session: Session, table: str, stage: str, columns: Sequence[str], key: Sequence[str]
) -> Counts:
    """UPSERT by ``key``: unchanged rows are not touched, so loading the same data again changes nothing."""
    values = [c for c in columns if c not in key]
    updated = 0
    if values:
        sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in values)
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


def append_rows(session: Session, table: str, stage: str, columns: Sequence[str]) -> Counts:
    inserted = session.execute(
        f"INSERT INTO {quote(table)} ({quote_all(columns)}) SELECT {quote_all(columns)} FROM {quote(stage)}"
    )
    return Counts(inserted=inserted)


def replace_partitions(
    session: Session, table: str, stage: str, columns: Sequence[str], partition: str
) -> Counts:
    """Swap every partition (distinct value of ``partition``) present in the batch; others stay."""
    p = quote(partition)
    deleted = session.execute(
        f"DELETE FROM {quote(table)} WHERE {p} IN (SELECT DISTINCT {p} FROM {quote(stage)})"
    )
    if session.fetch(f"SELECT count(*) FROM {quote(stage)} WHERE {p} IS NULL")[0][0]:
        deleted += session.execute(f"DELETE FROM {quote(table)} WHERE {p} IS NULL")
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


def resolve_references(session: Session, stage: str, references: Sequence[Reference]) -> None:
    """Fill each reference column of the staged facts with the dimension's surrogate key
    (its current version for SCD2); facts without a matching dimension row keep NULL."""
    for ref in references:
        dim_cols = session.columns(ref.dimension)
        current = f" AND d.{quote(IS_CURRENT)}" if IS_CURRENT in dim_cols else ""
        match = " AND ".join(f"d.{quote(k)} = {quote(stage)}.{quote(k)}" for k in ref.on)
        session.execute(
            f"UPDATE {quote(stage)} SET {quote(ref.column)} = d.{quote(ref.surrogate_key)} "
            f"FROM {quote(ref.dimension)} AS d WHERE {match}{current}"
        )
