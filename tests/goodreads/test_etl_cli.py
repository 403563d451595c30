"""The ETL CLI in child processes: etl, batches, report and loadtest, their JSON, tables and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.goodreads.conftest import land, make_settings


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from headwater.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


def test_etl_batches_and_report(tmp_path: Path, clean_data: Path) -> None:
    project = tmp_path / "p"
    settings = make_settings(project)
    key = land(settings, clean_data, "b1")

    listed = run(project, "goodreads", "batches", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"batches": [], "new": [key]}

    done = run(project, "goodreads", "etl", "--json")
    assert done.returncode == 0, done.stderr
    cycle = json.loads(done.stdout)
    assert cycle["batches"][0]["state"] == "loaded"
    assert [s["stage"] for s in cycle["stages"]] == ["ingest", "transform", "checks", "load"]
    assert cycle["mb_per_s"] > 0

    again = run(project, "goodreads", "etl")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout

    table = run(project, "goodreads", "batches")
    assert table.returncode == 0
    assert "loaded" in table.stdout

    out = tmp_path / "report"
    report = run(project, "goodreads", "report", "--from", "2016-01-01", "--to", "2016-12-31", "--top", "3",
                 "--out", str(out), "--json")  # fmt: skip
    assert report.returncode == 0, report.stderr
    answers = json.loads(report.stdout)
    assert answers["from"] == "2016-01-01"
    assert len(answers["best_books"]) == 3
    assert (out / "best_books.png").is_file()
    assert (out / "rating_trend.csv").is_file()

    shown = run(project, "goodreads", "report", "--from", "2016-01-01", "--to", "2016-03-31", "--no-charts")
    assert shown.returncode == 0, shown.stderr
    assert "Best books (Bayesian average" in shown.stdout
    assert "Rating trend per month" in shown.stdout


def test_errors_are_one_line_with_their_exit_code(tmp_path: Path, clean_data: Path) -> None:
    project = tmp_path / "p"
    settings = make_settings(project)
    bad_date = run(project, "goodreads", "report", "--from", "2016-13-01", "--to", "2016-12-31")
    assert bad_date.returncode == 2
    assert bad_date.stderr.strip().count("\n") == 0
    assert "--from '2016-13-01': expected a date YYYY-MM-DD" in bad_date.stderr

    no_schema = run(project, "goodreads", "report", "--from", "2016-01-01", "--to", "2016-12-31")
    assert no_schema.returncode == 2
    assert "run 'headwater goodreads etl' first" in no_schema.stderr

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "book_1.csv").write_text("book_id\n1\n")
    land(settings, broken, "bad")
    failed = run(project, "goodreads", "etl")
    assert failed.returncode == 3
    assert "book_1.csv: line 1: header does not match the book columns" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error:")

    engine = run(project, "goodreads", "etl", "--engine", "flink")
    assert engine.returncode == 2
    assert "expected duckdb or spark" in engine.stderr


@pytest.mark.slow
def test_loadtest_small(tmp_path: Path) -> None:
    project = tmp_path / "p"
    make_settings(project)
    done = run(
        project, "goodreads", "loadtest", "--size", "400KB", "--workdir", str(tmp_path / "lt"), "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["generated_bytes"] >= 400_000
    assert result["reused_generated_data"] is False
    cycle = result["cycle"]
    assert cycle["batches"][0]["state"] == "loaded"
    assert cycle["landing_bytes"] == result["generated_bytes"]
    assert [s["stage"] for s in cycle["stages"]] == ["ingest", "transform", "checks", "load"]
    assert not (project / "warehouse.duckdb").exists()  # the project's own warehouse is untouched

    table = run(project, "goodreads", "loadtest", "--size", "400KB", "--workdir", str(tmp_path / "lt"))
    assert table.returncode == 0, table.stderr
    assert "reused" in table.stdout
    assert "MB/s end to end" in table.stdout
