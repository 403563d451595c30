"""Assemble the code location from each pipeline's pieces."""

from __future__ import annotations

from typing import Any

import dagster as dg

from headwater.config import Settings
from headwater.orchestrate.common import failure_alert_sensor
from headwater.orchestrate.events import build_events
from headwater.orchestrate.goodreads import build_goodreads
from headwater.orchestrate.sessions import build_sessions


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every pipeline's assets, jobs, schedules and sensors, plus the run-failure alert sensor."""
    parts: dict[str, list[Any]] = {
        "assets": [],
        "asset_checks": [],
        "jobs": [],
        "sensors": [],
        "schedules": [],
    }
    for build in (build_events, build_sessions, build_goodreads):
        for kind, items in build(settings).items():
            parts[kind].extend(items)
    parts["sensors"].append(failure_alert_sensor(settings))
    return dg.Definitions(
        assets=parts["assets"],
        asset_checks=parts["asset_checks"],
        jobs=parts["jobs"],
        sensors=parts["sensors"],
        schedules=parts["schedules"],
    )
