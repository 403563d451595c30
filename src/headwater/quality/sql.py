"""Checks compiled to SQL, written once in the DuckDB dialect and transpiled by sqlglot for PostgreSQL
and Spark. The subset used here (CASE, SUM, COUNT, MAX, NOT EXISTS, GROUP BY .. HAVING, LIMIT,
``regexp_matches`` with anchors, TRY_CAST, typed literals) is proven on every engine by the tests.

Every query reads the checked rows through one name, ``_hw_t`` (a CTE over the target's relation),
so a target can be a table, a view, a partition of a table or a registered Arrow batch alike.

* **one aggregate pass** counts every row-level check (not_null, accepted_values, range, regex,
  castable) and computes what row_count and freshness need (row count, newest value);
* **one query per** unique, relationships and custom_sql check (a GROUP BY, an anti-join, the
  user's query);
* failing rows (samples, quarantine) are fetched only for checks that failed.
"""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum
from functools import lru_cache

from headwater.errors import UsageError
from headwater.quality.checks import (
    AcceptedValuesCheck,
    CastableCheck,
    Check,
    CustomSqlCheck,
    FreshnessCheck,
    NotNullCheck,
    RangeCheck,
    RegexCheck,
    RelationshipsCheck,
    RowCountCheck,
    Scalar,
    UniqueCheck,
)
from headwater.sqltext import quote_identifier, sql_string

T = "_hw_t"  # the checked rows, in every query
ROW_ID = "_hw_row"  # a stable row id, where the target has one (batches checked before publishing)


