"""Quality gate on the events pipeline: an error check that fails holds the month back."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import SecretStr

from headwater.config import Settings
from headwater.events import run_month
from headwater.events.pipeline import FACT_TABLE, processed_key
from headwater.events.source import Month
from headwater.orchestrate import build_definitions
from headwater.quality import list_quarantine
from headwater.warehouse import warehouse_from_settings
from tests.alerting import WebhookReceiver
from tests.events.conftest import make_project


def strict(settings: Settings, hook: WebhookReceiver) -> Settings:
    quality = settings.quality.model_copy(
        update={
            "checks": {
                FACT_TABLE: [{"type": "range", "name": "small_companies", "column": "company_id", "max": 50}]
            }
        }
    )
    alerts = settings.alerts.model_copy(update={"webhook_url": SecretStr(hook.url)})
    return settings.model_copy(update={"quality": quality, "alerts": alerts})


def test_failing_error_check_holds_the_month_and_alerts_once(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    settings = make_project(tmp_path / "p", rows=20_000)
    first = run_month(settings, "2021-01")  # published and loaded with the default checks
    assert not first.held
    assert all(c["passed"] for c in first.checks if c["severity"] == "error")
    wh = warehouse_from_settings(settings)
    before = wh.query(f"SELECT count(*), sum(event_id) FROM {FACT_TABLE}").to_pylist()
    gated = strict(settings, webhook_receiver)
    held = run_month(gated, "2021-02")
    assert held.held
    assert "small_companies" in held.gate
    failing = next(c for c in held.checks if c["name"] == "small_companies")
    assert not failing["passed"]
    assert failing["failing"] > 0
    assert not (settings.resolve("data") / processed_key(Month.parse("2021-02"))).exists()
    assert wh.query(f"SELECT count(*), sum(event_id) FROM {FACT_TABLE}").to_pylist() == before
    entries = [e for e in list_quarantine(settings, "events") if e.batch_id == held.batch_id]
    assert sum(e.rows for e in entries) == failing["failing"]
    again = run_month(gated, "2021-02")  # still failing: held again, but no second alert
    assert again.held
    assert len(webhook_receiver.wait(1)) == 1


def test_dagster_asset_checks_report_the_gate(tmp_path: Path) -> None:
    settings = make_project(tmp_path / "p", rows=10_000)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("events_months", ["2021-03"])
        result = defs.resolve_job_def("events_job").execute_in_process(
            instance=instance, partition_key="2021-03"
        )
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        names = {e.check_name: e.passed for e in evaluations}
        assert names["event_id_unique"] is True
        assert names["required_fields"] is True
        assert set(names) >= {"not_empty", "known_event_type", "volume_change"}
