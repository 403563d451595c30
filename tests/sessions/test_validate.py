"""Checks on session folders before anything is sent, and the quarantine for folders that fail them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.sessions.conftest import make_sessions

from headwater.config import SessionsSettings
from headwater.sessions.model import BUILTIN_TYPED_FIELDS, parse_session_name, raw_prefix
from headwater.sessions.validate import Rules, check_session, quarantine_session, safe_relative
from headwater.storage.zones import Zone, zone_of

RULES = Rules.from_settings(SessionsSettings(), BUILTIN_TYPED_FIELDS)


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return make_sessions(tmp_path / "lab", count=1)[0]


def rename(folder: Path, name: str) -> Path:
    target = folder.with_name(name)
    folder.rename(target)
    meta = target / "metadata.txt"
    meta.write_text(meta.read_text().replace(f"session: {folder.name}", f"session: {name}"))
    return target


def problems(folder: Path, rules: Rules = RULES) -> list[str]:
    result = check_session(folder, rules)
    assert (result.session is None) == bool(result.problems)
    return list(result.problems)


def test_a_generated_session_passes_with_typed_metadata(session: Path) -> None:
    result = check_session(session, RULES)
    assert result.ok, result.problems
    assert result.session is not None
    meta = result.session.metadata
    assert isinstance(meta["fatigue_level"], int)
    assert isinstance(meta["duration_s"], float)
    assert isinstance(meta["room_temperature_c"], float)  # not typed: inferred
    assert meta["firmware"].count(".") == 2  # typed str, not a float
    assert "session" not in meta  # equal to the folder name; kept as session_id
    assert result.session.data_files == tuple(f"channels_{i:02d}.bin" for i in range(4))
    assert result.session.files == (*result.session.data_files, "metadata.txt")


def test_a_folder_name_that_is_not_a_real_date_is_refused(session: Path) -> None:
    bad = rename(session, "20210229_161221")  # 2021 has no 29 February
    found = problems(bad)
    assert found == [
        "20210229_161221: folder name is not a real date and time (day is out of range for month)"
    ]
    assert problems(rename(bad, "2021-03-01_1612")) == [
        "2021-03-01_1612: folder name is not a session start time YYYYMMDD_HHMMSS"
    ]
    assert parse_session_name("20200229_235959").day == 29


def test_missing_or_unparsable_metadata(session: Path) -> None:
    meta = session / "metadata.txt"
    text = meta.read_text()
    meta.unlink()
    assert problems(session) == [f"{session.name}/metadata.txt: missing metadata file"]
    meta.write_text(text + "this line has no separator\n")
    assert problems(session) == [
        f"{session.name}/metadata.txt: line 13: expected 'key: value', got 'this line has no separator'"
    ]
    meta.write_bytes(b"\xff\xfe" + text.encode())
    assert problems(session) == [f"{session.name}/metadata.txt: not UTF-8 text (byte 0)"]
    meta.write_text(text + "Fatigue Level: 2\n")
    assert problems(session) == [f"{session.name}/metadata.txt: line 13: field fatigue_level repeats line 3"]


def test_required_fields_and_types(session: Path) -> None:
    meta = session / "metadata.txt"
    text = meta.read_text()
    meta.write_text("\n".join(line for line in text.splitlines() if not line.startswith("hardware_model")))
    assert problems(session) == [
        f"{session.name}/metadata.txt: field hardware_model: required (str) but missing"
    ]
    meta.write_text(text.replace("fatigue_level: ", "fatigue_level: high"))
    assert problems(session) == [
        f"{session.name}/metadata.txt: line 3: field fatigue_level: expected an integer, got 'high"
        + text.split("fatigue_level: ")[1].split("\n")[0]
        + "'"
    ]
    meta.write_text(text.replace("duration_s: ", "duration_s: soon"))  # typed float, not required
    assert "field duration_s: expected a number" in problems(session)[0]
    custom = Rules.from_settings(SessionsSettings(required_fields={"lux": "float"}), BUILTIN_TYPED_FIELDS)
    meta.write_text(text)
    assert problems(session, custom) == [
        f"{session.name}/metadata.txt: field lux: required (float) but missing"
    ]


def test_metadata_that_contradicts_the_folder(session: Path) -> None:
    meta = session / "metadata.txt"
    text = meta.read_text()
    meta.write_text(text.replace("files: 4", "files: 5"))
    assert problems(session) == [
        f"{session.name}/metadata.txt: field files: says 5 data files, the folder holds 4"
    ]
    meta.write_text(text.replace(f"session: {session.name}", "session: 20200101_000000"))
    assert problems(session) == [
        f"{session.name}/metadata.txt: field session: '20200101_000000' differs from the folder name"
    ]


def test_empty_and_oversized_binaries(session: Path) -> None:
    (session / "channels_01.bin").write_bytes(b"")
    assert problems(session) == [f"{session.name}/channels_01.bin: empty file"]
    (session / "channels_01.bin").write_bytes(b"\0" * 200_000)
    small = Rules.from_settings(SessionsSettings(max_file_bytes=150_000), BUILTIN_TYPED_FIELDS)
    assert problems(session, small) == [
        f"{session.name}/channels_01.bin: 200,000 bytes, above the limit of 150,000 (sessions.max_file_bytes)"
    ]


def test_names_escaping_the_folder(session: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 10)
    os.symlink(outside, session / "evil.bin")
    os.symlink("../../secret.bin", session / "relative.bin")
    os.symlink("/etc", session / "etc")
    (session / "..\\up.bin").write_bytes(b"x")
    (session / "tab\tname.bin").write_bytes(b"x")
    found = problems(session)
    assert f"{session.name}/evil.bin: symlink to {outside} points outside the session folder" in found
    assert (
        f"{session.name}/relative.bin: symlink to ../../secret.bin points outside the session folder" in found
    )
    assert f"{session.name}/etc: symlinked folder (to /etc); copy the files in instead" in found
    assert (
        f"{session.name}/'..\\\\up.bin': file name with a path separator, '..' or control characters" in found
    )
    assert (
        f"{session.name}/'tab\\tname.bin': file name with a path separator, '..' or control characters"
        in found
    )
    assert len(found) == 5
    assert all("\n" not in p and "\t" not in p for p in found)
    assert safe_relative("a/b.parquet")
    for bad in ("", "/abs", "../x", "a/../b", "a//b", "a\\b", "a/\x00"):
        assert not safe_relative(bad), bad


def test_a_symlinked_session_folder_and_reserved_names(session: Path, tmp_path: Path) -> None:
    link = tmp_path / "lab" / "20210301_000000"
    os.symlink(session, link)
    assert problems(link) == [f"20210301_000000: is a symlink to {session}; a session must be a real folder"]
    (session / "manifest.json").write_text("{}")
    (session / "REASON.txt").write_text("x")
    found = problems(session)
    assert any("manifest.json: reserved name" in p for p in found)
    assert any("REASON.txt: left by a quarantine" in p for p in found)


def test_quarantine_moves_never_deletes_and_writes_the_reasons(session: Path, tmp_path: Path) -> None:
    (session / "channels_02.bin").write_bytes(b"")
    before = sorted(p.name for p in session.iterdir())
    result = check_session(session, RULES)
    q = tmp_path / "project" / "quarantine" / "sessions"
    moved = quarantine_session(result, q)
    assert not session.exists()
    assert moved.moved_to == q / session.name
    assert sorted(p.name for p in moved.moved_to.iterdir()) == sorted([*before, "REASON.json", "REASON.txt"])
    reason = json.loads((moved.moved_to / "REASON.json").read_text())
    assert reason["problems"] == [f"{session.name}/channels_02.bin: empty file"]
    assert reason["source"] == str(session)
    assert (moved.moved_to / "REASON.txt").read_text() == f"{session.name}/channels_02.bin: empty file\n"
    # the same name again is kept beside, never replacing what is in quarantine
    again = make_sessions(tmp_path / "lab2", count=1)[0]
    (again / "metadata.txt").unlink()
    second = quarantine_session(check_session(again, RULES), q)
    assert second.moved_to == q / f"{again.name}.1"
    assert (q / session.name / "REASON.json").exists()


def test_raw_is_a_write_once_zone_with_dated_prefixes() -> None:
    assert Zone.RAW.write_once
    assert Zone.LANDING.write_once
    assert not Zone.PROCESSED.write_once
    assert zone_of("s3://lab/hw/raw/sessions/2021/03/01/20210301_161221") is Zone.RAW
    assert raw_prefix("20210301_161221") == "raw/sessions/2021/03/01/20210301_161221"
