"""Backup to Parquet snapshots and restore, row for row, on and across both backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.errors import IntegrityError, WarehouseError
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.warehouse import LoadRequest, Warehouse, open_warehouse
from headwater.warehouse.backup import backup_warehouse, restore_warehouse
from headwater.warehouse.star import dimension_request
from tests.warehouse.conftest import content_hash, rows_of


def fill(wh: Warehouse) -> None:
    t = pa.table(
        {
            "id": pa.array(range(500), pa.int64()),
            "s": [None if i % 7 == 0 else f"v{i}" for i in range(500)],
            "amount": pa.array([Decimal(i) / 4 for i in range(500)], pa.decimal128(12, 2)),
            "at": pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i) for i in range(500)]),
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 30) for i in range(500)]),
            "ok": [i % 2 == 0 for i in range(500)],
            "empty": ["" for _ in range(500)],
        }
    )
    wh.load(t, LoadRequest("facts", "b1", primary_key=("id",)))
    wh.load(pa.table({"k": ["a", "b"], "v": [1, 2]}), dimension_request("dim", "d1", ["k"]))


def snapshot_of(wh: Warehouse) -> dict[str, str]:
    return {t.name: content_hash(wh, t.name) for t in wh.tables(include_internal=True)}


def test_round_trip_row_for_row(warehouse: Warehouse, tmp_path: Path) -> None:
    fill(warehouse)
    before = snapshot_of(warehouse)
    summary = backup_warehouse(warehouse, tmp_path / "bk")
    manifest = Manifest.read(summary.folder / MANIFEST_NAME)
    assert {f.table: f.rows for f in manifest.files}["facts"] == 500
    warehouse.execute('DROP TABLE "facts"')
    warehouse.load(pa.table({"k": ["zzz"], "v": [9]}), dimension_request("dim", "d2", ["k"]))
    restore_warehouse(warehouse, summary.folder)
    assert snapshot_of(warehouse) == before
    info = {t.name: t for t in warehouse.tables()}
    assert info["facts"].primary_key == ("id",)


@pytest.mark.postgres
def test_a_duckdb_snapshot_restores_into_postgres(
    duckdb_path: Path, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    source = open_warehouse(duckdb_path)
    fill(source)
    summary = backup_warehouse(source, tmp_path / "bk")
    url, schema = pg_schema
    target = open_warehouse(url, schema=schema)
    restore_warehouse(target, summary.folder)
    for table in ("facts", "dim"):
        assert rows_of(source, f'SELECT * FROM "{table}" ORDER BY 1') == rows_of(
            target, f'SELECT * FROM "{table}" ORDER BY 1'
        )


def test_a_tampered_snapshot_is_refused(warehouse: Warehouse, tmp_path: Path) -> None:
    fill(warehouse)
    summary = backup_warehouse(warehouse, tmp_path / "bk")
    victim = next((summary.folder / "tables").glob("*facts.parquet"))
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    before = snapshot_of(warehouse)
    with pytest.raises(IntegrityError, match=r"facts\.parquet: expected"):
        restore_warehouse(warehouse, summary.folder)
    assert snapshot_of(warehouse) == before


def test_a_folder_without_manifest_is_not_a_snapshot(warehouse: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"no manifest\.json"):
        restore_warehouse(warehouse, tmp_path)
