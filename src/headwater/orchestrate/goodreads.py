"""The Goodreads-style ETL in Dagster: a cycle every 10 minutes and on arrival of landing batches, and a
periodic push of the capture spool to the landing zone.

* ``goodreads_warehouse`` runs one ETL cycle (landing -> working -> processed -> star schema, with quality
  gates) over every unfinished landing batch; a cycle already running elsewhere makes it a no-op. Each
  gate is an asset check (``<table>_checks``): it fails, with severity ERROR, when the gate held a batch of
  the cycle back, and its metadata lists each check's failing rows. The blocking happens in the cycle,
  batch by batch (nothing of a held batch is loaded, one alert is sent); a Dagster-blocking check would
  instead fail the whole run, load nothing of the other batches' downstream, and retry the cycle for
  nothing, so these checks report rather than block.
* ``goodreads_every_10_minutes`` (schedule) and ``goodreads_landing_sensor`` (new complete landing batches;
  the run key is the sorted batch list, so the same batches are not requested twice) trigger it.
* ``goodreads_spool_push`` (schedule, every minute) pushes closed capture spool files to landing, verified.
"""

import dagster as dg

from headwater.config import Settings
from headwater.goodreads.capture_push import push_spool
from headwater.goodreads.etl import new_landing_batches, run_cycle
from headwater.goodreads.etl_publish import GATED_TABLES
from headwater.goodreads.etl_report import CycleReport
from headwater.orchestrate.common import retry_policy

GROUP = "goodreads"


def gate_check_results(report: CycleReport, specs: list[dg.AssetCheckSpec]) -> list[dg.AssetCheckResult]:
    """One result per gate that ran in the cycle: passed unless it held a batch back (every batch it
    checked, with each check's failing rows, in the metadata). A gate that did not run reports nothing."""
    results = []
    for spec in specs:
        table = spec.name.removesuffix("_checks")
        runs = [(b.batch, g) for b in report.batches for g in b.gates if g["table"] == table]
        if not runs:
            continue
        failed = {
            f"{batch}: {c['name']}": f"{c['failing']:,} failing ({c['severity']}): {c['message']}"
            for batch, g in runs
            for c in g["checks"]
            if not c["passed"]
        }
        results.append(
            dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=all(g["passed"] for _, g in runs),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "batches": ", ".join(batch for batch, _ in runs),
                    "checks": sum(len(g["checks"]) for _, g in runs),
                    "quarantined_rows": sum(int(g["quarantined_rows"]) for _, g in runs),
                    "failed": dg.MetadataValue.json(failed),
                },
            )
        )
    return results


def build_goodreads(settings: Settings) -> dict[str, list[object]]:
    policy = retry_policy(settings)
    specs = [
        dg.AssetCheckSpec(
            name=f"{table}_checks",
            asset="goodreads_warehouse",
            blocking=False,  # the cycle holds the batch back itself (see above)
            description=f"the gate before {table} is loaded: a failed error check holds the batch back",
        )
        for table in GATED_TABLES
    ]

    @dg.asset(
        name="goodreads_warehouse",
        group_name=GROUP,
        retry_policy=policy,
        check_specs=specs,
        kinds={"duckdb", "spark", "parquet"},
        description="One ETL cycle: new landing batches typed, transformed by the SQL models (DuckDB or Spark), "
        "checked and merged into the star schema (authors, books, users, dates, reviews).",
    )
    def goodreads_warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]
        report = run_cycle(settings)
        if report.busy:
            context.log.info(f"another cycle holds the lock ({report.holder}); nothing to do")
        report.raise_for_failures()
        return dg.MaterializeResult(
            check_results=gate_check_results(report, specs),
            metadata={
                "batches": len(report.batches),
                "blocked_by_checks": len(report.blocked),
                "landing_bytes": report.landing_bytes,
                "mb_per_s": round(report.mb_per_s, 1),
                "seconds": round(report.seconds, 2),
                "engine": report.engine,
            },
        )

    @dg.asset(
        name="goodreads_landing",
        group_name=GROUP,
        retry_policy=policy,
        kinds={"s3"},
        description="Closed capture spool files pushed to landing/goodreads/ (verified, write-once).",
    )
    def goodreads_landing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]
        report = push_spool(settings)
        return dg.MaterializeResult(metadata={"report": dg.MetadataValue.text(str(report)[:2000])})

    etl_job = dg.define_asset_job("goodreads_etl_job", selection=[goodreads_warehouse])
    push_job = dg.define_asset_job("goodreads_push_job", selection=[goodreads_landing])

    every_10 = dg.ScheduleDefinition(
        name="goodreads_every_10_minutes",
        job=etl_job,
        cron_schedule="*/10 * * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="One ETL cycle every 10 minutes.",
    )
    push_schedule = dg.ScheduleDefinition(
        name="goodreads_spool_push",
        job=push_job,
        cron_schedule="* * * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Push closed capture spool files to landing every minute (well within 5 minutes).",
    )

    @dg.sensor(
        name="goodreads_landing_sensor",
        job=etl_job,
        minimum_interval_seconds=settings.orchestrate.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs a cycle when complete landing batches arrive that the ETL has not seen.",
    )
    def goodreads_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        new = new_landing_batches(settings)
        if not new:
            return dg.SkipReason("no new landing batches")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key="goodreads:" + ",".join(new))])

    return {
        "assets": [goodreads_warehouse, goodreads_landing],
        "jobs": [etl_job, push_job],
        "schedules": [every_10, push_schedule],
        "sensors": [goodreads_landing_sensor],
    }
