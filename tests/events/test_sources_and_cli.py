"""The events pipeline reading from an S3 endpoint (moto over HTTP), and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.events import discover_months, process_month
from headwater.storage.admin import make_s3_client
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
