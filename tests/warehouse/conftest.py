"""Warehouse fixtures: every test that takes ``warehouse`` runs on DuckDB (a tmp file) and on
PostgreSQL (a fresh schema on the real server at 127.0.0.1:5432, dropped afterwards)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from headwater.warehouse import Warehouse, open_warehouse
from tests.conftest import require_service

PG_HOST = "127.0.0.1:5432"
PG_DB = "test"


@cache
def pg_url() -> str | None:
    """The first URL that connects: the current OS user, then ``postgres`` (trust auth)."""
    for user in ("", "postgres@"):
        url = f"postgresql://{user}{PG_HOST}/{PG_DB}"
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    return None


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh schema for one test, dropped afterwards."""
    url = pg_url()
    if url is None:
        require_service(
            "PostgreSQL",
            "bash .ci/run (or: pg_ctlcluster 15 main start)",
            f"cannot connect to {PG_HOST}/{PG_DB}",
        )
        raise AssertionError("unreachable")
    schema = f"hw_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def warehouse_url(backend: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(url, schema) of an empty warehouse on the parametrised backend."""
    if backend == "duckdb":
        return str(request.getfixturevalue("duckdb_path")), "public"
    url, schema = request.getfixturevalue("pg_schema")
    return url, schema


@pytest.fixture
def warehouse(warehouse_url: tuple[str, str]) -> Warehouse:
    url, schema = warehouse_url
    return open_warehouse(url, schema=schema, lock_timeout=5)


def content_hash(wh: Warehouse, table: str, order_by: str = "1") -> str:
    """A digest of a table's rows in a fixed order, comparable across loads (and backends)."""
    rows = wh.query(f'SELECT * FROM "{table}" ORDER BY {order_by}').to_pylist()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def rows_of(wh: Warehouse, sql: str) -> list[dict[str, object]]:
    return list(wh.query(sql).to_pylist())


def people(ids: list[int], names: list[str], scores: list[int] | None = None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": names,
            "score": pa.array(scores if scores is not None else [i * 10 for i in ids], pa.int32()),
        }
    )
