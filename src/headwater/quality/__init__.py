"""Data quality: checks compiled to SQL, gates that hold bad batches back, quarantine, profiling.

The public API, re-exported from small modules. See docs/quality.md.

    checks = checks_for_table(settings, "fact_events")          # from headwater.yaml quality.checks
    report = run_checks(BatchTarget.from_files([path], "fact_events"), checks)
    result = gate_batch(settings, "fact_events", path, batch_id="2021-01", warehouse=wh)
"""

from __future__ import annotations

from headwater.quality.checks import (
    Check,
    CheckType,
    Severity,
    checks_for_table,
    dump_checks,
    load_checks_file,
    parse_checks,
    schema_checks,
)
from headwater.quality.gate import GateMode, GateResult, gate_batch, require_gate
from headwater.quality.history import (
    HISTORY_TABLE,
    CheckTrend,
    HistoryStore,
    previous_rows,
    read_history,
    record_history,
    trends,
)
from headwater.quality.profile_report import render_html, write_profile
from headwater.quality.profiling import ColumnProfile, Profile, profile
from headwater.quality.quarantine import (
    EntryState,
    QuarantineEntry,
    QuarantineStore,
    ReleasedBatch,
    Resolution,
    drop_quarantine,
    list_quarantine,
    mark_release_done,
    quarantine_rows,
    read_released,
    release_quarantine,
    released_batches,
    show_quarantine,
    strip_internal,
)
from headwater.quality.runner import CheckReport, CheckResult, run_checks
from headwater.quality.sql import Engine
from headwater.quality.suggest import accept_suggestions, suggest_checks, suggestions_yaml
from headwater.quality.targets import BatchTarget, CheckTarget, SparkTarget, WarehouseTarget

__all__ = [
    "HISTORY_TABLE",
    "BatchTarget",
    "Check",
    "CheckReport",
    "CheckResult",
    "CheckTarget",
    "CheckTrend",
    "CheckType",
    "ColumnProfile",
    "Engine",
    "EntryState",
    "GateMode",
    "GateResult",
    "HistoryStore",
    "Profile",
    "QuarantineEntry",
    "QuarantineStore",
    "ReleasedBatch",
    "Resolution",
    "Severity",
    "SparkTarget",
    "WarehouseTarget",
    "accept_suggestions",
    "checks_for_table",
    "drop_quarantine",
    "dump_checks",
    "gate_batch",
    "list_quarantine",
    "load_checks_file",
    "mark_release_done",
    "parse_checks",
    "previous_rows",
    "profile",
    "quarantine_rows",
    "read_history",
    "read_released",
    "record_history",
    "release_quarantine",
    "released_batches",
    "render_html",
    "require_gate",
    "run_checks",
    "schema_checks",
    "show_quarantine",
    "strip_internal",
    "suggest_checks",
    "suggestions_yaml",
    "trends",
    "write_profile",
]