class Engine(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"
    SPARK = "spark"


_CAST_TYPES = {
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "DOUBLE",
    "double": "DOUBLE",
    "decimal": "DECIMAL(38, 10)",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def quote(name: str) -> str:
    """A double-quoted identifier (DuckDB/PostgreSQL style; sqlglot turns it into backticks for Spark)."""
    if not name or "\x00" in name:
        raise UsageError(f"identifier {name!r}: empty or contains NUL")
    return quote_identifier(name)


def literal(value: Scalar) -> str:
    """A typed SQL literal for a value from a check declaration."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise UsageError(f"check value {value!r}: use a finite number")
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return sql_string(value)


@lru_cache(maxsize=512)
def transpile(sql: str, engine: Engine) -> str:
    """``sql`` (DuckDB dialect) for ``engine``."""
    if engine is Engine.DUCKDB:
        return sql
    import sqlglot  # only for PostgreSQL and Spark: ~70 ms to import, which DuckDB gates need not pay

    out = sqlglot.transpile(sql, read="duckdb", write="postgres" if engine is Engine.POSTGRES else "spark")
    return ";\n".join(out)


def with_rows(relation: str, body: str) -> str:
    """``body`` over the checked rows: ``WITH _hw_t AS (SELECT * FROM relation) body``."""
    return f"WITH {T} AS (SELECT * FROM {relation}) {body}"


def _where(check: Check) -> str | None:
    return f"({check.where})" if check.where else None


def _and(*parts: str | None) -> str:
    kept = [p for p in parts if p]
    return " AND ".join(kept) if kept else "TRUE"


def failing_predicate(check: Check, engine: Engine) -> str | None:
    """The per-row condition under which a row fails a row-level check (NULL counts as passing);
    None for checks that are not a per-row condition (unique, relationships, custom_sql, batch-level)."""
    if isinstance(check, NotNullCheck):
        return "(" + " OR ".join(f"{quote(c)} IS NULL" for c in check.columns) + ")"
    if isinstance(check, AcceptedValuesCheck):
        col = quote(check.column)
        if engine is Engine.DUCKDB and check.values and all(isinstance(v, str) for v in check.values):
            # a cast to an ENUM of the accepted values is a hash lookup per distinct dictionary value;
            # NOT IN compares every row with every value (5x slower on 29M rows)
            labels = ", ".join(literal(v) for v in dict.fromkeys(check.values))
            return f"({col} IS NOT NULL AND TRY_CAST(CAST({col} AS VARCHAR) AS ENUM({labels})) IS NULL)"
        values = ", ".join(literal(v) for v in check.values)
        return f"({col} IS NOT NULL AND {col} NOT IN ({values}))"
    if isinstance(check, RangeCheck):
        col, lo_op, hi_op = (
            quote(check.column),
            ("<" if check.inclusive else "<="),
            (">" if check.inclusive else ">="),
        )
        parts = []
        if check.min is not None:
            parts.append(f"{col} {lo_op} {literal(check.min)}")
        if check.max is not None:
            parts.append(f"{col} {hi_op} {literal(check.max)}")
        return "(" + " OR ".join(parts) + ")"
    if isinstance(check, RegexCheck):
        pattern = literal(f"^(?:{check.pattern})$")
        col = quote(check.column)
        return f"({col} IS NOT NULL AND NOT regexp_matches(CAST({col} AS VARCHAR), {pattern}))"
    if isinstance(check, CastableCheck):
        if engine is Engine.POSTGRES:
            raise UsageError(
                f"check {check.label}: castable needs DuckDB or Spark (PostgreSQL has no TRY_CAST); "
                "warehouse columns are typed already"
            )
        col = quote(check.column)
        return f"({col} IS NOT NULL AND TRY_CAST({col} AS {_CAST_TYPES[check.to]}) IS NULL)"
    return None


def aggregate_sql(relation: str, checks: list[Check], engine: Engine) -> str:
    """One pass: ``n`` (rows), and per check i: ``t{i}`` (rows it looks at), ``f{i}`` (failing rows) for
    row-level predicates, ``m{i}`` (newest value) for freshness."""
    cols = ["COUNT(*) AS n"]
    for i, check in enumerate(checks):
        where = _where(check)
        pred = failing_predicate(check, engine)
        if where:
            cols.append(f"SUM(CASE WHEN {where} THEN 1 ELSE 0 END) AS t{i}")
        if pred is not None:
            cols.append(f"SUM(CASE WHEN {_and(where, pred)} THEN 1 ELSE 0 END) AS f{i}")
        if isinstance(check, FreshnessCheck):
            value = quote(check.column)
            cols.append(
                f"MAX(CASE WHEN {where} THEN {value} END) AS m{i}" if where else f"MAX({value}) AS m{i}"
            )
    return with_rows(relation, f"SELECT {', '.join(cols)} FROM {T}")


def needs_aggregate(check: Check) -> bool:
    return bool(check.where) or isinstance(
        check,
        NotNullCheck
        | AcceptedValuesCheck
        | RangeCheck
        | RegexCheck
        | CastableCheck
        | FreshnessCheck
        | RowCountCheck,
    )


def _dup_keys(check: UniqueCheck) -> str:
    cols = ", ".join(quote(c) for c in check.columns)
    not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in check.columns)
    return f"SELECT {cols}, COUNT(*) AS _hw_n FROM {T} WHERE {_and(_where(check), not_null)} GROUP BY {cols} HAVING COUNT(*) > 1"


def count_sql(relation: str, check: Check, ref_relation: str | None = None) -> str:
    """A query returning one row ``(failing)`` for a check that needs its own pass."""
    if isinstance(check, UniqueCheck):
        return with_rows(
            relation, f"SELECT COALESCE(SUM(_hw_n), 0) AS failing FROM ({_dup_keys(check)}) AS _hw_d"
        )
    if isinstance(check, RelationshipsCheck):
        assert ref_relation is not None
        return with_rows(
            relation, f"SELECT COUNT(*) AS failing FROM {T} WHERE {_orphan(check, ref_relation)}"
        )
    if isinstance(check, CustomSqlCheck):
        return with_rows(relation, f"SELECT COUNT(*) AS failing FROM ({custom_body(check)}) AS _hw_c")
    raise AssertionError(f"{check.label}: counted in the aggregate pass")  # pragma: no cover


def custom_body(check: CustomSqlCheck) -> str:
    return check.sql.strip().rstrip(";").replace("{table}", T)


def _orphan(check: RelationshipsCheck, ref_relation: str) -> str:
    col = quote(check.column)
    return _and(
        _where(check),
        f"{T}.{col} IS NOT NULL",
        f"NOT EXISTS (SELECT 1 FROM {ref_relation} AS _hw_r WHERE _hw_r.{quote(check.ref_column)} = {T}.{col})",
    )


def failing_rows_sql(
    relation: str,
    check: Check,
    engine: Engine,
    *,
    ref_relation: str | None = None,
    limit: int | None = None,
    columns: str | None = None,
) -> str | None:
    """A query selecting the rows that fail ``check`` (``columns``, default all); None for batch-level checks."""
    what = columns or f"{T}.*"
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    pred = failing_predicate(check, engine)
    if pred is not None:
        return with_rows(relation, f"SELECT {what} FROM {T} WHERE {_and(_where(check), pred)}{tail}")
    if isinstance(check, UniqueCheck):
        match = " AND ".join(f"_hw_d.{quote(c)} = {T}.{quote(c)}" for c in check.columns)
        body = (
            f"SELECT {what} FROM {T} WHERE EXISTS (SELECT 1 FROM ({_dup_keys(check)}) AS _hw_d WHERE {match})"
        )
        order = ", ".join(f"{T}.{quote(c)}" for c in check.columns)
        return with_rows(relation, f"{body} ORDER BY {order}{tail}")
    if isinstance(check, RelationshipsCheck):
        assert ref_relation is not None
        return with_rows(relation, f"SELECT {what} FROM {T} WHERE {_orphan(check, ref_relation)}{tail}")
    if isinstance(check, CustomSqlCheck):
        if columns is not None and columns != f"{T}.*":
            return None  # arbitrary SQL: its rows cannot be traced back to row ids
        return with_rows(relation, f"SELECT * FROM ({custom_body(check)}) AS _hw_c{tail}")
    assert isinstance(check, RowCountCheck | FreshnessCheck)
    return None
