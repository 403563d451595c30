"""Sessions and Goodreads in the code location: the sessions sensor turns uploaded sessions into one run
each, a failing preprocessor fails its run after the retries (session marked failed), and the Goodreads
ETL has its 10-minute schedule and landing sensor, and its gates are asset checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from headwater.goodreads.etl_publish import GATED_TABLES
from headwater.orchestrate import build_definitions
from headwater.sessions import FileZone, SessionStatus, open_catalog, upload_sessions
from tests.goodreads.conftest import land
from tests.goodreads.conftest import make_settings as goodreads_settings
from tests.sessions import plugins
from tests.sessions.conftest import make_project, make_sessions


def test_uploaded_sessions_are_preprocessed_once_and_failures_fail_the_run(tmp_path: Path) -> None:
    settings = make_project(
        tmp_path / "p",
        sessions={"preprocessor": "tests.sessions.plugins:fail_some"},
        orchestrate={"retry_delay": 0.01},
    )
    folders = make_sessions(tmp_path / "lab", count=3)
    upload_sessions(settings, tmp_path / "lab")
    bad = folders[1].name
    plugins.FAIL_SESSIONS.add(bad)
    try:
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("sessions_uploaded_sensor")
        job = defs.resolve_job_def("sessions_job")
        with dg.instance_for_test() as instance:
            result = sensor(dg.build_sensor_context(instance=instance))
            assert isinstance(result, dg.SensorResult)
            keys = [r.partition_key for r in result.run_requests or []]
            assert keys == sorted(f.name for f in folders)
            assert [r.run_key for r in result.run_requests or []] == [f"session:{k}" for k in keys]
            instance.add_dynamic_partitions("sessions", [k for k in keys if k])
            outcomes = {
                k: job.execute_in_process(instance=instance, partition_key=k, raise_on_error=False).success
                for k in keys
                if k
            }
            assert outcomes == {k: k != bad for k in keys if k}
            catalog = open_catalog(settings)
            states = {k: (rec.status if (rec := catalog.get(k)) else None) for k in keys if k}
            assert states == {k: SessionStatus.FAILED if k == bad else SessionStatus.READY for k in keys if k}
            failed_run = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            (record,) = failed_run
            retries = [
                e
                for e in instance.all_logs(record.dagster_run.run_id)
                if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
            ]
            assert len(retries) == 3
            again = sensor(dg.build_sensor_context(instance=instance))  # nothing new to preprocess
            assert isinstance(again, dg.SensorResult)
            assert not again.run_requests
    finally:
        plugins.FAIL_SESSIONS.discard(bad)


def test_a_run_takes_back_the_claim_its_dead_attempt_left_and_no_other_run_does(tmp_path: Path) -> None:
    settings = make_project(tmp_path / "p", orchestrate={"retry_delay": 0.01})
    (folder,) = make_sessions(tmp_path / "lab", count=1)
    upload_sessions(settings, tmp_path / "lab")
    sid = folder.name
    run_id = str(uuid.uuid4())
    catalog = open_catalog(settings)
    # an attempt of this run claimed the session, then died (killed) without releasing the claim
    left = catalog.claim(sid, force=False, claim_timeout=3600, owner=f"dagster-run:{run_id}")
    assert left.claimed
    job = build_definitions(settings).resolve_job_def("sessions_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sessions", [sid])
        other = job.execute_in_process(instance=instance, partition_key=sid)  # another run: a no-op
        assert other.success
        record = catalog.get(sid)
        assert record is not None
        assert record.status is SessionStatus.PREPROCESSING
        same = job.execute_in_process(instance=instance, partition_key=sid, run_id=run_id)
        assert same.success
    record = catalog.get(sid)
    assert record is not None
    assert record.status is SessionStatus.READY
    assert record.files_in(FileZone.PROCESSED)


def test_goodreads_schedule_and_sensor_are_defined(tmp_path: Path) -> None:
    settings = make_project(tmp_path / "p")
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("goodreads_every_10_minutes")
    assert schedule.cron_schedule == "*/10 * * * *"
    assert defs.resolve_schedule_def("goodreads_spool_push").cron_schedule == "* * * * *"
    sensor = defs.resolve_sensor_def("goodreads_landing_sensor")
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SkipReason)
        assert "no new landing batches" in str(result.skip_message)


def test_goodreads_gates_are_asset_checks(tmp_path: Path, clean_data: Path) -> None:
    """Each gate of a cycle shows in Dagster as an asset check on goodreads_warehouse: passed when the
    batch went through, failed (with the failing check in its metadata) when the gate held it back."""
    for name, extra, held in [
        ("clean", None, False),
        (
            "strict",
            {
                "quality": {
                    "checks": {"fact_reviews": [{"type": "range", "column": "review_votes", "max": 0}]}
                }
            },
            True,
        ),
    ]:
        settings = goodreads_settings(tmp_path / name, extra)
        land(settings, clean_data, "b1")
        defs = build_definitions(settings)
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("goodreads_etl_job").execute_in_process(instance=instance)
            assert result.success  # a held batch is the gate working, not a failed run
            evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == {f"{t}_checks" for t in GATED_TABLES}
        fact = evaluations["fact_reviews_checks"]
        assert fact.passed is (not held)
        assert all(e.passed for n, e in evaluations.items() if n != "fact_reviews_checks")
        failed = fact.metadata["failed"].value
        assert isinstance(failed, dict)
        assert bool(failed) is held
        if held:
            assert any("range(review_votes)" in key for key in failed)
