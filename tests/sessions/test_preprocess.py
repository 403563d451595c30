"""Preprocessing of new sessions only: the default summary, exactly-once claims, failures that mark only their
session failed and alert once, plug-in loading and output checks, fetch of the results."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.alerting import WebhookReceiver
from tests.sessions import plugins
from tests.sessions.conftest import make_project, make_sessions, s3_storage

from headwater.config import Settings
from headwater.errors import ConfigError, IntegrityError, PreprocessError, UsageError
from headwater.sessions import (
    SessionStatus,
    fetch,
    load_preprocessor,
    open_catalog,
    pending_sessions,
    preprocess_pending,
    preprocess_session,
    query,
    query_frame,
    summarise_session,
    upload_sessions,
)
from headwater.sessions.model import FileZone
from headwater.sessions.summary import PERCENTILES, exact_percentiles


def uploaded(settings: Settings, lab: Path) -> list[str]:
    report = upload_sessions(settings, lab)
    assert report.ok
    return [s.session_id for s in report.sessions]


def test_exact_percentiles_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 1000, 12_345):
        data = rng.standard_normal(n).astype(np.float32)
        want = np.percentile(data.astype(np.float64), PERCENTILES)
        np.testing.assert_allclose(exact_percentiles(data.copy()), want, rtol=1e-6, atol=1e-6)


def test_the_default_preprocessor_writes_per_channel_statistics(lab: Path, settings: Settings) -> None:
    first = uploaded(settings, lab)[0]
    result = preprocess_session(settings, first)
    assert result.ran
    assert result.status is SessionStatus.READY
    assert [f.name for f in result.files] == ["summary.parquet", "windows.parquet"]
    record = open_catalog(settings).get(first)
    assert record is not None
    assert record.status is SessionStatus.READY
    assert record.processed_prefix == f"processed/sessions/2021/02/01/{first}"
    processed = {f.name: f for f in record.files_in(FileZone.PROCESSED)}
    summary = pq.read_table(Path(settings.storage_root) / processed["summary.parquet"].key).to_pandas()
    assert len(summary) == 32  # 4 files x 8 channels
    raw = np.fromfile(lab / first / "channels_02.bin", dtype="<f4").reshape(-1, 8)
    row = summary[summary.channel == 2 * 8 + 5].iloc[0]
    col = raw[:, 5].astype(np.float64)
    assert row["count"] == len(col)
    assert row["mean"] == pytest.approx(col.mean(), rel=1e-9)
    assert row["std"] == pytest.approx(col.std(), rel=1e-9)
    assert (row["min"], row["max"]) == (col.min(), col.max())
    np.testing.assert_allclose(
        [row[f"p{q:02.0f}"] for q in PERCENTILES], np.percentile(col, PERCENTILES), rtol=1e-6
    )
    windows = pq.read_table(Path(settings.storage_root) / processed["windows.parquet"].key).to_pandas()
    rate = record.metadata["sample_rate_hz"]
    per_channel = -(-len(col) // rate)
    assert len(windows) == 32 * per_channel
    w = windows[(windows.channel == 21) & (windows.window == 0)].iloc[0]
    assert w["mean"] == pytest.approx(col[:rate].mean(), rel=1e-5)


def test_an_abandoned_claim_is_requested_again_under_a_new_run_key(lab: Path, settings: Settings) -> None:
    from headwater.sessions.preprocess import pending_run_keys

    sids = uploaded(settings, lab)
    assert pending_run_keys(settings) == [(s, f"session:{s}") for s in sids]
    dead = open_catalog(settings).claim(sids[0], force=False, claim_timeout=3600)  # a worker that then dies
    assert dead.claimed
    assert sids[0] not in dict(pending_run_keys(settings))  # a live claim is left alone
    expired = settings.model_copy(
        update={"sessions": settings.sessions.model_copy(update={"claim_timeout": 0})}
    )
    keys = dict(pending_run_keys(expired))
    assert keys[sids[0]].startswith(f"session:{sids[0]}:reclaim:")  # not the key the dead run used
    assert keys[sids[1]] == f"session:{sids[1]}"


def test_exactly_once_no_op_when_ready_and_force_runs_again(lab: Path, settings: Settings) -> None:
    sid = uploaded(settings, lab)[0]
    results = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        results.append(preprocess_session(settings, sid))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.ran for r in results) == [False, False, False, True]
    again = preprocess_session(settings, sid)
    assert not again.ran
    assert again.message == "already preprocessed; pass force to run again"
    forced = preprocess_session(settings, sid, force=True)
    assert forced.ran
    record = open_catalog(settings).get(sid)
    assert record is not None
    assert record.attempts == 2
    assert len(record.files_in(FileZone.PROCESSED)) == 2  # replaced, not duplicated
    with pytest.raises(UsageError, match="not in the catalog"):
        preprocess_session(settings, "20990101_000000")


def test_a_failing_preprocessor_marks_only_its_session_failed_and_alerts_once(
    lab: Path, project_factory: Callable[..., Settings], webhook_receiver: WebhookReceiver
) -> None:
    settings = project_factory(
        sessions={"preprocessor": "tests.sessions.plugins:fail_some"},
        alerts={"webhook_url": webhook_receiver.url},
    )
    ids = uploaded(settings, lab)
    plugins.FAIL_SESSIONS.clear()
    plugins.FAIL_SESSIONS.add(ids[1])
    try:
        results = preprocess_pending(settings)
        assert [(r.session_id, r.status) for r in results] == [
            (ids[0], SessionStatus.READY),
            (ids[1], SessionStatus.FAILED),
            (ids[2], SessionStatus.READY),
        ]
        failed = results[1]
        assert failed.alerted
        assert failed.message is not None
        assert failed.message.startswith(f"session {ids[1]}: preprocessing failed")
        assert failed.message.endswith(f"ValueError: cannot summarise {ids[1]}: amplifier saturated")
        record = open_catalog(settings).get(ids[1])
        assert record is not None
        assert record.status is SessionStatus.FAILED
        assert record.reason == f"ValueError: cannot summarise {ids[1]}: amplifier saturated"
        assert not record.files_in(FileZone.PROCESSED)
        assert pending_sessions(settings) == []  # a failed session is not picked up again by itself
        assert preprocess_pending(settings) == []
        with pytest.raises(PreprocessError, match="amplifier saturated"):  # an explicit retry fails again ...
            preprocess_session(settings, ids[1])
        received = webhook_receiver.wait(1, timeout=5)
        assert len(received) == 1  # ... and is not alerted twice
        body = received[0].body
        assert body["headwater"]["title"] == f"Session {ids[1]}: preprocessing failed"
        assert body["headwater"]["fields"]["session"] == ids[1]
        plugins.FAIL_SESSIONS.clear()
        fixed = preprocess_session(settings, ids[1])  # the retry after a fix
        assert fixed.status is SessionStatus.READY
    finally:
        plugins.FAIL_SESSIONS.clear()


def test_alert_false_leaves_alerting_to_the_orchestrator(
    lab: Path, project_factory: Callable[..., Settings], webhook_receiver: WebhookReceiver
) -> None:
    settings = project_factory(
        sessions={"preprocessor": "tests.sessions.plugins:escape_out"},
        alerts={"webhook_url": webhook_receiver.url},
    )
    sid = uploaded(settings, lab)[0]
    with pytest.raises(PreprocessError, match="outside the output folder") as info:
        preprocess_session(settings, sid, alert=False)
    assert "\n" not in str(info.value)
    assert webhook_receiver.wait(1, timeout=0.5) == []


def test_a_plug_in_with_unaccounted_output_fails_its_session(
    lab: Path, project_factory: Callable[..., Settings]
) -> None:
    settings = project_factory(sessions={"preprocessor": "tests.sessions.plugins:forget_one"})
    sid = uploaded(settings, lab)[0]
    results = preprocess_pending(settings, alert=False)
    assert [r.status for r in results] == [SessionStatus.FAILED] * 3
    record = open_catalog(settings).get(sid)
    assert record is not None
    assert record.reason == f"session {sid}: output b.txt was written but not returned"


def test_a_preprocessor_setting_that_does_not_load_touches_no_session(
    lab: Path, project_factory: Callable[..., Settings]
) -> None:
    settings = project_factory(sessions={"preprocessor": "tests.sessions.plugins:nope"})
    ids = uploaded(settings, lab)
    with pytest.raises(ConfigError, match="has no function nope"):
        preprocess_pending(settings)
    with pytest.raises(ConfigError, match="has no function nope"):
        preprocess_session(settings, ids[0])
    assert pending_sessions(settings) == ids


def test_loading_preprocessors() -> None:
    assert load_preprocessor("default") == ("default", summarise_session)  # the pyproject entry point
    _, func = load_preprocessor("tests.sessions.plugins:metadata_echo")
    assert func is plugins.metadata_echo
    with pytest.raises(ConfigError, match=r"no entry point of that name in group headwater\.preprocessors"):
        load_preprocessor("fancy")
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        load_preprocessor("no_such_module:f")
    with pytest.raises(ConfigError, match="has no function missing"):
        load_preprocessor("tests.sessions.plugins:missing")


def test_a_raw_file_changed_after_upload_is_refused(lab: Path, settings: Settings) -> None:
    sid = uploaded(settings, lab)[0]
    record = open_catalog(settings).get(sid)
    assert record is not None
    target = Path(settings.storage_root) / record.raw_prefix / "channels_01.bin"
    os.chmod(target, stat.S_IWUSR | stat.S_IRUSR)
    with target.open("r+b") as fh:
        fh.write(b"\x00\x00\x00\x00")
    with pytest.raises(IntegrityError, match="differs from the catalog's"):
        preprocess_session(settings, sid, alert=False)
    assert open_catalog(settings).get(sid).status is SessionStatus.FAILED  # type: ignore[union-attr]


def test_query_fetch_and_the_notebook_api(lab: Path, settings: Settings, tmp_path: Path) -> None:
    ids = uploaded(settings, lab)
    preprocess_pending(settings)
    records = query(settings.project_dir, "fatigue_level >= 1 and status = 'ready'")
    assert [r.session_id for r in records] == ids
    assert all(len(r.processed_uris) == 2 for r in records)
    frame = query_frame(settings, "fatigue_level >= 1")
    assert list(frame.session_id) == ids
    assert {"fatigue_level", "hardware_model", "processed_uris"} <= set(frame.columns)
    assert query_frame(settings, "fatigue_level > 99").empty
    dest = tmp_path / "compute"
    report = fetch(settings, "fatigue_level >= 1", dest)
    assert [s.fetched for s in report.sessions] == [2, 2, 2]
    for sid in ids:
        record = open_catalog(settings).get(sid)
        assert record is not None
        for ref in record.files_in(FileZone.PROCESSED):
            assert (dest / sid / ref.name).read_bytes() == (
                Path(settings.storage_root) / ref.key
            ).read_bytes()
    again = fetch(settings, "fatigue_level >= 1", dest)
    assert [s.skipped for s in again.sessions] == [2, 2, 2]
    (dest / ids[0] / "summary.parquet").write_bytes(b"damaged")
    repaired = fetch(settings, f"session_id = '{ids[0]}'", dest)
    assert (repaired.sessions[0].fetched, repaired.sessions[0].skipped) == (1, 1)
    assert pq.read_table(dest / ids[0] / "summary.parquet").num_rows == 32


def test_fetch_refuses_a_file_that_differs_from_the_catalog(
    lab: Path, settings: Settings, tmp_path: Path
) -> None:
    sid = uploaded(settings, lab)[0]
    preprocess_session(settings, sid)
    record = open_catalog(settings).get(sid)
    assert record is not None
    ref = next(f for f in record.files_in(FileZone.PROCESSED) if f.name == "windows.parquet")
    stored = Path(settings.storage_root) / ref.key
    manifest = stored.parent / "manifest.json"
    other = b"other bytes"  # a consistent rewrite of file and manifest that the catalog never saw
    manifest.write_text(manifest.read_text().replace(ref.sha256, hashlib.sha256(other).hexdigest()))
    stored.write_bytes(other)
    with pytest.raises(
        IntegrityError, match=rf"{sid}/windows.parquet: the stored file differs from the catalog"
    ):
        fetch(settings, f"session_id = '{sid}'", tmp_path / "c")


def test_sessions_not_ready_are_listed_not_fetched(lab: Path, settings: Settings, tmp_path: Path) -> None:
    ids = uploaded(settings, lab)
    preprocess_session(settings, ids[0])
    report = fetch(settings, "fatigue_level >= 0", tmp_path / "c")
    assert [s.session_id for s in report.sessions] == [ids[0]]
    assert report.not_ready == [(ids[1], "uploaded"), (ids[2], "uploaded")]


@pytest.mark.s3
def test_the_whole_flow_on_s3(tmp_path: Path, s3_env: dict[str, str]) -> None:
    settings = make_project(
        tmp_path / "p",
        storage=s3_storage(s3_env),
        sessions={"preprocessor": "tests.sessions.plugins:metadata_echo"},
    )
    lab = tmp_path / "lab"
    make_sessions(lab, count=2)
    ids = uploaded(settings, lab)
    results = preprocess_pending(settings)
    assert [r.status for r in results] == [SessionStatus.READY] * 2
    records = query(settings, "channels = 32")
    assert records[0].processed_uris == [f"{s3_env['root']}/processed/sessions/2021/02/01/{ids[0]}/echo.txt"]
    report = fetch(settings, "channels = 32", tmp_path / "compute")
    assert [s.fetched for s in report.sessions] == [1, 1]
    text = (tmp_path / "compute" / ids[0] / "echo.txt").read_text()
    assert "channels_00.bin:100000" in text
    assert "hardware_model=" in text
