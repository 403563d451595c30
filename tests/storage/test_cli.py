"""The storage commands end to end through the CLI on local folders (and ``storage check`` on moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.errors import HeadwaterError
from tests.storage.conftest import MotoServer, write_files

runner = CliRunner()
BATCH = "landing/events/2021/01/31/b1"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit code and output, with a HeadwaterError mapped the way ``main`` maps it (code and one line)."""
    result = runner.invoke(app, list(args), env=env)
    if isinstance(result.exception, HeadwaterError):
        return result.exception.exit_code, str(result.exception)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "command", [["push"], ["pull"], ["verify"], ["storage"], ["storage", "check"], ["storage", "janitor"]]
)
def test_every_storage_command_has_help(command: list[str]) -> None:
    code, out = invoke(*command, "--help")
    assert code == 0
    assert "Usage" in out


def test_push_verify_pull_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path / "b1", {"a.csv": 5000, "b.csv": 10})
    args = ["push", "b1", "data", "--dataset", "events", "--date", "2021-01-31"]
    code, out = invoke(*args, "--dry-run")
    assert code == 0, out
    assert "would push 2 of 2 files" in out
    assert not (tmp_path / "data").exists()
    code, out = invoke(*args, "--json")
    assert code == 0, out
    body = json.loads(out)
    assert [f["status"] for f in body["files"]] == ["verified", "verified"]
    assert (tmp_path / "data" / BATCH / "manifest.json").is_file()
    code, out = invoke("verify", f"data/{BATCH}")
    assert code == 0, out
    assert "2 of 2 files ok" in out
    code, out = invoke("pull", f"data/{BATCH}", "out")
    assert code == 0, out
    assert (tmp_path / "out" / "a.csv").read_bytes() == (tmp_path / "b1" / "a.csv").read_bytes()
    write_files(tmp_path / "b1", {"a.csv": 5000}, seed=5)
    code, out = invoke(*args)
    assert code == 4
    assert "write-once" in out
    code, out = invoke("storage", "janitor", "data", "--older-than-hours", "0", "--json")
    assert code == 0, out
    assert json.loads(out)["removed"] == 0


def test_insecure_endpoint_is_refused_by_the_cli(tmp_path: Path) -> None:
    write_files(tmp_path / "b", {"a.csv": 10})
    code, out = invoke(
        "push", str(tmp_path / "b"), "s3://bucket/landing/x", "--endpoint-url", "http://192.0.2.1:9000"
    )
    assert code == 2
    assert "allow-insecure-http" in out


@pytest.mark.s3
def test_storage_check_warns_about_an_unprotected_bucket(moto_server: MotoServer, bucket: str) -> None:
    env = {
        "HEADWATER_STORAGE__ENDPOINT_URL": moto_server.endpoint,
        "HEADWATER_STORAGE__REGION": "us-east-1",
        "HEADWATER_STORAGE__PATH_STYLE": "true",
    }
    code, out = invoke("storage", "check", f"s3://{bucket}", env=env)
    assert code == 0, out
    assert "versioning Disabled" in out
    assert "warning" in out
