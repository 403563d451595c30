"""The capture CLI in child processes: serve, capture --once/--follow (SIGTERM stops it cleanly), push, and
one-line errors with their exit codes."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from headwater.cli.goodreads_capture import parse_rate, parse_seconds
from headwater.errors import UsageError
from headwater.goodreads.capture_schema import Entity, parse_entities
from headwater.goodreads.spool import SpoolLayout
from tests.goodreads.capture_helpers import (
    api_server,
    assert_exactly_once,
    cli,
    expected_lines,
    landing_file_names,
    spool_files,
    spooled_lines,
    wait_healthy,
)

ENV = {"HEADWATER_GOODREADS__SPOOL_DIR": "spool", "HEADWATER_STORAGE__ROOT": "data",
       "HEADWATER_GOODREADS__ROTATE_BYTES": "50000"}  # fmt: skip


def test_capture_once_then_push_json(tmp_path: Path) -> None:
    with api_server() as server:
        proc = cli(tmp_path, "goodreads", "capture", "--api", server.url, "--once", "--rate", "200/s",
                   "--push-every", "0", "--json", env=ENV)  # fmt: skip
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["rows"] == sum(len(expected_lines(e)) for e in Entity)
    assert summary["entities"]["reviews"]["caught_up"] is True
    assert summary["pushed"]["files"] == 0
    assert "rows/s" in err.decode()  # the status line, on stderr when not on a terminal
    assert_exactly_once(tmp_path / "spool")
    proc = cli(tmp_path, "goodreads", "push", "--json", env=ENV)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    pushed = json.loads(out)
    assert pushed["rows"] == summary["rows"]
    assert pushed["files"] == len(spool_files(tmp_path / "spool"))
    assert pushed["batches"][0]["url"].startswith(str(tmp_path / "data" / "landing" / "goodreads"))
    assert set(landing_file_names(tmp_path / "data").values()) == {1}


def test_capture_follow_stops_cleanly_on_sigterm_closing_and_pushing_its_files(tmp_path: Path) -> None:
    with api_server() as server:
        proc = cli(tmp_path, "goodreads", "capture", "--api", server.url, "--follow", "--entities", "authors,books",
                   "--poll", "0.2s", "--push-every", "1m", "--json", env=ENV)  # fmt: skip
        want = len(expected_lines(Entity.BOOK))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(spooled_lines(tmp_path / "spool", Entity.BOOK, include_open=True)) >= want:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["stopped"] is True
    assert summary["pushed"]["files"] >= 2
    layout = SpoolLayout(tmp_path / "spool")
    assert not list(layout.open.iterdir())
    assert not layout.closed_files()
    assert_exactly_once(tmp_path / "spool", [Entity.AUTHOR, Entity.BOOK])


def test_serve_answers_until_interrupted(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = cli(tmp_path, "goodreads", "serve", "--port", str(port), "--scale", "0.002", "--rate", "0")
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
        assert health["entities"]["authors"]["total"] == 4
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert b"serving 4 authors" in err


def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    cases = [
        (["capture", "--rate", "fast"], 2, "--rate: 'fast' is not a rate"),
        (
            ["capture", "--api", "http://127.0.0.1:9", "--retries", "1", "--timeout", "1s"],
            6,
            "gave up after 2",
        ),
    ]
    for args, code, text in cases:
        proc = cli(tmp_path, "goodreads", *args, env=ENV)
        _, err = proc.communicate(timeout=120)
        message = err.decode().strip()
        assert proc.returncode == code, (args, message)
        assert text in message, (args, message)
        assert "\n" not in message, (args, message)


def test_option_parsing() -> None:
    assert parse_rate("20/s") == 20.0
    assert parse_rate("1200/m") == 20.0
    assert parse_seconds("500ms", "--x") == 0.5
    assert parse_seconds("5m", "--x") == 300.0
    assert parse_entities(["authors,reviews", "author"]) == [Entity.AUTHOR, Entity.REVIEWS]
    assert parse_entities([]) == list(Entity)
    for bad in (lambda: parse_rate("0/s"), lambda: parse_seconds("soon", "--poll"),
                lambda: parse_entities(["shelves"])):  # fmt: skip
        with pytest.raises(UsageError):
            bad()
