"""Column types the warehouse understands, the same on DuckDB and PostgreSQL.

A ``SqlType`` is a small value (name plus length, precision, scale) that both backends render into
their own DDL and parse back from their catalogs. ``widen_type`` decides schema evolution: keep the
target type, widen it, or refuse (``None``) because the change would lose or misread data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from headwater.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa


class TypeName(StrEnum):
    BOOLEAN = "BOOLEAN"
    INTEGER = "INTEGER"
    BIGINT = "BIGINT"
    DOUBLE = "DOUBLE"
    DECIMAL = "DECIMAL"
    VARCHAR = "VARCHAR"
    DATE = "DATE"
    TIMESTAMP = "TIMESTAMP"
    TIMESTAMPTZ = "TIMESTAMPTZ"
    NULL = "NULL"  # a source column with no values yet: fits any target


class Dialect(StrEnum):
    DUCKDB = "duckdb"
    POSTGRES = "postgres"


@dataclass(frozen=True)
class SqlType:
    """A column type: ``length`` for VARCHAR (None = unbounded), ``precision``/``scale`` for DECIMAL."""

    name: TypeName
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.name is TypeName.VARCHAR and self.length is not None:
            return f"VARCHAR({self.length})"
        if self.name is TypeName.DECIMAL:
            return f"DECIMAL({self.precision},{self.scale})"
        return self.name.value

    def render(self, dialect: Dialect) -> str:
        """The type as written in DDL for ``dialect``."""
        if self.name is TypeName.DOUBLE:
            return "DOUBLE PRECISION"
        if self.name is TypeName.TIMESTAMPTZ:
            return "TIMESTAMP WITH TIME ZONE"
        if self.name is TypeName.NULL:
            return "VARCHAR" if dialect is Dialect.DUCKDB else "TEXT"
        if self.name is TypeName.VARCHAR and self.length is None and dialect is Dialect.POSTGRES:
            return "TEXT"
        return str(self)


BOOLEAN = SqlType(TypeName.BOOLEAN)
INTEGER = SqlType(TypeName.INTEGER)
BIGINT = SqlType(TypeName.BIGINT)
DOUBLE = SqlType(TypeName.DOUBLE)
VARCHAR = SqlType(TypeName.VARCHAR)
DATE = SqlType(TypeName.DATE)
TIMESTAMP = SqlType(TypeName.TIMESTAMP)
TIMESTAMPTZ = SqlType(TypeName.TIMESTAMPTZ)


def decimal(precision: int, scale: int) -> SqlType:
    return SqlType(TypeName.DECIMAL, precision=precision, scale=scale)


def varchar(length: int | None = None) -> SqlType:
    return SqlType(TypeName.VARCHAR, length=length)


def sql_type_from_arrow(dtype: pa.DataType, column: str = "?") -> SqlType:
    """The warehouse type for an Arrow type; unsupported types raise a SchemaError naming the column."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(dtype):
        return sql_type_from_arrow(dtype.value_type, column)
    if t.is_null(dtype):
        return SqlType(TypeName.NULL)
    if t.is_boolean(dtype):
        return BOOLEAN
    if t.is_int8(dtype) or t.is_int16(dtype) or t.is_int32(dtype) or t.is_uint8(dtype) or t.is_uint16(dtype):
        return INTEGER
    if t.is_int64(dtype) or t.is_uint32(dtype):
        return BIGINT
    if t.is_uint64(dtype):
        return decimal(20, 0)
    if t.is_floating(dtype):
        return DOUBLE
    if t.is_decimal(dtype):
        return decimal(dtype.precision, dtype.scale)
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_string_view(dtype):
        return VARCHAR
    if t.is_date(dtype):
        return DATE
    if t.is_timestamp(dtype):
        return TIMESTAMPTZ if dtype.tz is not None else TIMESTAMP
    raise SchemaError(f"column {column}: Arrow type {dtype} is not supported by the warehouse; cast it first")


def arrow_type_for(sql_type: SqlType) -> pa.DataType:
    """The Arrow type a warehouse column reads back as (used by backups)."""
    import pyarrow as pa

    mapping: dict[TypeName, pa.DataType] = {
        TypeName.BOOLEAN: pa.bool_(),
        TypeName.INTEGER: pa.int32(),
        TypeName.BIGINT: pa.int64(),
        TypeName.DOUBLE: pa.float64(),
        TypeName.VARCHAR: pa.string(),
        TypeName.NULL: pa.string(),
        TypeName.DATE: pa.date32(),
        TypeName.TIMESTAMP: pa.timestamp("us"),
        TypeName.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    }
    if sql_type.name is TypeName.DECIMAL:
        return pa.decimal128(sql_type.precision or 18, sql_type.scale or 0)
    return mapping[sql_type.name]


