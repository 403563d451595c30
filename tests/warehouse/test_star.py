"""Dimensions (SCD1, SCD2), facts resolving surrogate keys, and DDL from the generator's schemas."""

from __future__ import annotations

import pyarrow as pa

from headwater.schema import load_schema_text
from headwater.warehouse import ScdType, Warehouse
from headwater.warehouse.star import (
    columns_for_table,
    create_schema_tables,
    dimension_request,
    fact_request,
    render_schema_ddl,
)
from headwater.warehouse.types import BIGINT, DOUBLE, TIMESTAMP, Dialect, decimal, varchar
from tests.warehouse.conftest import rows_of

SCHEMA = """
name: shop
tables:
  users:
    rows: 10
    primary_key: user_id
    columns:
      user_id: {type: int, generator: sequence}
      name: {type: string, generator: words, min_words: 1, max_words: 2, max_chars: 30}
  orders:
    rows: 10
    primary_key: order_id
    columns:
      order_id: {type: uuid, generator: uuid4}
      user_id: {type: int, generator: foreign_key, references: users.user_id}
      amount: {type: decimal, generator: uniform, min: 1, max: 100, precision: 12, scale: 2}
      at: {type: timestamp, generator: timestamp, start: 2024-01-01, end: 2024-02-01}
      score: {type: float, generator: uniform, min: 0, max: 1}
"""


def users(names: dict[str, str]) -> pa.Table:
    return pa.table({"user_id": list(names), "city": list(names.values())})


def test_scd1_dimension_assigns_surrogate_keys_and_overwrites(warehouse: Warehouse) -> None:
    warehouse.load(users({"u1": "Oslo", "u2": "Rome"}), dimension_request("dim_user", "1", ["user_id"]))
    result = warehouse.load(
        users({"u2": "Paris", "u3": "Lima"}), dimension_request("dim_user", "2", ["user_id"])
    )
    assert (result.inserted, result.updated) == (1, 1)
    assert rows_of(warehouse, "SELECT * FROM dim_user ORDER BY dim_user_sk") == [
        {"dim_user_sk": 1, "user_id": "u1", "city": "Oslo"},
        {"dim_user_sk": 2, "user_id": "u2", "city": "Paris"},
        {"dim_user_sk": 3, "user_id": "u3", "city": "Lima"},
    ]


def test_scd2_dimension_keeps_history(warehouse: Warehouse) -> None:
    req = dimension_request("dim_user", "1", ["user_id"], scd=ScdType.TYPE2)
    warehouse.load(users({"u1": "Oslo", "u2": "Rome"}), req)
    req2 = dimension_request("dim_user", "2", ["user_id"], scd=ScdType.TYPE2)
    result = warehouse.load(users({"u1": "Oslo", "u2": "Paris"}), req2)
    assert (result.inserted, result.updated) == (1, 1)
    got = rows_of(
        warehouse,
        "SELECT dim_user_sk, user_id, city, is_current, valid_to IS NULL AS open "
        "FROM dim_user ORDER BY dim_user_sk",
    )
    assert got == [
        {"dim_user_sk": 1, "user_id": "u1", "city": "Oslo", "is_current": True, "open": True},
        {"dim_user_sk": 2, "user_id": "u2", "city": "Rome", "is_current": False, "open": False},
        {"dim_user_sk": 3, "user_id": "u2", "city": "Paris", "is_current": True, "open": True},
    ]
    again = warehouse.load(
        users({"u1": "Oslo", "u2": "Paris"}),
        dimension_request("dim_user", "3", ["user_id"], scd=ScdType.TYPE2),
    )
    assert (again.inserted, again.updated) == (0, 0)


def test_facts_reference_the_current_dimension_row(warehouse: Warehouse) -> None:
    warehouse.load(
        users({"u1": "Oslo", "u2": "Rome"}),
        dimension_request("dim_user", "1", ["user_id"], scd=ScdType.TYPE2),
    )
    warehouse.load(users({"u2": "Paris"}), dimension_request("dim_user", "2", ["user_id"], scd=ScdType.TYPE2))
    facts = pa.table({"order_id": [10, 11, 12], "user_id": ["u1", "u2", "nobody"], "amount": [1.0, 2.0, 3.0]})
    req = fact_request("fct_order", "f1", {"user_sk": ("dim_user", ["user_id"])}, primary_key=["order_id"])
    warehouse.load(facts, req)
    got = rows_of(warehouse, "SELECT order_id, user_sk FROM fct_order ORDER BY order_id")
    assert got == [
        {"order_id": 10, "user_sk": 1},
        {"order_id": 11, "user_sk": 3},
        {"order_id": 12, "user_sk": None},
    ]


def test_ddl_comes_from_the_generator_schema(warehouse: Warehouse) -> None:
    schema = load_schema_text(SCHEMA)
    cols = columns_for_table(schema.tables["orders"])
    assert cols == {
        "order_id": varchar(36),
        "user_id": BIGINT,
        "amount": decimal(12, 2),
        "at": TIMESTAMP,
        "score": DOUBLE,
    }
    ddl = render_schema_ddl(schema, Dialect.POSTGRES)
    assert '"name" VARCHAR(30)' in ddl[0]
    assert 'PRIMARY KEY ("order_id")' in ddl[1]
    assert create_schema_tables(warehouse, schema) == ["users", "orders"]
    assert create_schema_tables(warehouse, schema) == []
    info = {t.name: t for t in warehouse.tables()}
    assert info["orders"].primary_key == ("order_id",)
    assert info["orders"].columns["amount"] == decimal(12, 2)
