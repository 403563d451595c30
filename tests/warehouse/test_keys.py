"""Primary keys: declared to PostgreSQL, recorded and enforced by the loads on DuckDB (no ART index unless
``key_index``), and the merge that inserts keys above the table's largest without a join."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from headwater.errors import KeyConflictError, WarehouseError
from headwater.warehouse import LoadMode, LoadRequest, Warehouse, open_warehouse
from headwater.warehouse.backup import backup_warehouse, restore_warehouse
from tests.warehouse.conftest import content_hash, people, rows_of


def declared_keys(path: Path) -> list[tuple[str, list[str]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND table_name NOT LIKE '\\_hw\\_%' ESCAPE '\\' ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    return [(t, list(c)) for t, c in rows]


def test_duckdb_records_keys_instead_of_declaring_them(duckdb_path: Path) -> None:
    wh = open_warehouse(duckdb_path)
    wh.load(people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    assert declared_keys(duckdb_path) == []  # no index for DuckDB to grow on every insert
    (info,) = wh.tables()
    assert info.primary_key == ("id",)
    # the recorded key is the merge key of later loads that do not name one
    result = wh.load(people([2, 3], ["B", "c"]), LoadRequest("p", "b2"))
    assert (result.inserted, result.updated) == (1, 1)


def test_key_index_declares_keys_to_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "indexed.duckdb"
    wh = open_warehouse(path, key_index=True)
    wh.load(people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    assert declared_keys(path) == [("p", ["id"])]
    with pytest.raises(WarehouseError):  # DuckDB's own index refuses the second id 1
        wh.execute("INSERT INTO p VALUES (1, 'again', 0)")
    # a file made with declared keys keeps working when opened without key_index
    plain = open_warehouse(path)
    result = plain.load(people([2, 3], ["B", "c"]), LoadRequest("p", "b2"))
    assert (result.inserted, result.updated) == (1, 1)
    assert plain.tables()[0].primary_key == ("id",)


def test_an_append_repeating_a_key_is_refused_and_writes_nothing(warehouse: Warehouse) -> None:
    warehouse.load(people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    before = content_hash(warehouse, "p")
    with pytest.raises(WarehouseError) as caught:
        warehouse.load(people([3, 2], ["c", "x"]), LoadRequest("p", "b2", LoadMode.APPEND))
    if isinstance(caught.value, KeyConflictError):  # DuckDB: the load's own check names the key
        assert str(caught.value) == (
            "p: key (id=2) is already in the table; load the batch with merge to update rows"
        )
    assert content_hash(warehouse, "p") == before
    assert rows_of(warehouse, "SELECT count(*) AS n FROM _hw_load_audit WHERE batch_id = 'b2'") == [{"n": 0}]
    ok = warehouse.load(people([3, 4], ["c", "d"]), LoadRequest("p", "b3", LoadMode.APPEND))
    assert ok.inserted == 2


def test_a_partition_swap_cannot_repeat_a_key_of_another_partition(warehouse: Warehouse) -> None:
    def batch(ids: list[int], part: int) -> pa.Table:
        return pa.table({"id": pa.array(ids, pa.int64()), "part": [part] * len(ids)})

    request = LoadRequest("t", "m1", LoadMode.REPLACE_PARTITION, primary_key=("id",), partition_column="part")
    warehouse.load(batch([1, 2], 1), request)
    warehouse.load(
        batch([3, 4], 2), LoadRequest("t", "m2", LoadMode.REPLACE_PARTITION, partition_column="part")
    )
    before = content_hash(warehouse, "t")
    with pytest.raises(WarehouseError):  # id 3 lives in partition 2
        warehouse.load(
            batch([1, 3], 1), LoadRequest("t", "m3", LoadMode.REPLACE_PARTITION, partition_column="part")
        )
    assert content_hash(warehouse, "t") == before
    # re-swapping a partition with its own keys is what the mode is for
    again = warehouse.load(
        batch([1, 2, 5], 1), LoadRequest("t", "m4", LoadMode.REPLACE_PARTITION, partition_column="part")
    )
    assert (again.deleted, again.inserted) == (2, 3)


@pytest.mark.parametrize(
    ("ids", "inserted", "updated"),
    [
        ([10, 11, 12], 3, 0),  # every key above the table's largest: no MERGE rows at all
        ([1, 2, 3], 0, 3),  # every key at or below it
        ([3, 1, 7, 2, 9], 2, 3),  # both, in no order
        ([-5, 0, 2], 2, 1),  # new keys below the table's smallest go through the MERGE and are inserted
    ],
)
def test_merge_splits_at_the_largest_key_and_counts_both_parts(
    warehouse: Warehouse, ids: list[int], inserted: int, updated: int
) -> None:
    warehouse.load(people([1, 2, 3], ["a", "b", "c"]), LoadRequest("p", "b1", primary_key=("id",)))
    batch = people(ids, [f"n{i}" for i in ids])
    result = warehouse.load(batch, LoadRequest("p", "b2", primary_key=("id",)))
    assert (result.inserted, result.updated) == (inserted, updated)
    got = {r["id"]: r["name"] for r in rows_of(warehouse, "SELECT id, name FROM p")}
    assert got == {1: "a", 2: "b", 3: "c"} | {i: f"n{i}" for i in ids}
    again = warehouse.load(batch, LoadRequest("p", "b3", primary_key=("id",)))
    assert (again.inserted, again.updated) == (0, 0)


def test_merge_on_a_timestamp_key_and_into_an_emptied_table(warehouse: Warehouse) -> None:
    t0 = dt.datetime(2024, 1, 1)

    def at(hours: list[int], v: int) -> pa.Table:
        return pa.table({"at": pa.array([t0 + dt.timedelta(hours=h) for h in hours]), "v": [v] * len(hours)})

    warehouse.load(at([0, 1], 1), LoadRequest("ts", "b1", primary_key=("at",)))
    result = warehouse.load(at([1, 2], 2), LoadRequest("ts", "b2", primary_key=("at",)))
    assert (result.inserted, result.updated) == (1, 1)
    assert rows_of(warehouse, 'SELECT v FROM ts ORDER BY "at"') == [{"v": 1}, {"v": 2}, {"v": 2}]
    warehouse.execute("DELETE FROM ts")
    refill = warehouse.load(at([5, 6], 3), LoadRequest("ts", "b3", primary_key=("at",)))
    assert (refill.inserted, refill.updated) == (2, 0)


def test_concurrent_merges_in_one_process_never_duplicate_a_key(duckdb_path: Path) -> None:
    """Two threads merge overlapping new keys into one DuckDB file: write transactions take turns,
    so the second sees the first's rows and updates them instead of inserting them again."""
    wh = open_warehouse(duckdb_path)
    wh.load(people([0], ["seed"]), LoadRequest("p", "seed", primary_key=("id",)))
    errors: list[BaseException] = []

    def load(name: str) -> None:
        try:
            batch = people(list(range(1, 2001)), [name] * 2000)
            open_warehouse(duckdb_path).load(batch, LoadRequest("p", name, primary_key=("id",)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rows_of(wh, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM p") == [{"n": 2001, "d": 2001}]


@pytest.mark.postgres
def test_keys_cross_backends_in_snapshots(
    duckdb_path: Path, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    """A DuckDB snapshot (recorded key) restores into PostgreSQL as a declared key, and back."""
    source = open_warehouse(duckdb_path)
    source.load(people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    url, schema = pg_schema
    pg = open_warehouse(url, schema=schema)
    restore_warehouse(pg, backup_warehouse(source, tmp_path / "a").folder)
    assert pg.tables()[0].primary_key == ("id",)
    with pytest.raises(WarehouseError):
        pg.execute("INSERT INTO \"p\" VALUES (1, 'again', 0)")
    back = open_warehouse(tmp_path / "back.duckdb")
    restore_warehouse(back, backup_warehouse(pg, tmp_path / "b").folder)
    assert back.tables()[0].primary_key == ("id",)
    assert declared_keys(tmp_path / "back.duckdb") == []
    with pytest.raises(KeyConflictError):
        back.load(people([2], ["x"]), LoadRequest("p", "b2", LoadMode.APPEND))


def test_a_warehouse_from_before_the_keys_table_still_lists_backs_up_and_loads(
    duckdb_path: Path, tmp_path: Path
) -> None:
    """A file written by an earlier version (declared keys, no ``_hw_table_keys``) is read as it is."""
    old = open_warehouse(duckdb_path, key_index=True)
    old.load(people([1, 2], ["a", "b"]), LoadRequest("p", "b1", primary_key=("id",)))
    old.load(pa.table({"n": [1, 2]}), LoadRequest("log", "b1", LoadMode.APPEND))
    old.execute("DROP TABLE _hw_table_keys")
    wh = open_warehouse(duckdb_path)
    assert {t.name: t.primary_key for t in wh.tables()} == {"log": (), "p": ("id",)}
    summary = backup_warehouse(wh, tmp_path / "bk")
    assert summary.tables["p"] == 2
    result = wh.load(people([2, 3], ["B", "c"]), LoadRequest("p", "b2"))
    assert (result.inserted, result.updated) == (1, 1)
