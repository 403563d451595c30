"""Run the code location: prepare the project's DAGSTER_HOME, start the UI (webserver + daemon), or run
a pipeline in-process against the same instance, so manual and scheduled runs behave alike and both
show up in the UI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.errors import DataError, HeadwaterError, UsageError

DAGSTER_YAML = """\
# Written by headwater. Local SQLite storage under this folder; no telemetry, no network.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {max_runs}
"""

PIPELINES: dict[str, tuple[str, str | None]] = {
    # name -> (job, dynamic partitions definition or None)
    "events": ("events_job", "events_months"),
    "sessions": ("sessions_job", "sessions"),
    "goodreads": ("goodreads_etl_job", None),
    "goodreads-push": ("goodreads_push_job", None),
}


def dagster_home(settings: Settings, *, max_concurrent_runs: int = 1) -> Path:
    """The project's DAGSTER_HOME, created with telemetry off. One run at a time by default: the
    embedded DuckDB warehouse takes one writer at a time."""
    home = settings.resolve(settings.orchestrate.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML.format(max_runs=max_concurrent_runs), encoding="utf-8")
    return home


def environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(dagster_home(settings))
    env["HEADWATER_PROJECT"] = str(settings.project_dir.resolve())
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return env


def ui_command(host: str, port: int) -> list[str]:
    exe = Path(sys.executable).parent / "dagster"
    return [str(exe), "dev", "-m", "headwater.orchestrate.definitions", "-h", host, "-p", str(port)]


def initialise_instance(settings: Settings) -> Path:
    """Create the instance's SQLite storage once, before several processes (webserver, daemon, an
    in-process run) open it at the same time and race to create the same tables."""
    home = dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    return home


def start_ui(settings: Settings, host: str = "127.0.0.1", port: int = 3000) -> int:
    """Run ``dagster dev`` (webserver + daemon) for the project until interrupted; returns its exit code."""
    initialise_instance(settings)
    proc = subprocess.Popen(ui_command(host, port), env=environment(settings), cwd=settings.project_dir)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=30)


@dataclass(frozen=True)
class RunOutcome:
    pipeline: str
    partition: str | None
    run_id: str
    success: bool
    dagster_home: str


def root_cause(error: Any) -> str:
    """The innermost cause of a Dagster error record, on one line (Dagster wraps user errors)."""
    if error is None:
        return "failed"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = str(getattr(error, "message", error)).strip().splitlines()
    return lines[0] if lines else "failed"


def _check_partition(pipeline: str, partition: str) -> None:
    """Refuse a partition key the pipeline cannot run, before it is registered: a key like 2021-13 would
    stay in the instance's partition list, and its run would fail through every retry (minutes)."""
    if pipeline == "events":
        from headwater.events.source import Month

        if str(Month.parse(partition)) != partition:
            raise UsageError(f"partition {partition!r}: expected a month YYYY-MM, e.g. 2021-01")
    elif pipeline == "sessions":
        from headwater.sessions.model import parse_session_name

        try:
            parse_session_name(partition)
        except DataError as exc:
            raise UsageError(f"partition {exc}") from exc


def run_pipeline(settings: Settings, pipeline: str, partition: str | None = None) -> RunOutcome:
    """Run a pipeline's job in this process against the project's Dagster instance (same assets, retry
    policy and checks as the scheduled runs). A dynamic partition is registered first if it is new."""
    if pipeline not in PIPELINES:
        raise UsageError(f"pipeline {pipeline!r}: expected one of {', '.join(sorted(PIPELINES))}")
    job_name, partitions = PIPELINES[pipeline]
    if partitions and not partition:
        raise UsageError(f"pipeline {pipeline!r} is partitioned: give --partition (e.g. 2021-01)")
    if partition:
        _check_partition(pipeline, partition)
    home = dagster_home(settings)
    import dagster as dg

    from headwater.orchestrate.build import build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if partitions and partition and not instance.has_dynamic_partition(partitions, partition):
            instance.add_dynamic_partitions(partitions, [partition])
        result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
    if not result.success:
        failures = [
            f"{e.step_key}: {root_cause(getattr(e.event_specific_data, 'error', None))}"
            for e in result.all_events
            if e.is_step_failure
        ]
        raise HeadwaterError(
            f"{pipeline} run {result.run_id} failed: " + ("; ".join(failures) or "see the Dagster UI")
        )
    return RunOutcome(pipeline, partition, result.run_id, result.success, str(home))
