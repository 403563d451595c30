"""Load modes, audit and idempotency: the same tests on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import DataError, UsageError, WarehouseError
from headwater.warehouse import LoadMode, LoadRequest, Warehouse
from headwater.warehouse.types import DOUBLE, INTEGER, decimal, sql_type_from_arrow
from tests.warehouse.conftest import content_hash, people, rows_of


def test_merge_inserts_new_and_updates_changed(warehouse: Warehouse) -> None:
    first = warehouse.load(people([1, 2, 3], ["a", "b", "c"]), LoadRequest("p", "b1", primary_key=("id",)))
    assert (first.inserted, first.updated, first.schema_version) == (3, 0, 1)
    second = warehouse.load(people([2, 3, 4], ["b", "C", "d"]), LoadRequest("p", "b2", primary_key=("id",)))
    assert (second.rows_in, second.inserted, second.updated, second.deleted) == (3, 1, 1, 0)
    assert rows_of(warehouse, "SELECT id, name FROM p ORDER BY id") == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": "C"},
        {"id": 4, "name": "d"},
    ]


def test_same_batch_three_times_changes_nothing(warehouse: Warehouse) -> None:
    batch = people(list(range(100)), [f"n{i}" for i in range(100)])
    request = LoadRequest("p", "batch-1", primary_key=("id",), manifest_sha256="abc")
    warehouse.load(batch, request)
    digest = content_hash(warehouse, "p")
    audit = content_hash(warehouse, "_hw_load_audit")
    for _ in range(2):
        again = warehouse.load(batch, request)
        assert again.skipped
        assert content_hash(warehouse, "p") == digest
        assert content_hash(warehouse, "_hw_load_audit") == audit
    # the same rows under a new batch id: audited, but no row touched
    fresh = warehouse.load(batch, LoadRequest("p", "batch-2", primary_key=("id",)))
    assert (fresh.inserted, fresh.updated) == (0, 0)
    assert content_hash(warehouse, "p") == digest


def test_changed_data_under_a_loaded_batch_id_is_refused(warehouse: Warehouse) -> None:
    warehouse.load(people([1], ["a"]), LoadRequest("p", "b1", primary_key=("id",), manifest_sha256="aaa"))
    with pytest.raises(WarehouseError, match="already loaded with manifest sha256 aaa"):
        warehouse.load(people([1], ["z"]), LoadRequest("p", "b1", primary_key=("id",), manifest_sha256="bbb"))


def test_audit_row_records_the_load(warehouse: Warehouse) -> None:
    warehouse.load(
        people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",), manifest_sha256="m1")
    )
    (row,) = rows_of(warehouse, "SELECT * FROM _hw_load_audit")
    assert row["table_name"] == "p"
    assert row["batch_id"] == "b1"
    assert row["manifest_sha256"] == "m1"
    assert (row["rows_in"], row["rows_inserted"], row["rows_updated"], row["rows_deleted"]) == (2, 2, 0, 0)
    assert row["schema_version"] == 1
    assert str(row["finished_at"]) >= str(row["started_at"])


def test_replace_partition_swaps_only_the_batch_partitions(warehouse: Warehouse) -> None:
    def month(m: str, ids: list[int]) -> pa.Table:
        return pa.table({"month": [m] * len(ids), "id": ids, "v": [i * 1.5 for i in ids]})

    req = LoadRequest("ev", "jan", LoadMode.REPLACE_PARTITION, partition_column="month")
    warehouse.load(pa.concat_tables([month("2024-01", [1, 2, 3]), month("2024-02", [4])]), req)
    result = warehouse.load(
        month("2024-01", [7, 8]),
        LoadRequest("ev", "jan2", LoadMode.REPLACE_PARTITION, partition_column="month"),
    )
    assert (result.deleted, result.inserted) == (3, 2)
    got = rows_of(warehouse, "SELECT month, id FROM ev ORDER BY id")
    assert got == [
        {"month": "2024-02", "id": 4},
        {"month": "2024-01", "id": 7},
        {"month": "2024-01", "id": 8},
    ]


def test_append_inserts_every_row(warehouse: Warehouse) -> None:
    t = pa.table({"x": [1, 1, 2]})
    warehouse.load(t, LoadRequest("log", "a", LoadMode.APPEND))
    result = warehouse.load(t, LoadRequest("log", "b", LoadMode.APPEND))
    assert result.inserted == 3
    assert rows_of(warehouse, "SELECT count(*) AS n FROM log") == [{"n": 6}]


def test_parquet_files_load_like_arrow(warehouse: Warehouse, tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(people([1, 2], ["a", "b"]), a)
    pq.write_table(people([3], ["c"]), b)
    result = warehouse.load([a, b], LoadRequest("p", "files", primary_key=("id",)))
    assert result.inserted == 3
    assert rows_of(warehouse, "SELECT count(*) AS n FROM p") == [{"n": 3}]


def test_types_round_trip_through_a_load(warehouse: Warehouse) -> None:
    t = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "amount": pa.array([Decimal("1.50"), None], pa.decimal128(10, 2)),
            "day": pa.array([dt.date(2024, 1, 31), None]),
            "at": pa.array([dt.datetime(2024, 1, 31, 12, 0, 1, 250000), None], pa.timestamp("us")),
            "flag": [True, None],
            "text": ['quote " and, comma', ""],
            "cat": pa.array(["x", "y"]).dictionary_encode(),
        }
    )
    warehouse.load(t, LoadRequest("typed", "b", primary_key=("id",)))
    got = rows_of(warehouse, "SELECT * FROM typed ORDER BY id")
    assert got[0] == {
        "id": 1,
        "amount": Decimal("1.50"),
        "day": dt.date(2024, 1, 31),
        "at": dt.datetime(2024, 1, 31, 12, 0, 1, 250000),
        "flag": True,
        "text": 'quote " and, comma',
        "cat": "x",
    }
    assert got[1]["amount"] is None
    assert got[1]["text"] == ""
    assert got[1]["flag"] is None


def test_duplicate_and_null_keys_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(DataError, match=r"key \(id=2\) appears 2 times"):
        warehouse.load(people([1, 2, 2], ["a", "b", "c"]), LoadRequest("p", "dup", primary_key=("id",)))
    assert warehouse.tables() == []  # nothing written, not even the table
    nulls = pa.table({"id": pa.array([1, None], pa.int64()), "name": ["a", "b"]})
    with pytest.raises(DataError, match="NULL in key"):
        warehouse.load(nulls, LoadRequest("p", "null", primary_key=("id",)))


def test_first_load_declares_the_key_after_the_rows_and_still_refuses_duplicates(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """A table created by a load gets its primary key once the rows are in: the key must hold
    anyway, whatever the mode, and a refused first load leaves no table behind."""
    for mode in (LoadMode.APPEND, LoadMode.REPLACE_PARTITION):
        batch = pa.table({"k": ["x", "y", "x"], "part": [1, 1, 1], "v": [1, 2, 3]})
        path = tmp_path / f"{mode}.parquet"
        pq.write_table(batch, path)
        for source in (batch, path):
            request = LoadRequest("t", f"b-{mode}", mode, primary_key=("k",), partition_column="part")
            with pytest.raises(DataError, match=r"^t: the batch's key \(k\) must be unique"):
                warehouse.load(source, request)
            assert warehouse.tables() == []
    nulls = pa.table({"k": ["x", None], "part": [1, 1]})
    with pytest.raises(DataError, match=r"^t: the batch's key \(k\) must be unique and not NULL"):
        warehouse.load(nulls, LoadRequest("t", "n", LoadMode.APPEND, primary_key=("k",)))
    assert warehouse.tables() == []
    result = warehouse.load(
        pa.table({"k": ["x", "y"], "part": [1, 2]}),
        LoadRequest("t", "ok", LoadMode.APPEND, primary_key=("k",)),
    )
    assert result.inserted == 2
    (info,) = warehouse.tables()
    assert info.primary_key == ("k",)
    with pytest.raises(WarehouseError):  # the declared key now guards every later load
        warehouse.load(pa.table({"k": ["x"], "part": [3]}), LoadRequest("t", "again", LoadMode.APPEND))
    assert rows_of(warehouse, "SELECT count(*) AS n FROM t") == [{"n": 2}]


def test_merge_without_a_key_is_refused(warehouse: Warehouse) -> None:
    with pytest.raises(UsageError, match="needs a primary key"):
        warehouse.load(people([1], ["a"]), LoadRequest("p", "b"))


def test_compound_keys_merge(warehouse: Warehouse) -> None:
    t = pa.table({"a": [1, 1], "b": ["x", "y"], "v": [1, 2]})
    warehouse.load(t, LoadRequest("c", "1", primary_key=("a", "b")))
    t2 = pa.table({"a": [1, 2], "b": ["y", "y"], "v": [20, 3]})
    result = warehouse.load(t2, LoadRequest("c", "2", primary_key=("a", "b")))
    assert (result.inserted, result.updated) == (1, 1)
    assert [r["v"] for r in rows_of(warehouse, "SELECT v FROM c ORDER BY a, b")] == [1, 20, 3]


def test_odd_identifiers_are_quoted(warehouse: Warehouse) -> None:
    t = pa.table({'we"ird id': [1], "Select": ["x"]})
    warehouse.load(t, LoadRequest('my "table"', "b", primary_key=('we"ird id',)))
    assert [i.name for i in warehouse.tables()] == ['my "table"']
    with pytest.raises(UsageError, match="identifier"):
        warehouse.load(pa.table({"a?": [1]}), LoadRequest("t", "b", LoadMode.APPEND))


def test_duplicate_keys_are_refused_in_any_order_and_across_files(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=r"key \(id=7\) appears 3 times"):
        warehouse.load(
            people([9, 7, 1, 7, 3, 7], list("abcdef")), LoadRequest("p", "d1", primary_key=("id",))
        )
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(people([1, 2, 3], ["a", "b", "c"]), a)
    pq.write_table(people([4, 2], ["d", "e"]), b)
    with pytest.raises(DataError, match=r"key \(id=2\) appears 2 times"):
        warehouse.load([a, b], LoadRequest("p", "d2", primary_key=("id",)))
    assert warehouse.tables() == []
    # string and compound keys take the SQL check
    with pytest.raises(DataError, match=r"key \(k='x'\) appears 2 times"):
        warehouse.load(pa.table({"k": ["x", "y", "x"]}), LoadRequest("s", "d3", primary_key=("k",)))
    with pytest.raises(DataError, match=r"key \(a=1, b='y'\) appears 2 times"):
        warehouse.load(
            pa.table({"a": [1, 1, 1], "b": ["y", "x", "y"]}), LoadRequest("c", "d4", primary_key=("a", "b"))
        )


def test_unsorted_merge_counts_inserts_and_updates(warehouse: Warehouse) -> None:
    warehouse.load(people([5, 1, 3], ["e", "a", "c"]), LoadRequest("p", "b1", primary_key=("id",)))
    result = warehouse.load(
        people([4, 3, 2, 1], ["d", "C", "b", "a"]), LoadRequest("p", "b2", primary_key=("id",))
    )
    assert (result.rows_in, result.inserted, result.updated) == (4, 2, 1)
    assert [r["name"] for r in rows_of(warehouse, "SELECT name FROM p ORDER BY id")] == [
        "a",
        "b",
        "C",
        "d",
        "e",
    ]


def test_values_with_nulls_round_trip_through_every_copy_path(
    warehouse: Warehouse,
) -> None:
    from headwater.warehouse import pgbinary

    day, at = dt.date(1999, 12, 31), dt.datetime(1969, 7, 20, 20, 17, 40, 123456)
    full = pa.table(
        {
            "id": pa.array(range(8), pa.int64()),
            "i8": pa.array([0, None, -128, 127, 1, 2, 3, 4], pa.int8()),
            "u32": pa.array([0, None, 4_294_967_295, 1, 2, 3, 4, 5], pa.uint32()),
            "f": [1.5, None, float("inf"), -0.0, 1e300, 2.2250738585072014e-308, 0.1, 3.0],
            "b": [True, None, False, True, False, True, None, False],
            "s": ["héllo ☃", None, "", 'a "q", b\nc', "\\N", "x" * 40, "NULL", "z"],
            "big": pa.array(["big", None, "", "d", "e", "f", "g", "h"], pa.large_string()),
            "cat": pa.array(["x", None, "y", "x", "y", "x", "y", "x"]).dictionary_encode(),
            "d": pa.array([day, None, dt.date(2000, 1, 1), dt.date(1970, 1, 1), day, day, day, day]),
            "ts_us": pa.array([at, None, at, at, at, at, at, at], pa.timestamp("us")),
            "ts_ms": pa.array(
                [at.replace(microsecond=123000), None, at, at, at, at, at, at], pa.timestamp("ms")
            ),
            "ts_tz": pa.array([at, None, at, at, at, at, at, at], pa.timestamp("us", tz="UTC")),
            "nothing": pa.nulls(8),
        }
    )
    source = full.slice(1, 6)  # an offset into every buffer
    # on PostgreSQL all of these go through the binary encoder
    assert pgbinary.binary_plan(source.schema, [sql_type_from_arrow(f.type) for f in source.schema])
    warehouse.load(source, LoadRequest("typed", "b", primary_key=("id",)))
    assert rows_of(warehouse, "SELECT * FROM typed ORDER BY id") == source.to_pylist()
    # types whose binary form could differ from PostgreSQL's reading of the CSV text go as CSV
    assert pgbinary.binary_plan(pa.schema([("x", pa.decimal128(5, 2))]), [decimal(5, 2)]) is None
    assert pgbinary.binary_plan(pa.schema([("x", pa.float32())]), [DOUBLE]) is None
    assert pgbinary.binary_plan(pa.schema([("x", pa.int64())]), [INTEGER]) is None


def test_merge_without_a_merge_statement_gives_the_same_result(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older servers (DuckDB < 1.4, PostgreSQL < 15) merge with UPDATE then INSERT."""
    from headwater.warehouse import apply

    merge_rows = apply.merge_rows

    def without_merge(session: Any, *args: Any) -> apply.Counts:
        session.has_merge = False
        return merge_rows(session, *args)

    monkeypatch.setattr(apply, "merge_rows", without_merge)
    first = warehouse.load(people([3, 1, 2], ["c", "a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    second = warehouse.load(people([4, 2, 3], ["d", "b", "C"]), LoadRequest("p", "b2", primary_key=("id",)))
    assert [(r.inserted, r.updated) for r in (first, second)] == [(3, 0), (1, 1)]
    assert [r["name"] for r in rows_of(warehouse, "SELECT name FROM p ORDER BY id")] == ["a", "b", "C", "d"]


@pytest.mark.postgres
def test_postgres_tables_made_by_a_merge_leave_room_for_updates(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    """Merge-made tables fill 80% of each page by default (updates then stay on their page, as
    heap-only tuples), appended ones every page; the project file can change it."""
    import psycopg

    from headwater.config import load_settings
    from headwater.errors import ConfigError
    from headwater.warehouse import open_warehouse, warehouse_from_settings
    from headwater.warehouse.postgres import PostgresWarehouse

    url, schema = pg_schema

    def options(table: str) -> list[str] | None:
        with psycopg.connect(url) as con:
            row = con.execute(
                "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (schema, table),
            ).fetchone()
        assert row is not None, table
        value: list[str] | None = row[0]
        return value

    wh = open_warehouse(url, schema=schema)
    wh.load(people([1, 2], ["a", "b"]), LoadRequest("merged", "b1", primary_key=("id",)))
    wh.load(pa.table({"x": [1]}), LoadRequest("appended", "b1", LoadMode.APPEND))
    assert options("merged") == ["fillfactor=80"]
    assert options("appended") is None
    (tmp_path / "headwater.yaml").write_text(
        f"warehouse: {{kind: postgres, url: '{url}', schema: {schema}, merge_fillfactor: 100}}\n"
    )
    settings = load_settings(tmp_path, env={})
    warehouse_from_settings(settings).load(people([1], ["a"]), LoadRequest("full", "b1", primary_key=("id",)))
    assert options("full") is None
    with pytest.raises(ConfigError, match="merge_fillfactor 5"):
        PostgresWarehouse(url, schema, merge_fillfactor=5)
