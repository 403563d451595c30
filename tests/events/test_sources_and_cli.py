"""The events pipeline reading from an S3 endpoint (moto over HTTP), and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.events import discover_months, process_month
from headwater.events.pipeline import processed_key
from headwater.events.source import Month
from headwater.storage.admin import make_s3_client
from tests.events.conftest import make_project
from tests.storage.conftest import MotoServer


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from headwater.cli import main; main()", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.s3
def test_process_month_from_an_s3_bucket(clean_project: Settings, moto_events: MotoServer) -> None:
    client = make_s3_client(moto_events.options())
    client.create_bucket(Bucket="events-src")
    local = clean_project.resolve("data/incoming/events/2021/01/events.csv")
    client.upload_file(str(local), "events-src", "raw/2021/01/events.csv")
    storage = clean_project.storage.model_copy(
        update={"endpoint_url": moto_events.endpoint, "region": "us-east-1", "path_style": True}
    )
    settings = clean_project.model_copy(update={"storage": storage})
    assert [str(f.month) for f in discover_months(settings, "s3://events-src/raw")] == ["2021-01"]
    df = process_month("s3://events-src/raw", "2021-01", settings=settings, load=False, force=True)
    assert len(df) == df.attrs["report"]["rows_read"]
    assert len(df) == len(local.read_text(encoding="utf-8").splitlines()) - 1
    assert df.attrs["report"]["source_uri"] == "s3://events-src/raw/2021/01/events.csv"
    assert str(df["event_time"].dt.tz) == "UTC"


def test_cli_process_and_report_json(clean_project: Settings, tmp_path: Path) -> None:
    project = clean_project.project_dir
    out = cli(project, "events", "process", "--month", "2021-01", "--no-load", "--json")
    assert out.returncode == 0, out.stderr
    (report,) = json.loads(out.stdout)
    assert report["month"] == "2021-01"
    assert report["rows_read"] == report["rows_out"] + report["quarantined"]
    out = cli(
        project,
        "events",
        "report",
        "--month",
        "2021-01",
        "--top",
        "3",
        "--out",
        str(tmp_path / "r"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["top_users"]) == 3
    assert (tmp_path / "r" / "report.html").is_file()


def test_cli_errors_are_one_line_with_exit_codes(clean_project: Settings) -> None:
    project = clean_project.project_dir
    out = cli(project, "events", "process", "--month", "2021-13")
    assert out.returncode == 2
    assert "month '2021-13': expected YYYY-MM" in out.stderr
    out = cli(project, "events", "process", "--month", "2022-01")
    assert out.returncode == 3
    assert "no events file for 2022-01" in out.stderr
    out = cli(project, "events", "report", "--month", "2021-02", "--json")
    assert out.returncode == 3
    assert "has not been processed; run: headwater events process --month 2021-02" in out.stderr


def test_cli_shows_a_month_held_by_the_gate_and_exits_3(tmp_path: Path) -> None:
    """A month an error check fails on is reported as held, with the gate's reason, nothing of it is
    published, and the command ends with one error line and exit code 3 (tables and JSON alike)."""
    settings = make_project(tmp_path / "p", rows=5_000)
    project = settings.project_dir
    with (project / "headwater.yaml").open("a", encoding="utf-8") as fh:
        fh.write(
            "\nquality:\n  checks:\n    fact_events:\n"
            "      - {type: range, name: small_companies, column: company_id, max: 5}\n"
        )
    out = cli(project, "events", "process", "--month", "2021-01", "--no-load")
    assert out.returncode == 3, out.stderr
    assert "held: fact_events batch" in out.stdout
    assert "small_companies" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("2021-01"))
    assert row.split()[-1] == "held"
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith("error: 2021-01: held back by the quality gate, nothing of it published or loaded")
    )
    assert "━" not in out.stderr  # standard error is a pipe here: no progress bar frozen into it
    assert not (settings.resolve("data") / processed_key(Month.parse("2021-01"))).exists()
    out = cli(project, "events", "process", "--month", "2021-01", "--no-load", "--json")
    assert out.returncode == 3
    (report,) = json.loads(out.stdout)
    assert report["held"] is True
