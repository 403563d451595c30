"""The monthly events pipeline in Dagster: one partition per month present in the source.

* ``events_months`` is a dynamic partitions definition: a month becomes a partition when its file
  appears. The sensor registers it **and** requests its run in the same evaluation (the step the public
  proof of concept missed, so its runs never started).
* ``events_month`` (processed Parquet + ``fact_events``) -> ``events_report`` (analyses, charts).
* ``events_new_month_sensor`` watches ``events.source`` for ``YYYY/MM/events.csv``; a file that changes
  (new fingerprint) is requested again, because the run key carries the fingerprint.
* ``events_monthly_schedule`` on the 2nd of each month requests last month (registering it if needed).
"""

from datetime import UTC, datetime

import dagster as dg

from headwater.config import Settings
from headwater.events import Month, analyse, discover_months, run_month
from headwater.events.pipeline import fact_checks
from headwater.orchestrate.common import markdown_table, retry_policy

PARTITIONS = "events_months"
events_months = dg.DynamicPartitionsDefinition(name=PARTITIONS)
GROUP = "events"


def _source(settings: Settings) -> str:
    src = settings.events.source
    return src if "://" in src else str(settings.resolve(src))


def build_events(settings: Settings) -> dict[str, list[object]]:
    policy = retry_policy(settings)
    checks = fact_checks(settings)
    specs = [
        dg.AssetCheckSpec(
            name=c.name or c.type,
            asset="events_month",
            blocking=str(c.severity) == "error",
            description=f"{c.type} ({c.severity}): gate before the month is published",
        )
        for c in checks
    ]

    @dg.asset(
        name="events_month",
        group_name=GROUP,
        partitions_def=events_months,
        retry_policy=policy,
        check_specs=specs,
        kinds={"duckdb", "parquet"},
        description="One month of events: parsed once, validated, deduplicated, UTC timestamps, written to "
        "processed/events/year=YYYY/month=MM/ and loaded into fact_events (replace_partition).",
    )
    def events_month(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]  # Dagster needs the bare class with check outputs
        report = run_month(settings, context.partition_key, _source(settings), force=False)
        context.log.info(
            f"{report.month}: {report.rows_out:,} rows kept, {report.quarantined:,} quarantined"
            + (" (already processed, skipped)" if report.skipped else "")
        )
        if report.gate:
            context.log.info(report.gate)
        results = {r["name"]: r for r in report.checks}
        check_results = [
            dg.AssetCheckResult(
                check_name=spec.name,
                passed=bool(results[spec.name]["passed"]),
                severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
                metadata={
                    "failing_rows": int(results[spec.name]["failing"]),
                    "message": str(results[spec.name]["message"]),
                },
            )
            for spec in specs
            if spec.name in results
        ]
        return dg.MaterializeResult(
            check_results=check_results,
            metadata={
                "rows_read": report.rows_read,
                "rows_kept": report.rows_out,
                "rejected_parse": report.rejected_parse,
                "rejected_invalid": report.rejected_invalid,
                "duplicates": report.duplicates,
                "bytes_in": report.bytes_in,
                "seconds": round(report.seconds, 2),
                "batch_id": report.batch_id,
                "skipped": report.skipped,
                "held_by_gate": report.held,
                "processed": dg.MetadataValue.path(report.processed_uri),
            },
        )

    @dg.asset(
        name="events_report",
        group_name=GROUP,
        partitions_def=events_months,
        deps=[events_month],
        retry_policy=policy,
        kinds={"duckdb", "pandas"},
        description="Events per day/month/year and the most active users and companies of the month, "
        "written as JSON, CSV, PNG charts and report.html under reports/events/YYYY-MM/.",
    )
    def events_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
        month = Month.parse(context.partition_key)
        result = analyse(settings, [month])
        out = settings.resolve(f"reports/events/{month}")
        result.write(out)
        return dg.MaterializeResult(
            metadata={
                "events": result.total,
                "days": len(result.per_day),
                "top_users": dg.MetadataValue.md(markdown_table(result.top_users)),
                "top_companies": dg.MetadataValue.md(markdown_table(result.top_companies)),
                "report": dg.MetadataValue.path(str(out / "report.html")),
            }
        )

    job = dg.define_asset_job(
        "events_job",
        selection=dg.AssetSelection.groups(GROUP),
        description="Process one month of events and report on it.",
    )

    @dg.sensor(
        name="events_new_month_sensor",
        job=job,
        minimum_interval_seconds=settings.orchestrate.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers each new YYYY/MM/events.csv as a partition and requests its run.",
    )
    def events_new_month_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        found = discover_months(settings, _source(settings))
        known = set(context.instance.get_dynamic_partitions(PARTITIONS))
        new = [str(f.month) for f in found if str(f.month) not in known]
        requests = [
            dg.RunRequest(partition_key=str(f.month), run_key=f"{f.month}:{f.fingerprint}") for f in found
        ]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[events_months.build_add_request(new)] if new else [],
        )

    @dg.schedule(
        name="events_monthly_schedule",
        job=job,
        cron_schedule="0 3 2 * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="On the 2nd of each month at 03:00 process the month before (if its file is there).",
    )
    def events_monthly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        now = context.scheduled_execution_time or datetime.now(UTC)
        prev = Month(now.year, now.month)
        prev = Month(prev.year - 1, 12) if prev.month == 1 else Month(prev.year, prev.month - 1)
        if str(prev) not in {str(f.month) for f in discover_months(settings, _source(settings))}:
            return dg.SkipReason(f"no events file for {prev} in {_source(settings)} yet")
        context.instance.add_dynamic_partitions(PARTITIONS, [str(prev)])
        return dg.RunRequest(partition_key=str(prev), run_key=f"schedule:{prev}")

    return {
        "assets": [events_month, events_report],
        "jobs": [job],
        "sensors": [events_new_month_sensor],
        "schedules": [events_monthly_schedule],
    }
