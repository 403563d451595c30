"""``headwater check``: files and warehouse tables, exit codes, --json, --checks, --partition, --history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.warehouse import LoadMode, LoadRequest, open_warehouse
from tests.quality.test_quarantine import cli

PROJECT = """\
name: checks
quality:
  sample_rows: 2
  checks:
    orders:
      - {type: not_null, column: order_id}
      - {type: unique, column: order_id}
      - {type: range, column: amount, min: 0, severity: warn}
"""


def orders(ids: list[int | None], amounts: list[float], month: dt.date = dt.date(2021, 1, 1)) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "month": pa.array([month] * len(ids), pa.date32()),
        }
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "headwater.yaml").write_text(PROJECT)
    return tmp_path


def test_check_a_file_exits_3_on_error_failures_and_0_on_warnings(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = project / "orders.parquet"
    pq.write_table(orders([1, 1, None, 4], [5.0, -1.0, 2.0, 3.0]), bad)
    code, out, err = cli(capsys, project, "check", str(bad))
    assert code == 3
    assert "orders: 2 error check(s) failed: not_null(order_id), unique(order_id)" in err
    assert err.strip().count("\n") == 0
    assert "sample failing row" in out

    code, out, _ = cli(capsys, project, "check", str(bad), "--json")
    assert code == 3
    report = json.loads(out)
    assert report["passed"] is False
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["unique(order_id)"]["failing_count"] == 2
    assert len(by_name["unique(order_id)"]["samples"]) == 2  # quality.sample_rows
    assert by_name["range(amount)"]["passed"] is False
    assert by_name["range(amount)"]["severity"] == "warn"

    good = project / "good" / "orders.parquet"
    good.parent.mkdir()
    pq.write_table(orders([1, 2], [-5.0, 3.0]), good)
    code, out, err = cli(capsys, project, "check", str(good.parent), "--table", "orders")
    assert code == 0
    assert "1 warning(s)" in err

    code, out, _ = cli(capsys, project, "check", "orders", "--history", "--json")
    assert code == 0
    history = json.loads(out)
    assert {t["check"] for t in history["trends"]} == {
        "not_null(order_id)",
        "unique(order_id)",
        "range(amount)",
    }
    assert len(history["runs"]) == 9  # three checks, three runs


def test_check_a_warehouse_table_and_one_partition(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wh = open_warehouse(project / "warehouse.duckdb")
    wh.load(orders([1, 2], [1.0, 2.0]), LoadRequest("orders", "b1", LoadMode.APPEND))
    wh.load(orders([2, 3], [1.0, 2.0], dt.date(2021, 2, 1)), LoadRequest("orders", "b2", LoadMode.APPEND))
    code, out, _ = cli(capsys, project, "check", "orders", "--json")
    assert code == 3
    assert json.loads(out)["rows"] == 4
    code, out, _ = cli(capsys, project, "check", "orders", "--partition", "month=2021-02-01", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["rows"] == 2
    assert report["partition"] == "month=2021-02-01"
    history = wh.query('SELECT partition_key, count(*) AS n FROM "_hw_check_history" GROUP BY 1 ORDER BY 1')
    assert history.to_pylist() == [
        {"partition_key": "month=2021-02-01", "n": 3},
        {"partition_key": None, "n": 3},
    ]


def test_check_usage_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "other.parquet"
    pq.write_table(orders([1], [1.0]), path)
    code, _, err = cli(capsys, project, "check", str(path))
    assert code == 2
    assert "no checks declared for other" in err
    checks = project / "checks.yaml"
    checks.write_text("orders:\n  - {type: not_null, column: order_id}\n")
    code, _, err = cli(capsys, project, "check", str(path), "--checks", str(checks))
    assert code == 2
    assert "no checks for table other" in err
    code, _, err = cli(capsys, project, "check", str(path), "--checks", str(checks), "--table", "orders")
    assert code == 0
    code, _, err = cli(capsys, project, "check", "orders", "--partition", "nonsense")
    assert code == 2
    assert "COLUMN=VALUE" in err
    code, _, err = cli(capsys, project, "check", str(project / "missing.parquet"))
    assert code == 3
    assert "not found" in err
