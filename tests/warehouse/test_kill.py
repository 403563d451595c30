"""A load killed inside its transaction leaves the old state, no audit row, and lands once on re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from headwater.warehouse import LoadRequest, Warehouse
from tests.warehouse.conftest import content_hash, rows_of

ROOT = Path(__file__).resolve().parents[2]


def batch(lo: int, hi: int, tag: str) -> pa.Table:
    ids = list(range(lo, hi))
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [f"{tag}{i}" for i in ids]})


def start_hanging_load(url: str, schema: str, marker: Path, app: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PGAPPNAME": app, "PYTHONPATH": str(ROOT)}
    log = marker.with_suffix(".log")
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.warehouse.hang_load", url, schema, str(marker)],
            cwd=ROOT,
            env=env,
            stderr=err,
        )
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"loader exited early: {log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("loader never reached its transaction")
        time.sleep(0.05)
    return proc


def assert_recovers(wh: Warehouse, before: str) -> None:
    """Old state intact, no audit row for the killed load; the re-run lands it exactly once."""
    assert content_hash(wh, "t") == before
    assert rows_of(wh, "SELECT count(*) AS n FROM _hw_load_audit WHERE batch_id = 'b1'") == [{"n": 0}]
    result = wh.load(batch(500, 1500, "new"), LoadRequest("t", "b1", primary_key=("id",)))
    assert (result.inserted, result.updated) == (500, 500)
    assert wh.load(batch(500, 1500, "new"), LoadRequest("t", "b1", primary_key=("id",))).skipped
    assert rows_of(wh, "SELECT count(*) AS n, count(DISTINCT id) AS k FROM t") == [{"n": 1500, "k": 1500}]
    assert rows_of(wh, "SELECT count(*) AS n FROM _hw_load_audit WHERE batch_id = 'b1'") == [{"n": 1}]


@pytest.mark.slow
def test_kill_9_inside_the_transaction(
    warehouse: Warehouse, warehouse_url: tuple[str, str], tmp_path: Path
) -> None:
    warehouse.load(batch(0, 1000, "old"), LoadRequest("t", "b0", primary_key=("id",)))
    before = content_hash(warehouse, "t")
    proc = start_hanging_load(*warehouse_url, tmp_path / "inside", f"hw-kill-{uuid.uuid4().hex[:8]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert_recovers(warehouse, before)


@pytest.mark.postgres
@pytest.mark.slow
def test_pg_terminate_backend_inside_the_transaction(
    pg_schema: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from headwater.warehouse import open_warehouse

    url, schema = pg_schema
    wh = open_warehouse(url, schema=schema)
    wh.load(batch(0, 1000, "old"), LoadRequest("t", "b0", primary_key=("id",)))
    before = content_hash(wh, "t")
    app = f"hw-kill-{uuid.uuid4().hex[:8]}"
    proc = start_hanging_load(url, schema, tmp_path / "inside", app)
    try:
        assert content_hash(wh, "t") == before  # readers see the old state meanwhile
        with psycopg.connect(url, autocommit=True) as con:
            killed = con.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [app]
            ).fetchall()
        assert killed == [(True,)]
        assert_recovers(wh, before)
    finally:
        proc.kill()
        proc.wait(timeout=30)