_SIMPLE: dict[str, SqlType] = {
    "BOOLEAN": BOOLEAN,
    "BOOL": BOOLEAN,
    "TINYINT": INTEGER,
    "SMALLINT": INTEGER,
    "INTEGER": INTEGER,
    "INT": INTEGER,
    "UTINYINT": INTEGER,
    "USMALLINT": INTEGER,
    "BIGINT": BIGINT,
    "UINTEGER": BIGINT,
    "HUGEINT": decimal(38, 0),
    "UBIGINT": decimal(20, 0),
    "REAL": DOUBLE,
    "FLOAT": DOUBLE,
    "DOUBLE": DOUBLE,
    "DOUBLE PRECISION": DOUBLE,
    "VARCHAR": VARCHAR,
    "TEXT": VARCHAR,
    "CHARACTER VARYING": VARCHAR,
    "UUID": VARCHAR,
    "DATE": DATE,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP WITHOUT TIME ZONE": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "TIMESTAMPTZ": TIMESTAMPTZ,
}
_PARAM = re.compile(r"^(DECIMAL|NUMERIC|VARCHAR|CHARACTER VARYING)\((\d+)(?:,\s*(\d+))?\)$")


def parse_sql_type(text: str, table: str = "?", column: str = "?") -> SqlType:
    """A catalog type name (DuckDB's ``data_type`` or PostgreSQL's ``format_type``) as a SqlType."""
    norm = " ".join(text.upper().split())
    if norm in _SIMPLE:
        return _SIMPLE[norm]
    m = _PARAM.match(norm)
    if m:
        if m.group(1) in {"DECIMAL", "NUMERIC"}:
            return decimal(int(m.group(2)), int(m.group(3) or 0))
        return varchar(int(m.group(2)))
    if norm in {"NUMERIC", "DECIMAL"}:
        return decimal(38, 10)
    raise SchemaError(f"{table}.{column}: column type {text} is not supported by the warehouse")


_INT_DIGITS = {TypeName.INTEGER: 10, TypeName.BIGINT: 19}


def _numeric_widen(target: SqlType, incoming: SqlType) -> SqlType | None:
    order = [TypeName.INTEGER, TypeName.BIGINT, TypeName.DOUBLE]
    if target.name in order and incoming.name in order:
        return target if order.index(incoming.name) <= order.index(target.name) else incoming
    if TypeName.DOUBLE in (target.name, incoming.name):
        return DOUBLE
    # at least one DECIMAL, the other DECIMAL or an integer
    t_int, t_scale = _digits(target)
    i_int, i_scale = _digits(incoming)
    if target.name is not TypeName.DECIMAL and i_scale == 0 and i_int <= t_int:
        return target
    int_digits, scale = max(t_int, i_int), max(t_scale, i_scale)
    if int_digits + scale > 38:
        return None
    wanted = decimal(int_digits + scale, scale)
    if target.name is TypeName.DECIMAL and t_int >= int_digits and t_scale >= scale:
        return target
    return wanted


def _digits(t: SqlType) -> tuple[int, int]:
    if t.name is TypeName.DECIMAL:
        scale = t.scale or 0
        return (t.precision or 38) - scale, scale
    return _INT_DIGITS[t.name], 0


_NUMERIC = frozenset({TypeName.INTEGER, TypeName.BIGINT, TypeName.DOUBLE, TypeName.DECIMAL})


def widen_type(target: SqlType, incoming: SqlType) -> SqlType | None:
    """The type ``target`` must have to hold ``incoming`` values: ``target`` itself when it already
    fits, a wider type for a compatible change, None for a breaking change (e.g. text into an integer)."""
    if incoming == target or incoming.name is TypeName.NULL:
        return target
    if target.name is TypeName.NULL:
        return incoming
    if target.name in _NUMERIC and incoming.name in _NUMERIC:
        return _numeric_widen(target, incoming)
    if target.name is TypeName.VARCHAR:
        if incoming.name is not TypeName.VARCHAR:
            return target if target.length is None else None
        if target.length is None or (incoming.length is not None and incoming.length <= target.length):
            return target
        return incoming
    if target.name is TypeName.TIMESTAMP and incoming.name is TypeName.DATE:
        return target
    if target.name is TypeName.DATE and incoming.name is TypeName.TIMESTAMP:
        return TIMESTAMP
    return None
