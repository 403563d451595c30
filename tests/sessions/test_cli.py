"""``headwater sessions ...``: the lab's daily flow through the CLI, JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sessions.conftest import make_project, make_sessions
from typer.testing import CliRunner

from headwater.cli import app
from headwater.errors import HeadwaterError

RUNNER = CliRunner()


@dataclass
class Run:
    code: int
    stdout: str
    error: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli(project: Path, *args: str) -> Run:
    """Invoke the CLI in-process; a HeadwaterError becomes its exit code and message, as ``main`` does."""
    result = RUNNER.invoke(app, ["--project", str(project), "sessions", *args])
    if isinstance(result.exception, HeadwaterError):
        return Run(result.exception.exit_code, result.stdout, str(result.exception))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, "")


def test_the_daily_flow_end_to_end(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p").project_dir
    lab = tmp_path / "lab"
    ids = [p.name for p in make_sessions(lab, count=3)]
    up = cli(project, "upload", str(lab), "--json")
    assert up.code == 0, up.error
    assert [s["outcome"] for s in up.json()["sessions"]] == ["uploaded"] * 3
    pre = cli(project, "preprocess", "--json")
    assert pre.code == 0, pre.error
    assert [r["status"] for r in pre.json()] == ["ready"] * 3
    assert cli(project, "preprocess", "--json").json() == []  # nothing new
    forced = cli(project, "preprocess", "--force", ids[0], "--json").json()
    assert forced[0]["ran"] is True
    found = cli(project, "query", "fatigue_level >= 1 and recorded_at >= 2021-02-01", "--json").json()
    assert [r["session_id"] for r in found] == ids
    assert all(len(r["processed_uris"]) == 2 for r in found)
    table = cli(project, "query", "fatigue_level >= 1")
    assert "3 matching session(s)" in table.stdout
    fetched = cli(project, "fetch", "fatigue_level >= 1", "--to", str(tmp_path / "c"), "--json").json()
    assert [s["fetched"] for s in fetched["sessions"]] == [2, 2, 2]
    again = cli(project, "fetch", "fatigue_level >= 1", "--to", str(tmp_path / "c"))
    assert "0 files fetched, 6 already present" in again.stdout
    listed = cli(project, "list", "--status", "ready", "--json").json()
    assert len(listed) == 3
    shown = cli(project, "show", ids[0], "--json").json()
    assert [e["status"] for e in shown["events"]] == [
        "uploaded", "preprocessing", "ready", "preprocessing", "ready"
    ]  # fmt: skip
    assert "metadata" in cli(project, "show", ids[0]).stdout
    fields = cli(project, "fields", "--json").json()
    assert fields["fields"]["room_temperature_c"] == "json"
    promoted = cli(project, "promote", "room_temperature_c", "--type", "float", "--json").json()
    assert promoted == {
        "field": "room_temperature_c",
        "type": "float",
        "sessions": 3,
        "version": 2,
        "already": False,
    }
    assert cli(project, "fields", "--json").json()["fields"]["room_temperature_c"] == "float"


def test_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p").project_dir
    lab = tmp_path / "lab"
    _good, bad = make_sessions(lab, count=2)
    (bad / "channels_00.bin").write_bytes(b"")
    up = cli(project, "upload", str(lab))
    assert up.code == 3
    assert up.error.startswith(f"1 session(s) quarantined, e.g. {bad.name}/channels_00.bin: empty file")
    assert "quarantined" in up.stdout
    assert "uploaded" in up.stdout
    bad_query = cli(project, "query", "fatige >= 3")
    assert bad_query.code == 2
    assert "position 1: unknown field 'fatige'; did you mean fatigue_level?" in bad_query.error
    assert cli(project, "show", "20990101_000000").code == 2
    assert cli(project, "promote", "x", "--type", "decimal").code == 2
    assert cli(project, "preprocess", "--session", "20990101_000000").code == 2


def test_a_failed_preprocessing_exits_3_and_the_others_finish(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", sessions={"preprocessor": "tests.sessions.plugins:forget_one"})
    make_sessions(tmp_path / "lab", count=2)
    assert cli(project.project_dir, "upload", str(tmp_path / "lab")).code == 0
    run = cli(project.project_dir, "preprocess", "--no-alert")
    assert run.code == 3
    assert run.error.startswith("2 session(s) failed, e.g. session ")
    assert "failed" in run.stdout


def test_watch_once_from_cron(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", sessions={"quiet_seconds": 0}).project_dir
    first, second = make_sessions(tmp_path / "rig", count=2)
    (first / "DONE").write_text("")
    run = cli(project, "watch", str(tmp_path / "rig"), "--once", "--marker", "DONE", "--json")
    assert run.code == 0, run.error
    outcomes = {s["session_id"]: s["outcome"] for s in run.json()["sessions"]}
    assert outcomes == {first.name: "uploaded", second.name: "waiting"}


def test_the_installed_command_prints_one_red_line(tmp_path: Path) -> None:
    """Through ``main`` in a child process: exit code and a single line on stderr."""
    project = make_project(tmp_path / "p").project_dir
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_DEBUG"}
    result = subprocess.run(
        [sys.executable, "-c", "from headwater.cli import main; main()", "-p", str(project), "sessions", "query",
         "hardware_model = X200"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "position 18: expected a value, found 'X200'; quote text values: 'X200'" in result.stderr
