"""The Goodreads ETL cycle: landing -> working -> processed -> warehouse, batch by batch, resumable.

    report = run_cycle(settings)                 # what a schedule (every 10 min) or a sensor runs
    report.raise_for_failures()                  # a failed batch fails the run (retries, alerts)

A cycle takes the cycle lock, records every landing batch it has not seen in the ledger, then moves each
unfinished batch on from where it stopped:

* **ingest** (landing -> working): typed Parquet per entity; rows that do not parse or fail a row rule
  go to quarantine with file, line and reason (:mod:`headwater.goodreads.etl_ingest`);
* **transform** (working -> processed): the SQL models in ``headwater/goodreads/models`` on DuckDB or
  Spark (:mod:`headwater.transform`): dedupe, date parsing, normalisation, enrichment;
* **publish** (processed -> warehouse): gates, then staged merges into the star schema
  (:mod:`headwater.goodreads.etl_publish`). A batch a gate holds back is ``blocked``: nothing is loaded,
  one alert is sent, and it is checked again on every later cycle (a fixed check or newly arrived
  dimension rows let it through).

Landing is never written or deleted here, and a loaded batch is never processed again. Working and
processed copies of a batch are removed only after it is loaded and ``goodreads.retention_hours`` have
passed. Re-running a cycle with nothing new does nothing; re-running after a failure finishes the job.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow.parquet as pq

from headwater.config import Settings
from headwater.errors import DataError, UsageError
from headwater.goodreads.etl_ingest import Held, ingest_batch
from headwater.goodreads.etl_ledger import BatchRecord, BatchState, CycleLock, Ledger
from headwater.goodreads.etl_publish import PublishResult, publish_batch
from headwater.goodreads.etl_report import BatchReport, CycleReport, StageStats, cpu_seconds
from headwater.goodreads.etl_schema import DATASET, FILE_COLUMN, KEYS, ROW_COLUMN, Entity
from headwater.goodreads.etl_zones import BatchRef, Zones
from headwater.observe.alerts import Alert, send_alert
from headwater.progress import Progress, no_progress
from headwater.quality import quarantine_rows
from headwater.quality.gate import ALERT_STATE_DIR
from headwater.sqltext import quote_identifier, sql_list
from headwater.storage import Zone
from headwater.transform import DuckDBEngine, ModelSet, SparkEngine, TransformEngine, load_models
from headwater.warehouse import Warehouse, warehouse_from_settings

__all__ = [
    "BatchReport",
    "CycleReport",
    "StageStats",
    "batch_records",
    "goodreads_models",
    "make_engine",
    "new_landing_batches",
    "pending_batches",
    "run_cycle",
    "state_dir",
]

log = logging.getLogger(__name__)

MODELS_PACKAGE = "headwater.goodreads.models"
EngineName = Literal["duckdb", "spark"]
#: star table -> the working entity whose distinct keys it must hold
_EXPECTED_FROM = {
    "dim_author": Entity.AUTHOR,
    "dim_book": Entity.BOOK,
    "dim_user": Entity.USER,
    "fact_reviews": Entity.REVIEWS,
}


@functools.cache
def goodreads_models() -> ModelSet:
    """The Goodreads SQL models shipped with headwater."""
    return load_models(MODELS_PACKAGE)


# ------------------------------------------------------------------------------------------------ helpers
def state_dir(settings: Settings) -> Path:
    return settings.resolve(settings.goodreads.state_dir)


def _duckdb(settings: Settings, *, ordered: bool) -> duckdb.DuckDBPyConnection:
    cfg = settings.goodreads
    spill = state_dir(settings) / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": cfg.memory_limit,
        "temp_directory": str(spill),
        "preserve_insertion_order": ordered,
    }
    if cfg.threads:
        config["threads"] = cfg.threads
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    return con


def make_engine(settings: Settings, engine: EngineName | None = None, spark: Any = None) -> TransformEngine:
    """The transform engine for a cycle: DuckDB (bounded by ``goodreads.memory_limit``) or Spark."""
    name = engine or settings.goodreads.engine
    cfg = settings.goodreads
    if name == "duckdb":
        return DuckDBEngine(
            threads=cfg.threads, memory_limit=cfg.memory_limit, temp_directory=state_dir(settings) / "spill"
        )
    if name == "spark":
        return SparkEngine(master=cfg.spark_master, session=spark)
    raise UsageError(f"engine {name!r}: expected duckdb or spark")


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def new_landing_batches(settings: Settings) -> list[str]:
    """Landing batches (``yyyy/mm/dd/<batch_id>``, complete: manifest present) the ETL has not seen yet.
    What a sensor polls: a non-empty answer means a cycle has work."""
    ledger = Ledger(state_dir(settings))
    known = {r.ref.key for r in ledger.all()}
    return sorted(ref.key for ref in set(Zones(settings).batches(Zone.LANDING)) if ref.key not in known)


def pending_batches(settings: Settings) -> list[str]:
    """Batches a cycle would work on: new landing batches plus those seen but not loaded yet."""
    ledger = Ledger(state_dir(settings))
    unfinished = [r.ref.key for r in ledger.all() if r.state is not BatchState.LOADED]
    return sorted(set(unfinished) | set(new_landing_batches(settings)))


def batch_records(settings: Settings) -> list[BatchRecord]:
    """Every batch the ledger knows, oldest key first."""
    return Ledger(state_dir(settings)).all()


# ------------------------------------------------------------------------------------------------ stages
class _Cycle:
    def __init__(
        self,
        settings: Settings,
        engine: TransformEngine,
        warehouse: Warehouse,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.wh = warehouse
        self.progress = progress
        self.zones = Zones(settings)
        self.ledger = Ledger(state_dir(settings))

    @property
    def working_compression(self) -> str:
        """Parquet compression of working batches: none on local zones (the ingest's Parquet writer is
        its largest cost and the files live a day), snappy where they travel to a remote store."""
        choice = self.settings.goodreads.working_compression
        if choice == "auto":
            return "none" if self.zones.is_local else "snappy"
        return choice

    # -- ingest ---------------------------------------------------------------------------------------
    def ingest(self, ref: BatchRef, record: BatchRecord, report: BatchReport) -> None:
        found = self.zones.manifest(Zone.LANDING, ref)
        if found is None:
            raise DataError(f"{self.zones.url(Zone.LANDING, ref)}: the landing manifest is gone")
        manifest, _raw = found
        landing = self.zones.local_input(Zone.LANDING, ref)
        out = self.zones.begin_output(Zone.WORKING, ref)
        held_rows = 0

        def hold(path: str, entity: Entity, held: Held) -> None:
            nonlocal held_rows
            source = f"{self.zones.url(Zone.LANDING, ref)}/{path}"
            if held.invalid is not None:
                rows = held.invalid.drop_columns([ROW_COLUMN, FILE_COLUMN])
                quarantine_rows(
                    self.settings,
                    dataset=DATASET,
                    batch_id=ref.batch_id,
                    rows=rows,
                    reason="failed a row check",
                    source=source,
                    check=f"{DATASET}.validate",
                )
                held_rows += rows.num_rows
            if held.rejected is not None:
                quarantine_rows(
                    self.settings,
                    dataset=DATASET,
                    batch_id=ref.batch_id,
                    rows=held.rejected,
                    reason="line does not parse",
                    source=source,
                    check=f"{DATASET}.parse",
                )
                held_rows += held.rejected.num_rows

        t0, c0 = time.perf_counter(), cpu_seconds()
        con = _duckdb(self.settings, ordered=True)
        try:
            result = ingest_batch(con, landing, manifest, out, hold, self.progress, self.working_compression)
            self.zones.commit_output(
                Zone.WORKING,
                ref,
                out,
                {"landing_sha256": record.landing_sha256, "rows": result.rows_by_entity()},
            )
        except BaseException:
            self.zones.abandon(out)
            raise
        finally:
            con.close()
            self.zones.release_input(Zone.LANDING, ref)
        stats = StageStats(
            "ingest",
            sum(f.rows_read for f in result.files),
            result.rows_ok,
            result.bytes,
            time.perf_counter() - t0,
            cpu_seconds() - c0,
        )
        report.stages.append(stats)
        report.quarantined += held_rows
        self.ledger.advance(ref, BatchState.WORKING, ingest=asdict(stats), quarantined=held_rows)

    # -- transform ------------------------------------------------------------------------------------
    def expected_rows(self, sources: dict[str, list[Path]]) -> tuple[dict[str, int], int]:
        """Distinct keys per entity in the working batch (what each star table must hold), and the
        number of duplicate rows (re-sent revisions) the dedupe will drop."""
        con = _duckdb(self.settings, ordered=False)
        try:
            distinct_keys, duplicates = {}, 0
            for entity in Entity:
                key = quote_identifier(KEYS[entity])
                rows, distinct = con.execute(
                    f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet({sql_list(sources[entity.source])})"
                ).fetchall()[0]
                distinct_keys[entity] = int(distinct)
                duplicates += int(rows) - int(distinct)
            return {table: distinct_keys[entity] for table, entity in _EXPECTED_FROM.items()}, duplicates
        finally:
            con.close()

    def transform(self, ref: BatchRef, report: BatchReport) -> None:
        working = self.zones.local_input(Zone.WORKING, ref)
        sources = {e.source: sorted((working / e.value).glob("*.parquet")) for e in Entity}
        in_bytes = sum(p.stat().st_size for files in sources.values() for p in files)
        rows_in = sum(pq.read_metadata(p).num_rows for files in sources.values() for p in files)
        t0, c0 = time.perf_counter(), cpu_seconds()
        expected, duplicates = self.expected_rows(sources)
        out = self.zones.begin_output(Zone.PROCESSED, ref)
        try:
            result = self.engine.run(goodreads_models(), sources, out, self.progress)
            self.zones.commit_output(
                Zone.PROCESSED, ref, out, {"engine": self.engine.kind.value, "expected_rows": expected}
            )
        except BaseException:
            self.zones.abandon(out)
            raise
        finally:
            self.zones.release_input(Zone.WORKING, ref)
        stats = StageStats(
            "transform", rows_in, result.rows, in_bytes, time.perf_counter() - t0, cpu_seconds() - c0
        )
        report.stages.append(stats)
        report.duplicates = duplicates
        self.ledger.advance(
            ref,
            BatchState.PROCESSED,
            transform=asdict(stats),
            expected_rows=expected,
            duplicates=duplicates,
            engine=self.engine.kind.value,
        )

    # -- publish --------------------------------------------------------------------------------------
    def publish(self, ref: BatchRef, record: BatchRecord, report: BatchReport) -> None:
        processed = self.zones.local_input(Zone.PROCESSED, ref)
        in_bytes = sum(p.stat().st_size for p in processed.rglob("*.parquet"))
        scratch = state_dir(self.settings) / "scratch" / ref.key
        t0 = time.perf_counter()
        try:
            result = publish_batch(
                self.settings,
                self.wh,
                batch_key=ref.key,
                landing_sha256=record.landing_sha256,
                processed=processed,
                scratch=scratch,
                expected_rows=record.facts.get("expected_rows", {}),
                load_text=self.settings.goodreads.load_review_text,
                progress=self.progress,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self.zones.release_input(Zone.PROCESSED, ref)
        seconds = time.perf_counter() - t0
        rows_in = sum(t.processed for t in result.tables.values())
        report.stages.append(
            StageStats(
                "checks",
                rows_in,
                rows_in - self._dropped(result),
                in_bytes,
                result.check_seconds,
                result.check_cpu_seconds,
            )
        )
        report.superseded = sum(t.superseded for t in result.tables.values())
        report.orphaned = sum(t.orphaned for t in result.tables.values())
        report.quarantined += result.quarantined_rows
        report.gates = [
            {
                "table": g.table,
                "passed": g.publish,
                "quarantined_rows": g.quarantined_rows,
                "checks": [
                    {
                        "name": r.name,
                        "severity": r.severity.value,
                        "passed": r.passed,
                        "failing": r.failing_count,
                        "message": r.message,
                    }
                    for r in g.report.results
                ],
            }
            for g in result.gates
        ]
        facts = {
            "publish": {
                "seconds": seconds,
                "superseded": report.superseded,
                "orphaned": report.orphaned,
                "gates": [g.summary() for g in result.gates if g.reasons],
            }
        }
        if result.held:
            report.state = BatchState.BLOCKED
            report.held = result.held_reasons
            self.ledger.advance(ref, BatchState.BLOCKED, **facts)
            self._alert_held(ref, result)
            return
        report.state = BatchState.LOADED
        report.loaded_rows = result.loaded_rows
        report.stages.append(
            StageStats(
                "load",
                rows_in - self._dropped(result),
                result.loaded_rows,
                in_bytes,
                result.load_seconds,
                result.load_cpu_seconds,
            )
        )
        self.ledger.advance(ref, BatchState.LOADED, loaded_rows=result.loaded_rows, **facts)

    @staticmethod
    def _dropped(result: PublishResult) -> int:
        return sum(t.superseded + t.orphaned for t in result.tables.values())

    def _alert_held(self, ref: BatchRef, result: PublishResult) -> None:
        held = [g for g in result.gates if g.held]
        lines = [g.summary() for g in held]
        send_alert(
            self.settings.alerts,
            Alert(
                title=f"goodreads batch {ref.key} held back by quality checks",
                text="\n".join(lines)
                + f"\nNothing was loaded. See: headwater quarantine list --batch {ref.batch_id}",
                severity="error",
                pipeline=DATASET,
                fields={
                    "batch": ref.key,
                    "tables": ", ".join(g.table for g in held),
                    "quarantined": f"{sum(g.quarantined_rows for g in held):,} rows",
                },
            ),
            dedupe_key=f"gate:{DATASET}:{ref.key}",
            state_dir=self.settings.resolve(ALERT_STATE_DIR),
        )

    # -- one batch ------------------------------------------------------------------------------------
    def process(self, record: BatchRecord) -> BatchReport:
        ref = record.ref
        report = BatchReport(ref.key, record.state, landing_bytes=record.landing_bytes)
        try:
            if record.state is BatchState.LANDED:
                self.ingest(ref, record, report)
                report.state = BatchState.WORKING
            if report.state is BatchState.WORKING:
                self.transform(ref, report)
                report.state = BatchState.PROCESSED
            if report.state in (BatchState.PROCESSED, BatchState.BLOCKED):
                fresh = self.ledger.get(ref)
                assert fresh is not None
                self.publish(ref, fresh, report)
        except Exception as exc:  # one batch failing must not stop the others; raised by the caller
            report.error = _error_text(exc)
            log.warning("goodreads batch %s failed: %s", ref.key, report.error)
            log.debug("goodreads batch %s failed", ref.key, exc_info=exc)
            report.exception = exc
            self.ledger.fail(ref, report.error)
        return report

    def clean(self, now: datetime) -> list[str]:
        """Remove working and processed copies of batches loaded longer than the retention ago."""
        keep = timedelta(hours=self.settings.goodreads.retention_hours)
        cleaned = []
        for rec in self.ledger.all():
            if rec.state is not BatchState.LOADED or rec.cleaned_at or not rec.loaded_at:
                continue
            if datetime.fromisoformat(rec.loaded_at) + keep > now:
                continue
            for zone in (Zone.WORKING, Zone.PROCESSED):
                self.zones.delete(zone, rec.ref)
            self.ledger.mark_cleaned(rec.ref)
            cleaned.append(rec.ref.key)
        return cleaned


def run_cycle(
    settings: Settings,
    *,
    engine: EngineName | None = None,
    batches: Sequence[str] | None = None,
    progress: Progress = no_progress,
    spark: Any = None,
    warehouse: Warehouse | None = None,
    now: datetime | None = None,
) -> CycleReport:
    """One ETL cycle over every unfinished landing batch (or only ``batches``, keys as listed by
    :func:`new_landing_batches`). Returns what it did; call :meth:`CycleReport.raise_for_failures` to turn
    a failed batch into an exception. When another cycle holds the lock, returns at once with ``busy``."""
    started = time.perf_counter()
    name: EngineName = engine or settings.goodreads.engine
    report = CycleReport(name)
    lock = CycleLock(state_dir(settings))
    if not lock.acquire():
        report.busy, report.holder = True, lock.holder()
        return report
    try:
        cycle = _Cycle(
            settings,
            make_engine(settings, name, spark),
            warehouse or warehouse_from_settings(settings),
            progress,
        )
        cycle.zones.clear_temp()
        wanted = {BatchRef.parse(b).key for b in batches} if batches is not None else None
        for ref in sorted(set(cycle.zones.batches(Zone.LANDING))):
            if wanted is not None and ref.key not in wanted:
                continue
            if cycle.ledger.get(ref) is None:
                found = cycle.zones.manifest(Zone.LANDING, ref)
                if found is None:
                    continue
                manifest, raw = found
                cycle.ledger.add(ref, hashlib.sha256(raw).hexdigest(), manifest.total_bytes)
        if wanted is not None:
            missing = wanted - {r.ref.key for r in cycle.ledger.all()}
            if missing:
                raise UsageError(
                    f"no complete landing batch {', '.join(sorted(missing))} (manifest missing?)"
                )
        for record in cycle.ledger.all():
            if record.state is BatchState.LOADED or (wanted is not None and record.ref.key not in wanted):
                continue
            report.batches.append(cycle.process(record))
        report.cleaned = cycle.clean(now or datetime.now(UTC))
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return report
