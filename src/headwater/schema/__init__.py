"""Table schemas: columns, types, generators, keys; and their YAML loader."""

from headwater.schema.loader import load_schema, load_schema_text
from headwater.schema.model import ColumnSpec, ColumnType, Schema, TableSpec

__all__ = ["ColumnSpec", "ColumnType", "Schema", "TableSpec", "load_schema", "load_schema_text"]
