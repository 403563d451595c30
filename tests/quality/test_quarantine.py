"""Quarantine: list/show/release/drop round trips through the CLI (exit codes, --json), released rows
re-entering a pipeline, the write-once ledger, and the same store on S3 (moto over HTTP)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.cli.app import main
from headwater.config import Settings
from headwater.errors import DataError, UsageError
from headwater.quality import (
    EntryState,
    QuarantineStore,
    gate_batch,
    list_quarantine,
    mark_release_done,
    parse_checks,
    quarantine_rows,
    read_released,
    release_quarantine,
    released_batches,
    strip_internal,
)
from tests.quality.conftest import make_settings


def cli(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process the way the console script does; (exit code, stdout, stderr)."""
    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["headwater", "--project", str(project), *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return code, out, err


def parse_rejects() -> pa.Table:
    """What the events pipeline hands over for lines that did not parse."""
    return pa.table(
        {
            "_hw_line": pa.array([3, 9], pa.int64()),
            "_hw_reason": ["CAST event_time: could not convert '31/12/2021'", None],
            "_hw_raw": ["1,31/12/2021,5,2,click,", "7,2021-01-02 10:00:00,5"],
        }
    )


def invalid_rows() -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array([4, 4], pa.int64()),
            "user_id": pa.array([None, 2], pa.int64()),
            "_hw_line": pa.array([6, 8], pa.int64()),
        }
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "headwater.yaml").write_text("name: q\n")
    return tmp_path


def test_rows_are_held_with_reasons_lines_and_raw_text(settings: Settings) -> None:
    entry = quarantine_rows(
        settings, dataset="events", batch_id="events-2021-01-aa", rows=parse_rejects(),
        reason="line does not parse", source="/in/2021/01/events.csv", check="parse",
    )  # fmt: skip
    assert entry.rows == 2
    assert entry.reasons == {"CAST event_time: could not convert '31/12/2021'": 1, "line does not parse": 1}
    assert "/quarantine/events/" in entry.uri
    assert "/events-2021-01-aa/" in entry.uri
    stored = pq.read_table(entry.uri)
    assert stored.column("_hw_line").to_pylist() == [3, 9]
    assert stored.column("_hw_check").to_pylist() == ["parse", "parse"]
    assert entry.raw_key is not None
    raw = Path(settings.storage_root) / entry.raw_key
    assert raw.read_text().splitlines() == ["1,31/12/2021,5,2,click,", "7,2021-01-02 10:00:00,5"]
    again = quarantine_rows(
        settings, dataset="events", batch_id="events-2021-01-aa", rows=parse_rejects(),
        reason="line does not parse", source="/in/2021/01/events.csv", check="parse",
    )  # fmt: skip
    assert again.entry_id == entry.entry_id  # a re-run does not hold the same rows twice
    per_row = quarantine_rows(
        settings, dataset="events", batch_id="b", rows=invalid_rows(), reason=pa.array(["dup", "dup"]),
        source="x", check="validate",
    )  # fmt: skip
    assert per_row.reasons == {"dup": 2}
    with pytest.raises(DataError, match="1 reasons for 2 rows"):
        quarantine_rows(
            settings, dataset="events", batch_id="b", rows=invalid_rows(), reason=pa.array(["x"]), source="x"
        )
    empty = quarantine_rows(
        settings, dataset="events", batch_id="b", rows=invalid_rows().slice(0, 0), reason="r", source="x"
    )
    assert empty.rows == 0
    assert len(list_quarantine(settings)) == 2


