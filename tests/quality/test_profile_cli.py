"""``headwater profile``: outputs, stdout discipline for pipes, --accept, a warehouse table, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml
from typer.testing import CliRunner, Result

from headwater.cli import app
from headwater.config import init_project, load_settings
from headwater.errors import ConfigError, UsageError
from headwater.warehouse import LoadMode, LoadRequest, open_warehouse

RUNNER = CliRunner()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess: exit codes and the one-line error handler."""
    code = "from headwater.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def invoke(project: Path, *args: str) -> Result:
    """In process (fast): paths are given relative to the project folder."""
    fixed = [str(project / a) if a.endswith((".csv", ".html", ".json")) else a for a in args]
    return RUNNER.invoke(app, ["--project", str(project), *fixed])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path, "demo")
    table = pa.table(
        {
            "id": pa.array(range(1, 301), pa.int64()),
            "status": ["new", "paid", "shipped"] * 100,
            "amount": [float(i % 50) for i in range(300)],
        }
    )
    pacsv.write_csv(table, tmp_path / "orders.csv")
    return tmp_path


def test_profile_writes_html_and_json_and_prints_a_summary(project: Path) -> None:
    res = invoke(project, "profile", "orders.csv", "--html", "o.html", "--json", "o.json")
    assert res.exit_code == 0, res.output
    assert "orders: 300 rows, 3 columns" in res.stdout
    assert (project / "o.html").read_text().count("<svg") == 3
    assert json.loads((project / "o.json").read_text())["rows"] == 300


def test_json_to_stdout_prints_nothing_else(project: Path) -> None:
    res = invoke(project, "profile", "orders.csv", "--json", "-")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["table"] == "orders"
    assert [c["name"] for c in data["columns"]] == ["id", "status", "amount"]


def test_suggest_checks_prints_only_yaml_on_stdout(project: Path) -> None:
    res = invoke(project, "profile", "orders.csv", "--suggest-checks")
    assert res.exit_code == 0, res.output
    checks = yaml.safe_load(res.stdout)["quality"]["checks"]["orders"]
    assert {"type": "unique", "columns": ["id"]} in checks
    assert {"type": "accepted_values", "column": "status", "values": ["new", "paid", "shipped"]} in checks
    assert "300 rows" in res.stderr  # the summary went to stderr


def test_accept_writes_the_project_file_once(project: Path) -> None:
    before = (project / "headwater.yaml").read_text()
    res = invoke(project, "profile", "orders.csv", "--accept")
    assert res.exit_code == 0, res.output
    assert (project / "headwater.yaml").read_text().startswith(before.rstrip("\n"))
    settings = load_settings(project, env={})
    assert {"type": "not_null", "column": "id"} in settings.quality.checks["orders"]
    again = invoke(project, "profile", "orders.csv", "--accept")
    assert isinstance(again.exception, ConfigError)  # exit code 2 through main()
    assert "quality.checks.orders already exists" in str(again.exception)


def test_profile_a_table_of_the_project_warehouse(project: Path) -> None:
    wh = open_warehouse(project / "warehouse.duckdb")
    wh.load(
        pacsv.read_csv(project / "orders.csv"), LoadRequest("orders", batch_id="b1", mode=LoadMode.APPEND)
    )
    res = invoke(project, "profile", "orders", "--warehouse", "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == 300


def test_bad_input_is_one_line_and_exit_2(project: Path) -> None:
    res = run("profile", "absent.csv", cwd=project)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: absent.csv: no such file or folder (a warehouse table? add --warehouse)"
    ]
    bad_key = invoke(project, "profile", "orders.csv", "--key", "nope")
    assert isinstance(bad_key.exception, UsageError)
    assert bad_key.exception.exit_code == 2
    assert "--key nope: no such column" in str(bad_key.exception)


def test_bytes_that_are_no_text_are_one_line_without_a_traceback(project: Path) -> None:
    import re

    import numpy as np

    (project / "binary.csv").write_bytes(np.random.default_rng(0).bytes(5000))
    res = run("profile", "binary.csv", cwd=project)
    assert res.returncode == 3
    [line] = res.stderr.strip().splitlines()
    assert re.fullmatch(
        r"error: binary\.csv: cannot read: not UTF-8 text \(a line holds byte 0x[0-9a-f]{2}\); "
        r"profile reads UTF-8 CSV and Parquet",
        line,
    ), line
    # a line of such bytes in a CSV: not counted, and no traceback either
    (project / "one_bad_line.csv").write_bytes(b"a,b\n1,2\n" + bytes(range(128, 256)) + b"\n3,4\n")
    res = run("profile", "one_bad_line.csv", cwd=project)
    assert res.returncode == 0
    assert res.stderr == ""
    assert "1 line(s) did not parse" in res.stdout


def test_an_empty_file_is_one_line_and_a_header_alone_has_columns_without_a_type(project: Path) -> None:
    (project / "empty.csv").write_bytes(b"")
    res = run("profile", "empty.csv", cwd=project)
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        "error: empty.csv: empty file: a CSV starts with a header line, a Parquet file with PAR1"
    ]
    (project / "header.csv").write_text("a,b\n", encoding="utf-8")
    res = run("profile", "header.csv", "--json", "-", cwd=project)
    assert res.returncode == 0, res.stderr
    profile = json.loads(res.stdout)
    assert profile["rows"] == 0
    assert [(c["name"], c["type"]) for c in profile["columns"]] == [("a", "NULL"), ("b", "NULL")]
