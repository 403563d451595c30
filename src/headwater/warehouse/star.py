"""Star-schema helpers: warehouse DDL from the generator's table schemas (one schema drives both),
and the load requests for dimensions (natural + surrogate key, SCD1/SCD2) and facts that reference them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from headwater.schema.model import ColumnSpec, ColumnType, Schema, TableSpec, TextGen
from headwater.warehouse.base import Dimension, LoadMode, LoadRequest, Reference, ScdType, Warehouse
from headwater.warehouse.session import quote, quote_all
from headwater.warehouse.types import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    TIMESTAMP,
    Dialect,
    SqlType,
    decimal,
    varchar,
)

UUID_CHARS = 36


def sql_type_for_column(spec: ColumnSpec) -> SqlType:
    """The warehouse type for a generator column (strings bounded when the schema bounds them)."""
    match spec.type:
        case ColumnType.INT:
            return BIGINT
        case ColumnType.FLOAT:
            return DOUBLE
        case ColumnType.DECIMAL:
            return decimal(spec.precision, spec.scale)
        case ColumnType.BOOL:
            return BOOLEAN
        case ColumnType.DATE:
            return DATE
        case ColumnType.TIMESTAMP:
            return TIMESTAMP
        case ColumnType.UUID:
            return varchar(UUID_CHARS)
    if isinstance(spec.gen, TextGen) and spec.gen.max_chars is not None:
        return varchar(spec.gen.max_chars)
    return varchar()


def columns_for_table(spec: TableSpec) -> dict[str, SqlType]:
    return {name: sql_type_for_column(col) for name, col in spec.columns.items()}


def render_create_table(
    name: str, columns: Mapping[str, SqlType], primary_key: Sequence[str], dialect: Dialect
) -> str:
    """``CREATE TABLE`` for ``dialect`` with the key declared: the statement the warehouse runs on
    PostgreSQL, and on DuckDB with ``key_index``; by default a DuckDB warehouse creates the table
    without the ``PRIMARY KEY`` clause and records the key instead (docs/warehouse.md, Primary keys)."""
    cols = [f"    {quote(n)} {t.render(dialect)}" for n, t in columns.items()]
    if primary_key:
        cols.append(f"    PRIMARY KEY ({quote_all(primary_key)})")
    return f"CREATE TABLE {quote(name)} (\n" + ",\n".join(cols) + "\n)"


def render_schema_ddl(schema: Schema, dialect: Dialect) -> list[str]:
    """DDL for every table of a generator schema, parents first (the schema's own order)."""
    return [
        render_create_table(name, columns_for_table(t), t.primary_key or (), dialect)
        for name, t in schema.tables.items()
    ]


def create_schema_tables(warehouse: Warehouse, schema: Schema) -> list[str]:
    """Create the tables of a generator schema that do not exist yet; their names."""
    return [
        name
        for name, t in schema.tables.items()
        if warehouse.create_table(name, columns_for_table(t), t.primary_key or ())
    ]


def dimension_request(
    table: str,
    batch_id: str,
    natural_key: Sequence[str],
    surrogate_key: str | None = None,
    scd: ScdType = ScdType.TYPE1,
    manifest_sha256: str | None = None,
) -> LoadRequest:
    """A load into a dimension: merged on ``natural_key``; ``<table>_sk`` is the default surrogate key."""
    dim = Dimension(tuple(natural_key), surrogate_key or f"{table}_sk", scd)
    return LoadRequest(table, batch_id, LoadMode.MERGE, dimension=dim, manifest_sha256=manifest_sha256)


def fact_request(
    table: str,
    batch_id: str,
    references: Mapping[str, tuple[str, Sequence[str]]],
    primary_key: Sequence[str] = (),
    mode: LoadMode = LoadMode.MERGE,
    surrogate_keys: Mapping[str, str] | None = None,
    manifest_sha256: str | None = None,
) -> LoadRequest:
    """A load into a fact table. ``references`` maps a fact column to ``(dimension, natural-key
    columns)``: e.g. ``{"user_sk": ("dim_user", ["user_id"])}`` fills ``user_sk`` from ``dim_user``."""
    refs = tuple(
        Reference(col, dim, tuple(on), (surrogate_keys or {}).get(dim, f"{dim}_sk"))
        for col, (dim, on) in references.items()
    )
    return LoadRequest(
        table,
        batch_id,
        mode,
        primary_key=tuple(primary_key),
        references=refs,
        manifest_sha256=manifest_sha256,
    )
