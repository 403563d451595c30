"""SQL text helpers shared by every module that writes SQL: string literals, lists of them, identifiers.

Kept free of imports so that the warehouse, quality, events and Goodreads code can use them without
loading the transform package (and sqlglot with it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["quote_identifier", "sql_list", "sql_string"]


def sql_string(value: object) -> str:
    """A SQL string literal: ``it's`` -> ``'it''s'`` (also for paths)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: Sequence[str | Path]) -> str:
    """A DuckDB list literal of strings, e.g. the files of ``read_parquet([...])``."""
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def quote_identifier(name: str) -> str:
    """A double-quoted identifier (DuckDB, PostgreSQL; sqlglot turns it into backticks for Spark)."""
    return '"' + name.replace('"', '""') + '"'
