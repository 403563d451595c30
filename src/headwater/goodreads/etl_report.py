"""What an ETL cycle reports: per stage (rows, bytes, wall and CPU seconds, MB/s), per batch and per cycle."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from headwater.errors import DataError, HeadwaterError
from headwater.goodreads.etl_ledger import BatchState


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system, every thread)."""
    t = os.times()
    return t.user + t.system


@dataclass
class StageStats:
    """One stage of one batch: rows in and out, bytes read, time."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU (DuckDB's threads included; a Spark JVM's not)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchReport:
    """What a cycle did to one batch."""

    batch: str
    state: BatchState
    stages: list[StageStats] = field(default_factory=list)
    landing_bytes: int = 0
    quarantined: int = 0
    duplicates: int = 0
    superseded: int = 0
    orphaned: int = 0
    loaded_rows: int = 0
    held: list[str] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)  # per gated table: passed, per-check results
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("exception")
        out["state"] = self.state.value
        out["stages"] = [{**asdict(s), "mb_per_s": round(s.mb_per_s, 1)} for s in self.stages]
        return out


@dataclass
class CycleReport:
    """What one cycle did. ``busy`` means another cycle held the lock and this one did nothing."""

    engine: str
    batches: list[BatchReport] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    busy: bool = False
    holder: str | None = None

    @property
    def landing_bytes(self) -> int:
        return sum(b.landing_bytes for b in self.batches if any(s.stage == "ingest" for s in b.stages))

    @property
    def mb_per_s(self) -> float:
        """Raw landing CSV processed per second of the whole cycle, end to end."""
        return self.landing_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> list[BatchReport]:
        return [b for b in self.batches if b.error is not None]

    @property
    def blocked(self) -> list[BatchReport]:
        return [b for b in self.batches if b.state is BatchState.BLOCKED]

    def stage_totals(self) -> list[StageStats]:
        """Per stage, summed over the batches of this cycle."""
        totals: dict[str, StageStats] = {}
        for b in self.batches:
            for s in b.stages:
                t = totals.setdefault(s.stage, StageStats(s.stage))
                t.rows_in += s.rows_in
                t.rows_out += s.rows_out
                t.bytes += s.bytes
                t.seconds += s.seconds
                t.cpu_seconds += s.cpu_seconds
        return list(totals.values())

    def raise_for_failures(self) -> None:
        """Raise the first batch failure (same type, "(and N more)"), so a scheduled run fails."""
        failed = self.failed
        if not failed:
            return
        first = failed[0]
        more = f" (and {len(failed) - 1} more failed batch(es))" if len(failed) > 1 else ""
        message = f"goodreads batch {first.batch}: {first.error}{more}"
        exc = first.exception
        if isinstance(exc, HeadwaterError):
            raise type(exc)(message) from exc
        raise DataError(message) from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "busy": self.busy,
            "holder": self.holder,
            "seconds": round(self.seconds, 3),
            "landing_bytes": self.landing_bytes,
            "mb_per_s": round(self.mb_per_s, 1),
            "stages": [{**asdict(s), "mb_per_s": round(s.mb_per_s, 1)} for s in self.stage_totals()],
            "batches": [b.to_json() for b in self.batches],
            "cleaned": self.cleaned,
        }
