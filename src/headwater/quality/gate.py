"""The quality gate: check a batch before it is published; hold it back when an ``error`` check fails.

    result = gate_batch(settings, "fact_events", Path("clean.parquet"), dataset="events",
                        batch_id="events-2021-01-9f2c", warehouse=wh)
    if result.publish:
        wh.load(...)                      # the caller loads only what the gate let through

When an ``error`` check fails:

* the batch is not published (``result.publish`` is False; :func:`require_gate` raises
  :class:`~headwater.errors.QualityGateError`), so nothing reaches the published warehouse tables;
* the batch's failing rows go to quarantine (one entry, each row with the names of the checks it
  failed and why), where ``headwater quarantine`` shows, releases or drops them;
* one alert is sent (dedupe key ``gate:<table>:<batch_id>``: a retried run alerts once).

``warn`` failures are recorded in the checks history and reported, nothing more. With
``mode=GateMode.SPLIT`` a batch whose error failures are all row-level publishes its passing rows
(``result.clean``) and quarantines the rest; batch-level failures (row_count, freshness) always hold.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.config import Settings
from headwater.errors import QualityGateError
from headwater.observe.alerts import Alert, AlertReceipt, send_alert
from headwater.quality.checks import Check, RowCountCheck, checks_for_table
from headwater.quality.history import HistoryStore, previous_rows, record_history
from headwater.quality.quarantine import CHECK_SEPARATOR, QuarantineEntry, quarantine_rows
from headwater.quality.runner import CheckReport, failing_row_ids, row_reason, run_checks
from headwater.quality.sql import ROW_ID
from headwater.quality.targets import BatchTarget, RefSource
from headwater.sqltext import sql_string

if TYPE_CHECKING:
    from headwater.warehouse import Warehouse

log = logging.getLogger(__name__)
ALERT_STATE_DIR = ".headwater/alerts"


class GateMode(StrEnum):
    HOLD = "hold"  # any error failure holds the whole batch back
    SPLIT = "split"  # row-level error failures are quarantined, the passing rows may be published


@dataclass
class GateResult:
    """What the gate decided for one batch."""

    table: str
    dataset: str
    batch_id: str
    mode: GateMode
    report: CheckReport
    publish: bool
    quarantined_rows: int = 0
    quarantine: QuarantineEntry | None = None
    alert: AlertReceipt | None = None
    clean: pa.Table | None = None  # SPLIT: the passing rows when some were removed (None: publish as is)
    clean_path: Path | None = None  # SPLIT with clean_path: the passing rows were written there instead
    reasons: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.publish

    def summary(self) -> str:
        """One line: what was held back and why."""
        if not self.reasons:
            return f"{self.table} batch {self.batch_id}: every error check passed ({len(self.report.results)} checks)"
        verb = "held back" if self.held else "published without its failing rows"
        where = f"; {self.quarantined_rows:,} rows quarantined" if self.quarantined_rows else ""
        return f"{self.table} batch {self.batch_id} {verb}: {'; '.join(self.reasons)}{where}"

    def raise_if_held(self) -> None:
        if self.held:
            raise QualityGateError(self.summary() + "; see 'headwater quarantine list'")

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "dataset": self.dataset,
            "batch_id": self.batch_id,
            "mode": self.mode.value,
            "publish": self.publish,
            "quarantined_rows": self.quarantined_rows,
            "quarantine_entry": self.quarantine.entry_id if self.quarantine else None,
            "alert": {
                "delivered": list(self.alert.delivered),
                "skipped_duplicate": self.alert.skipped_duplicate,
            }
            if self.alert
            else None,
            "reasons": self.reasons,
            "report": self.report.to_json(),
        }


def _target(
    batch: pa.Table | Path | Sequence[Path] | BatchTarget,
    table: str,
    refs: Mapping[str, RefSource] | None,
    warehouse: Warehouse | None,
) -> BatchTarget:
    if isinstance(batch, BatchTarget):
        return batch
    if isinstance(batch, pa.Table):
        return BatchTarget.from_arrow(batch, table, refs=refs, warehouse=warehouse)
    return BatchTarget.from_files(batch, table, refs=refs, warehouse=warehouse)


def _failing_rows(
    target: BatchTarget, report: CheckReport, checks: Sequence[Check]
) -> tuple[pa.Table, list[str]]:
    """Every row failing an error check, once (with its ``_hw_row`` id), with ``_hw_reason`` and
    ``_hw_check`` listing each check it failed; plus the names of the error failures that cannot be
    traced to rows (batch-level checks, checks that could not run)."""
    by_name = {c.label: c for c in checks}
    ids_parts, reason_parts, check_parts = [], [], []
    untraced = []
    for result in report.failed_errors:
        check = by_name[result.name]
        ids = None if result.error else failing_row_ids(target, check)
        if ids is None:
            untraced.append(result.name)
            continue
        ids_parts.append(ids)
        reason_parts.append(np.full(len(ids), f"{result.name}: {row_reason(check)}", dtype=object))
        check_parts.append(np.full(len(ids), result.name, dtype=object))
    if not ids_parts:
        return pa.table({}), untraced
    pairs = pa.table(
        {
            ROW_ID: pa.array(np.concatenate(ids_parts), pa.int64()),
            "reason": pa.array(np.concatenate(reason_parts), pa.string()),
            "check": pa.array(np.concatenate(check_parts), pa.string()),
        }
    )
    grouped = pairs.group_by(ROW_ID, use_threads=False).aggregate([("reason", "list"), ("check", "list")])
    fails = pa.table(
        {
            ROW_ID: grouped.column(ROW_ID),
            "_hw_reason": pc.binary_join(grouped.column("reason_list"), "; "),
            "_hw_check": pc.binary_join(grouped.column("check_list"), CHECK_SEPARATOR),
        }
    )
    target.con.register("_hw_fails", fails)
    try:
        rows = target.query(
            f"SELECT b.*, f._hw_reason, f._hw_check FROM {target.relation} AS b "
            f"JOIN _hw_fails AS f USING ({ROW_ID}) ORDER BY b.{ROW_ID}"
        )
    finally:
        target.con.unregister("_hw_fails")
    return rows, untraced


def _clean_rows(target: BatchTarget, failing: pa.Table, clean_path: Path | None) -> pa.Table | None:
    """The batch without its failing rows (SPLIT mode): an Arrow table, or a Parquet file at ``clean_path``."""
    ids = failing.column(ROW_ID) if ROW_ID in failing.column_names else pa.array([], pa.int64())
    target.con.register("_hw_drop", pa.table({ROW_ID: ids}))
    sql = (
        f"SELECT * EXCLUDE ({ROW_ID}) FROM {target.relation} AS b WHERE NOT EXISTS "
        f"(SELECT 1 FROM _hw_drop AS d WHERE d.{ROW_ID} = b.{ROW_ID}) ORDER BY {ROW_ID}"
    )
    try:
        if clean_path is not None:
            target.con.execute(
                f"COPY ({sql}) TO {sql_string(clean_path)} (FORMAT parquet, COMPRESSION zstd)"
            ).fetchall()
            return None
        return target.query(sql)
    finally:
        target.con.unregister("_hw_drop")


def _send(settings: Settings, result: GateResult) -> AlertReceipt:
    report = result.report
    failed = report.failed_errors
    lines = [f"{r.name}: {r.message}" for r in failed]
    if report.failed_warnings:
        lines.append(
            f"also {len(report.failed_warnings)} warning(s): "
            + ", ".join(r.name for r in report.failed_warnings)
        )
    fields = {"table": result.table, "batch": result.batch_id, "rows": f"{report.rows:,}"}
    if report.partition:
        fields["partition"] = report.partition
    if result.quarantine is not None:
        fields["quarantine"] = f"{result.quarantined_rows:,} rows in entry {result.quarantine.entry_id}"
    verb = "held back" if result.held else "published without its failing rows"
    return send_alert(
        settings.alerts,
        Alert(
            title=f"Quality gate: {result.table} batch {result.batch_id} {verb}",
            text="\n".join(lines) + "\nSee: headwater quarantine list --batch " + result.batch_id,
            severity="error",
            pipeline=result.dataset,
            run_id=report.run_id,
            fields=fields,
        ),
        dedupe_key=f"gate:{result.table}:{result.batch_id}",
        state_dir=settings.resolve(ALERT_STATE_DIR),
    )


def gate_batch(
    settings: Settings,
    table: str,
    batch: pa.Table | Path | Sequence[Path] | BatchTarget,
    *,
    dataset: str | None = None,
    batch_id: str,
    partition: str | None = None,
    warehouse: Warehouse | None = None,
    checks: Sequence[Check] | None = None,
    refs: Mapping[str, RefSource] | None = None,
    alert: bool = True,
    mode: GateMode = GateMode.HOLD,
    clean_path: Path | None = None,
    source: str | None = None,
    record: bool = True,
    as_of: dt.datetime | None = None,
) -> GateResult:
    """Check ``batch`` (Arrow, Parquet/CSV files or a :class:`BatchTarget`) with ``table``'s checks
    (``quality.checks.<table>``, or ``checks``) before it is published, and decide.

    Relationships checks find their referenced tables in ``refs`` or ``warehouse``. Results go to the
    checks history (the warehouse's ``_hw_check_history`` when ``warehouse`` is given, else the
    project's local history file) unless ``record`` is False. Failing rows are quarantined under
    ``dataset`` (default: ``table``) with ``source`` (default: the table name) as their origin."""
    dataset = dataset or table
    checks = list(checks) if checks is not None else checks_for_table(settings, table)
    store = HistoryStore.for_settings(settings, warehouse)
    needs_previous = any(isinstance(c, RowCountCheck) and c.max_change_pct is not None for c in checks)
    previous = previous_rows(store, table, batch_id) if needs_previous else None
    target = _target(batch, table, refs, warehouse)
    try:
        report = run_checks(
            target, checks, sample_rows=settings.quality.sample_rows, batch_id=batch_id,
            partition=partition, previous_rows=previous, as_of=as_of,
        )  # fmt: skip
        result = GateResult(table, dataset, batch_id, mode, report, publish=report.passed)
        if not report.passed:
            failing, untraced = _failing_rows(target, report, checks)
            result.reasons = [f"{r.name} ({r.message})" for r in report.failed_errors]
            if failing.num_rows:
                result.quarantine = quarantine_rows(
                    settings, dataset=dataset, batch_id=batch_id, rows=failing.drop_columns([ROW_ID])
                    if ROW_ID in failing.column_names else failing, reason="failed a quality check",
                    source=source or table, check=CHECK_SEPARATOR.join(sorted({r.name for r in report.failed_errors})),
                )  # fmt: skip
                result.quarantined_rows = failing.num_rows
            if mode is GateMode.SPLIT and not untraced:
                result.publish = True
                result.clean = _clean_rows(target, failing, clean_path)
                result.clean_path = clean_path
    finally:
        target.close()
    if record:
        try:
            record_history(store, report)
        except Exception as exc:  # the decision stands even when history cannot be written
            log.warning("checks history not written to %s: %s", store.describe(), exc)
    if report.failed_errors and alert:
        result.alert = _send(settings, result)
    return result


def require_gate(
    settings: Settings, table: str, batch: pa.Table | Path | Sequence[Path] | BatchTarget, **kwargs: Any
) -> GateResult:
    """:func:`gate_batch`, raising :class:`~headwater.errors.QualityGateError` when the batch is held back
    (after quarantining and alerting)."""
    result = gate_batch(settings, table, batch, **kwargs)
    result.raise_if_held()
    return result
