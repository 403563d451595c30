"""What every pipeline shares in the code location: the retry policy and the run-failure alert sensor."""

import dagster as dg
import pandas as pd

from headwater.config import Settings
from headwater.observe.alerts import Alert, send_alert
from headwater.orchestrate.runner import root_cause


def retry_policy(settings: Settings) -> dg.RetryPolicy:
    """``max_retries`` retries (3 by default) with exponential backoff: delays of 1x, 3x and 7x
    ``retry_delay`` (15 s by default: 15 s, 45 s, 105 s), so never more than 2 minutes between tries."""
    cfg = settings.orchestrate
    return dg.RetryPolicy(max_retries=cfg.max_retries, delay=cfg.retry_delay, backoff=dg.Backoff.EXPONENTIAL)


def markdown_table(df: pd.DataFrame) -> str:
    """A small DataFrame as a Markdown table for asset metadata."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def alert_state_dir(settings: Settings) -> str:
    return str(settings.resolve(".headwater/alerts"))


def failure_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    """One alert per failed run, sent when the run has failed for good (its steps' retries exhausted):
    the run id is the dedupe key, so a sensor tick that runs twice still alerts once."""

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        minimum_interval_seconds=settings.orchestrate.failure_sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        # the project's instance holds only this code location; monitoring "all" also covers runs
        # started in-process by `headwater run`, which carry no code-location origin
        monitor_all_code_locations=True,
        description="Sends one webhook/email alert per failed run (see alerts: in headwater.yaml).",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        step_failures = []
        for event in context.get_step_failure_events():
            error = getattr(event.event_specific_data, "error", None)
            if event.step_key and error is not None:
                step_failures.append(f"{event.step_key}: {root_cause(error)}")
        partition = run.tags.get("dagster/partition")
        fields = {"job": run.job_name}
        if partition:
            fields["partition"] = partition
        text = "; ".join(step_failures) or (context.failure_event.message or "run failed")
        receipt = send_alert(
            settings.alerts,
            Alert(
                title=f"{run.job_name} failed" + (f" for {partition}" if partition else ""),
                text=text,
                pipeline=run.job_name,
                run_id=run.run_id,
                fields=fields,
            ),
            dedupe_key=f"run:{run.run_id}",
            state_dir=settings.resolve(".headwater/alerts"),
        )
        context.log.info(f"alert for run {run.run_id}: delivered={receipt.delivered} failed={receipt.failed}")

    return alert_on_run_failure
