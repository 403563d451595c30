"""The checks history: one row per check per run, so trends and flaky checks are visible.

Kept in the warehouse as ``_hw_check_history`` (DuckDB or PostgreSQL; hidden from ``warehouse tables``
like the other ``_hw_`` tables) when a warehouse is given, else in a JSON-lines file in the project
(``.headwater/quality/check-history.jsonl``), e.g. for ``headwater check PATH`` on a loose file.
The history also answers row_count's "previous batch" question.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import Settings
from headwater.errors import WarehouseError
from headwater.quality.runner import CheckReport
from headwater.warehouse.types import BIGINT, BOOLEAN, DOUBLE, TIMESTAMP, VARCHAR, SqlType

if TYPE_CHECKING:
    from headwater.warehouse import Warehouse

HISTORY_TABLE = "_hw_check_history"
HISTORY_FILE = ".headwater/quality/check-history.jsonl"
COLUMNS: dict[str, SqlType] = {
    "run_id": VARCHAR,
    "checked_at": TIMESTAMP,
    "table_name": VARCHAR,
    "batch_id": VARCHAR,
    "partition_key": VARCHAR,
    "engine": VARCHAR,
    "batch_rows": BIGINT,
    "check_name": VARCHAR,
    "check_type": VARCHAR,
    "severity": VARCHAR,
    "passed": BOOLEAN,
    "failing_count": BIGINT,
    "total_rows": BIGINT,
    "elapsed_ms": DOUBLE,
    "message": VARCHAR,
}


@dataclass(frozen=True)
class HistoryStore:
    """Where history goes: a warehouse, or a local JSON-lines file."""

    warehouse: Warehouse | None = None
    path: Path | None = None

    @classmethod
    def for_settings(cls, settings: Settings, warehouse: Warehouse | None = None) -> HistoryStore:
        return cls(warehouse=warehouse) if warehouse is not None else cls(path=settings.resolve(HISTORY_FILE))

    def describe(self) -> str:
        if self.warehouse is not None:
            return f"{self.warehouse.url} {HISTORY_TABLE}"
        return str(self.path)


def history_rows(report: CheckReport) -> list[dict[str, Any]]:
    """The history rows of one report (one per check)."""
    at = report.checked_at.astimezone(dt.UTC).replace(tzinfo=None)
    return [
        {
            "run_id": report.run_id,
            "checked_at": at,
            "table_name": report.table,
            "batch_id": report.batch_id,
            "partition_key": report.partition,
            "engine": report.engine,
            "batch_rows": report.rows,
            "check_name": r.name,
            "check_type": r.type,
            "severity": r.severity.value,
            "passed": r.passed,
            "failing_count": r.failing_count,
            "total_rows": r.total_rows,
            "elapsed_ms": round(r.elapsed * 1000, 3),
            "message": r.message[:2000],
        }
        for r in report.results
    ]


def record_history(store: HistoryStore, report: CheckReport) -> int:
    """Append the report's results to the history; the rows written."""
    rows = history_rows(report)
    if not rows:
        return 0
    if store.warehouse is not None:
        wh = store.warehouse
        wh.create_table(HISTORY_TABLE, COLUMNS)
        names = list(COLUMNS)
        marks = "(" + ", ".join("?" for _ in names) + ")"
        sql = f'INSERT INTO "{HISTORY_TABLE}" ({", ".join(names)}) VALUES ' + ", ".join(marks for _ in rows)
        wh.execute(sql, [row[n] for row in rows for n in names])
        return len(rows)
    assert store.path is not None
    store.path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    with store.path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(text)
        fh.flush()
    return len(rows)


def read_history(
    store: HistoryStore, *, table: str | None = None, check: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """History rows, newest first, optionally for one table and/or check."""
    if store.warehouse is not None:
        wh = store.warehouse
        conds, params = [], []
        if table:
            conds.append("table_name = ?")
            params.append(table)
        if check:
            conds.append("check_name = ?")
            params.append(check)
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        sql = (
            f'SELECT * FROM "{HISTORY_TABLE}"{where} ORDER BY checked_at DESC, check_name LIMIT {int(limit)}'
        )
        try:
            return list(wh.query(sql, params).to_pylist())
        except WarehouseError as exc:
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return []  # nothing recorded yet
            raise
    assert store.path is not None
    if not store.path.is_file():
        return []
    out = []
    for line in store.path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if (table and row["table_name"] != table) or (check and row["check_name"] != check):
            continue
        row["checked_at"] = dt.datetime.fromisoformat(row["checked_at"])
        out.append(row)
    out.sort(key=lambda r: (r["checked_at"], r["check_name"]), reverse=True)
    return out[:limit]


def previous_rows(store: HistoryStore, table: str, batch_id: str | None) -> int | None:
    """The row count of the most recent earlier batch of ``table`` (another batch id), if any."""
    for row in read_history(store, table=table, limit=10_000):
        if row.get("batch_id") != batch_id and row.get("batch_rows") is not None:
            return int(row["batch_rows"])
    return None


@dataclass(frozen=True)
class CheckTrend:
    """One check's recent record: runs, failures and how often it flipped between pass and fail."""

    table: str
    check: str
    runs: int
    failures: int
    flips: int
    last_passed: bool
    last_at: dt.datetime

    @property
    def flaky(self) -> bool:
        """Flipped at least twice in the window: neither steadily passing nor steadily failing."""
        return self.flips >= 2


def trends(rows: Sequence[dict[str, Any]], window: int = 20) -> list[CheckTrend]:
    """Per (table, check): the last ``window`` runs summarised (rows as from :func:`read_history`)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["table_name"], row["check_name"]), []).append(row)
    out = []
    for (table, check), items in sorted(groups.items()):
        recent = sorted(items, key=lambda r: r["checked_at"])[-window:]
        passed = [bool(r["passed"]) for r in recent]
        flips = sum(1 for a, b in itertools.pairwise(passed) if a != b)
        out.append(
            CheckTrend(
                table, check, len(recent), passed.count(False), flips, passed[-1], recent[-1]["checked_at"]
            )
        )
    return out
