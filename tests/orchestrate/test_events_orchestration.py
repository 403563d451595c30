"""The Dagster code location: definitions load, the sensor registers and requests new months, manual
runs work in-process, and a run that fails after its retries sends exactly one alert within 60 s."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from pydantic import SecretStr

from headwater.config import Settings
from headwater.orchestrate import build_definitions
from headwater.orchestrate.runner import environment, initialise_instance, run_pipeline
from tests.alerting import SmtpReceiver, WebhookReceiver
from tests.events.conftest import make_project


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    return make_project(tmp_path / "proj", rows=20_000)


def with_alerts(
    settings: Settings, hook: WebhookReceiver, smtp: SmtpReceiver, **orchestrate: object
) -> Settings:
    alerts = settings.alerts.model_copy(
        update={
            "webhook_url": SecretStr(hook.url),
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_to": ["oncall@example.org"],
        }
    )
    return settings.model_copy(
        update={"alerts": alerts, "orchestrate": settings.orchestrate.model_copy(update=orchestrate)}
    )


def test_definitions_validate_with_the_dagster_cli(project: Settings) -> None:
    env = environment(project)
    exe = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(exe), "definitions", "validate", "-m", "headwater.orchestrate.definitions"],
        env=env,
        cwd=project.project_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stderr + out.stdout


def test_code_location_has_partitioned_assets_sensor_schedule_and_alerts(project: Settings) -> None:
    defs = build_definitions(project)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"events_month", "events_report"} <= keys
    assert defs.resolve_job_def("events_job").partitions_def is not None
    assert {s.name for s in defs.sensors or []} >= {"events_new_month_sensor", "alert_on_run_failure"}
    assert {s.name for s in defs.schedules or []} >= {"events_monthly_schedule"}
    policy = defs.resolve_assets_def(dg.AssetKey("events_month")).op.retry_policy
    assert policy is not None
    assert policy.max_retries == 3
    assert max(policy.calculate_delay(n) for n in (1, 2, 3)) <= 120


def test_sensor_registers_new_months_and_requests_their_runs(project: Settings) -> None:
    defs = build_definitions(project)
    sensor = defs.resolve_sensor_def("events_new_month_sensor")
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SensorResult)
        months = [f"2021-{m:02d}" for m in range(1, 7)]
        assert [r.partition_key for r in result.run_requests or []] == months
        (add,) = result.dynamic_partitions_requests or []
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert list(add.partition_keys) == months
        instance.add_dynamic_partitions("events_months", months)
        again = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(again, dg.SensorResult)
        assert not again.dynamic_partitions_requests
        # same files, same run keys: the daemon dedupes them, so nothing runs twice
        assert [r.run_key for r in again.run_requests or []] == [r.run_key for r in result.run_requests or []]
        # a new month appears
        src = project.resolve("data/incoming/events")
        (src / "2021/07").mkdir()
        shutil.copy(src / "2021/06/events.csv", src / "2021/07/events.csv")
        third = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(third, dg.SensorResult)
        (add,) = third.dynamic_partitions_requests or []
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert list(add.partition_keys) == ["2021-07"]


def test_manual_run_in_process_materialises_the_partition(project: Settings) -> None:
    outcome = run_pipeline(project, "events", "2021-02")
    assert outcome.success
    with dg.DagsterInstance.from_config(outcome.dagster_home) as instance:
        mat = instance.get_latest_materialization_event(dg.AssetKey("events_report"))
        assert mat is not None
        assert mat.dagster_event is not None
        assert mat.dagster_event.partition == "2021-02"
    assert project.resolve("reports/events/2021-02/report.html").is_file()


@pytest.mark.slow
def test_failed_run_alerts_once_within_60s_via_the_daemon(
    tmp_path: Path, webhook_receiver: WebhookReceiver, smtp_receiver: SmtpReceiver
) -> None:
    """A real dagster-daemon evaluates the run-failure sensor; the run fails after 3 retries because its
    month has no file, and exactly one alert arrives on each channel."""
    project = make_project(tmp_path / "proj", rows=5_000)
    shutil.rmtree(project.resolve("data/incoming/events"))  # keep the new-month sensor idle
    settings = with_alerts(
        project, webhook_receiver, smtp_receiver, retry_delay=0.05, failure_sensor_interval=2
    )
    # the daemon reads the project file, so write the alert settings there
    cfg = settings.project_dir / "headwater.yaml"
    cfg.write_text(
        cfg.read_text()
        + f"""
alerts:
  webhook_url: {webhook_receiver.url}
  smtp_host: {smtp_receiver.host}
  smtp_port: {smtp_receiver.port}
  smtp_to: [oncall@example.org]
orchestrate:
  retry_delay: 0.05
  failure_sensor_interval: 2
"""
    )
    env = environment(settings)
    home = initialise_instance(settings)
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: headwater.orchestrate.definitions\n"
        f"      working_directory: {settings.project_dir}\n"
    )
    exe = Path(sys.executable).parent / "dagster-daemon"
    proc = subprocess.Popen(
        [str(exe), "run", "-w", str(home / "workspace.yaml")],
        env=env,
        cwd=settings.project_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(8)  # the daemon's first sensor tick records the cursor; failures after it are reported
        with pytest.raises(Exception, match="no events file for 2030-01"):
            run_pipeline(settings, "events", "2030-01")
        failed_at = time.time()
        (post,) = webhook_receiver.wait(1, timeout=60)
        (mail,) = smtp_receiver.wait(1, timeout=60)
        latency = max(post.at, mail.at) - failed_at
        assert latency < 60, f"alert took {latency:.1f} s"
        assert "events_job failed for 2030-01" in post.body["text"]
        assert "no events file for 2030-01" in post.body["attachments"][0]["text"]
        assert "events_job failed" in mail.body["Subject"]
        time.sleep(6)  # more sensor ticks: still one alert per channel
        assert len(webhook_receiver.received) == 1
        assert len(smtp_receiver.received) == 1
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (record,) = instance.get_run_records()
            attempts = [
                e
                for e in instance.all_logs(record.dagster_run.run_id)
                if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
            ]
            assert len(attempts) == 3
        print(f"alert latency {latency:.1f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("pipeline", "partition", "message"),
    [
        ("events", "2021-13", "month '2021-13': expected YYYY-MM"),
        ("events", "2021-1", "month '2021-1': expected YYYY-MM"),
        ("sessions", "20210230_101010", "20210230_101010: folder name is not a real date"),
        ("sessions", "yesterday", "yesterday: folder name is not a session start time"),
    ],
)
def test_a_partition_the_pipeline_cannot_run_is_refused_before_it_is_registered(
    tmp_path: Path, pipeline: str, partition: str, message: str
) -> None:
    """`headwater run events --partition 2021-13` used to register the key and fail through every retry."""
    from headwater.config import init_project, load_settings
    from headwater.errors import UsageError
    from headwater.orchestrate.runner import dagster_home

    init_project(tmp_path / "p")
    settings = load_settings(tmp_path / "p", env={})
    with pytest.raises(UsageError, match=message):
        run_pipeline(settings, pipeline, partition)
    with dg.DagsterInstance.from_config(str(dagster_home(settings))) as instance:
        name = "events_months" if pipeline == "events" else "sessions"
        assert not instance.has_dynamic_partition(name, partition)