def test_cli_round_trip_list_show_release_drop(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(project)
    held = quarantine_rows(
        settings,
        dataset="events",
        batch_id="b1",
        rows=invalid_rows(),
        reason="invalid",
        source="s",
        check="validate",
    )
    raw = quarantine_rows(
        settings,
        dataset="events",
        batch_id="b1",
        rows=parse_rejects(),
        reason="unparsed",
        source="s",
        check="parse",
    )

    code, out, _ = cli(capsys, project, "quarantine", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert {e["entry_id"] for e in listed} == {held.entry_id, raw.entry_id}
    assert all(e["state"] == "held" for e in listed)
    code, out, _ = cli(capsys, project, "quarantine", "list", "--summary", "--json")
    assert code == 0
    assert {(g["check"], g["rows"]) for g in json.loads(out)} == {("validate", 2), ("parse", 2)}
    code, out, _ = cli(capsys, project, "quarantine", "list")
    assert code == 0
    assert held.entry_id in out

    code, out, _ = cli(capsys, project, "quarantine", "show", held.entry_id[:8], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["rows"] == 2
    assert [r["_hw_line"] for r in shown["sample"]] == [6, 8]
    assert cli(capsys, project, "quarantine", "show", held.entry_id)[0] == 0
    code, _, err = cli(capsys, project, "quarantine", "show", "q-nope")
    assert code == 2
    assert "not found" in err

    code, out, _ = cli(capsys, project, "quarantine", "release", held.entry_id, "--note", "fixed", "--json")
    assert code == 0
    release = json.loads(out)
    assert release["rows"] == 2
    assert release["entries"] == [held.entry_id]
    code, _, err = cli(capsys, project, "quarantine", "release", held.entry_id)
    assert code == 2
    assert "already released" in err

    code, _, err = cli(capsys, project, "quarantine", "drop", raw.entry_id)
    assert code == 2
    assert "--reason" in err
    code, _, err = cli(capsys, project, "quarantine", "drop", raw.entry_id, "--reason", "junk lines")
    assert code == 2  # no terminal to confirm on
    assert "--yes" in err
    code, out, _ = cli(
        capsys, project, "quarantine", "drop", raw.entry_id, "--reason", "junk lines", "--yes", "--json"
    )
    assert code == 0
    assert json.loads(out)["resolution"]["note"] == "junk lines"
    assert cli(capsys, project, "quarantine", "drop", raw.entry_id, "--reason", "again", "--yes")[0] == 2

    code, out, _ = cli(capsys, project, "quarantine", "list", "--state", "all", "--json")
    states = {e["entry_id"]: e["state"] for e in json.loads(out)}
    assert states == {held.entry_id: "released", raw.entry_id: "dropped"}
    assert json.loads(cli(capsys, project, "quarantine", "list", "--json")[1]) == []
    code, out, _ = cli(capsys, project, "quarantine", "show", raw.entry_id, "--json")
    dropped = json.loads(out)
    assert dropped["sample"] == []
    assert dropped["resolution"]["dropped_sha256"] == raw.sha256
    assert not Path(raw.uri).exists()  # the rows are gone, the record stays
    assert cli(capsys, project, "quarantine", "list", "--state", "bogus")[0] == 2


def test_released_rows_reenter_the_pipeline_and_are_checked_again(settings: Settings) -> None:
    checks = parse_checks(
        [{"type": "not_null", "column": "user_id"}, {"type": "unique", "column": "event_id"}]
    )
    batch = pa.table(
        {"event_id": pa.array([1, 2, 3], pa.int64()), "user_id": pa.array([5, None, 7], pa.int64())}
    )
    gate = gate_batch(settings, "events", batch, batch_id="b1", checks=checks, alert=False, record=False)
    assert gate.quarantine is not None
    assert gate.quarantined_rows == 1
    assert released_batches(settings, "events") == []

    fixed = pa.table({"event_id": pa.array([2], pa.int64()), "user_id": pa.array([6], pa.int64())})
    release = release_quarantine(
        settings, [gate.quarantine.entry_id], note="user looked up", replacement=fixed
    )
    (pending,) = released_batches(settings, "events")
    assert pending.batch_id == release.batch_id
    rows = read_released(settings, pending)
    assert rows.column("_hw_quarantine_id").to_pylist() == [gate.quarantine.entry_id]
    again = gate_batch(
        settings, "events", strip_internal(rows), batch_id=pending.batch_id, checks=checks, alert=False
    )
    assert again.publish
    mark_release_done(settings, pending)
    mark_release_done(settings, pending)  # idempotent
    assert released_batches(settings, "events") == []
    assert len(released_batches(settings, "events", pending=False)) == 1
    manifest = json.loads((Path(settings.storage_root) / pending.manifest_key).read_text())
    assert manifest["meta"]["released_from"] == [gate.quarantine.entry_id]
    (entry,) = list_quarantine(settings, "events", state=EntryState.RELEASED)
    assert entry.resolution is not None
    assert entry.resolution.release_batch == release.batch_id


def test_release_refuses_mixed_datasets_and_replacements_for_several_entries(settings: Settings) -> None:
    a = quarantine_rows(settings, dataset="a", batch_id="b", rows=invalid_rows(), reason="r", source="s")
    b = quarantine_rows(settings, dataset="b", batch_id="b", rows=invalid_rows(), reason="r", source="s")
    with pytest.raises(UsageError, match="span datasets"):
        release_quarantine(settings, [a.entry_id, b.entry_id])
    c = quarantine_rows(settings, dataset="a", batch_id="c", rows=invalid_rows(), reason="r", source="s")
    with pytest.raises(UsageError, match="exactly one entry"):
        release_quarantine(settings, [a.entry_id, c.entry_id], replacement=invalid_rows())
    assert {e.state for e in list_quarantine(settings)} == {EntryState.HELD}


@pytest.fixture
def s3_settings(tmp_path: Path) -> Iterator[Settings]:
    from tests.storage.conftest import CREDENTIALS, create_bucket, start_moto

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        for server in start_moto([], "http"):
            bucket = create_bucket(server)
            storage: dict[str, Any] = {
                "root": f"s3://{bucket}/hw",
                "endpoint_url": server.endpoint,
                "path_style": True,
                "region": "us-east-1",
            }
            yield make_settings(tmp_path, storage=storage)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.s3
def test_the_same_store_works_on_s3(s3_settings: Settings) -> None:
    entry = quarantine_rows(
        s3_settings,
        dataset="events",
        batch_id="b1",
        rows=parse_rejects(),
        reason="r",
        source="s3://x/2021/01/events.csv",
    )
    assert entry.uri.startswith("s3://")
    (listed,) = list_quarantine(s3_settings)
    assert listed.entry_id == entry.entry_id
    release = release_quarantine(s3_settings, [entry.entry_id], note="ok")
    assert read_released(s3_settings, released_batches(s3_settings, "events")[0]).num_rows == 2
    keys = {i.key for i in QuarantineStore.from_settings(s3_settings).store.list_keys("")}
    assert release.key in keys
    assert any(k.endswith(f"{entry.entry_id}.resolved.json") for k in keys)
