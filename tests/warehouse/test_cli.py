"""The ``headwater warehouse`` commands, DuckDB file contention, and type widening rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.errors import WarehouseBusyError
from headwater.manifest import FileRecord, Manifest, sha256_file
from headwater.warehouse import open_warehouse
from headwater.warehouse.types import BIGINT, DOUBLE, INTEGER, VARCHAR, decimal, varchar, widen_type

runner = CliRunner()


def hw(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_load_sql_tables_backup_restore(tmp_path: Path) -> None:
    db = str(tmp_path / "wh.duckdb")
    batch = tmp_path / "batch"
    batch.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), batch / "part-0.parquet")
    Manifest(
        [
            FileRecord(
                "part-0.parquet",
                (batch / "part-0.parquet").stat().st_size,
                sha256_file(batch / "part-0.parquet"),
                2,
            )
        ]
    ).write(batch / "manifest.json")
    out = json.loads(
        hw(
            "warehouse",
            "--url",
            db,
            "load",
            "items",
            "--manifest",
            str(batch / "manifest.json"),
            "-k",
            "id",
            "--json",
        )
    )
    assert out["inserted"] == 2
    assert "already loaded" in hw(
        "warehouse", "--url", db, "load", "items", "--manifest", str(batch / "manifest.json")
    )
    assert json.loads(hw("warehouse", "--url", db, "sql", "SELECT count(*) AS n FROM items", "--json")) == [
        {"n": 2}
    ]
    assert json.loads(hw("warehouse", "--url", db, "tables", "--json"))[0]["primary_key"] == ["id"]
    snap = json.loads(hw("warehouse", "--url", db, "backup", str(tmp_path / "bk"), "--json"))["snapshot"]
    hw("warehouse", "--url", db, "sql", "--write", "DELETE FROM items")
    hw("warehouse", "--url", db, "restore", snap)
    assert json.loads(hw("warehouse", "--url", db, "sql", "SELECT v FROM items ORDER BY id", "--json")) == [
        {"v": "a"},
        {"v": "b"},
    ]


def test_a_breaking_change_is_one_red_line_and_exit_5(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    pq.write_table(pa.table({"id": [1], "n": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": [2], "n": ["x"]}), tmp_path / "b.parquet")
    hw("warehouse", "--url", str(db), "load", "t", str(tmp_path / "a.parquet"), "-k", "id")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "headwater"),
            "warehouse",
            "--url",
            str(db),
            "load",
            "t",
            str(tmp_path / "b.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 5
    assert proc.stderr.strip().splitlines() == [
        "error: t.n: cannot load VARCHAR into a BIGINT column (breaking change); cast the source or load into a new table"
    ]


def test_every_warehouse_command_has_help() -> None:
    for command in ("load", "sql", "tables", "backup", "restore"):
        assert "Usage" in hw("warehouse", command, "--help")


def test_a_held_duckdb_file_is_busy_after_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        wh = open_warehouse(db, lock_timeout=0.5)
        with pytest.raises(WarehouseBusyError, match="still locked by another process"):
            wh.tables()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
    assert open_warehouse(db).tables() == []


@pytest.mark.parametrize(
    ("target", "incoming", "expected"),
    [
        (INTEGER, BIGINT, BIGINT),
        (BIGINT, INTEGER, BIGINT),
        (INTEGER, DOUBLE, DOUBLE),
        (varchar(5), varchar(9), varchar(9)),
        (varchar(5), VARCHAR, VARCHAR),
        (VARCHAR, INTEGER, VARCHAR),
        (INTEGER, VARCHAR, None),
        (decimal(10, 2), decimal(12, 4), decimal(12, 4)),
        (INTEGER, decimal(5, 0), INTEGER),
        (BIGINT, decimal(12, 2), decimal(21, 2)),
    ],
)
def test_widening_rules(target: object, incoming: object, expected: object) -> None:
    assert widen_type(target, incoming) == expected  # type: ignore[arg-type]
