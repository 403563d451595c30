"""The monthly events pipeline: one ``YYYY/MM/events.csv`` -> typed, cleaned Parquet -> warehouse fact.

Out of core and one pass over the text (:mod:`headwater.events.parse`): byte ranges of the CSV are
parsed in parallel with the declared schema and streamed, in file order, into a working Parquet file in
bounded memory; everything after that reads the Parquet, never the text again:

1. **parse**: CSV -> working Parquet; lines that do not parse (wrong field count, text in a number, a
   malformed timestamp) are captured with their line number and raw text.
2. **validate and dedupe**: required fields present, ``event_time`` inside the month, duplicate
   ``event_id`` removed keeping the first. The common case costs nothing more: the parse pass saw "no
   nulls, all inside the month, ``event_id`` strictly increasing (so unique)"; only when that fails are
   the rows rewritten by an exact SQL pass.
3. **publish**: the clean file moves to ``processed/events/year=YYYY/month=MM/events.parquet``
   (atomic rename locally, verified upload to an object store), with the events per day, user and
   company that the pass counted beside it when the file is the pass's own (``_events.counts.npz``, so
   a report does not read the month again); every rejected row goes to ``quarantine/events/...`` with
   file, line and reason.
4. **load**: the month replaces its partition of ``fact_events`` in the warehouse (``replace_partition``),
   so re-processing a month is idempotent.

Timestamps are normalised to UTC once, at parse time: values with an offset are converted; values
without one are read in ``events.timezone`` (UTC by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.config import Settings
from headwater.errors import DataError, HeadwaterError
from headwater.events import counts
from headwater.events.counts import Counts
from headwater.events.parse import (
    DUCKDB_TYPES,
    ROW_GROUP,
    ParseStats,
    RowLines,
    UnreadableRange,
    parse_month_csv,
)
from headwater.events.source import Month, MonthFile, fetch_local, find_month, store_options
from headwater.manifest import fsync_dir
from headwater.progress import Progress, no_progress
from headwater.sqltext import sql_string as _sql_str
from headwater.storage import Scheme, open_store, parse_location
from headwater.warehouse import LoadMode, LoadRequest, LoadResult, warehouse_from_settings

DATASET = "events"
FACT_TABLE = "fact_events"
COLUMNS: dict[str, str] = DUCKDB_TYPES  # the declared source columns (one definition, in parse)
REQUIRED = ("event_id", "event_time", "user_id", "company_id", "event_type")
EVENT_TYPES = (
    "page_view", "click", "search", "login", "logout", "add_to_cart", "purchase", "share", "comment", "error",
)  # fmt: skip
# The checks every month passes before it is published, on top of quality.checks.fact_events.
DEFAULT_CHECKS: list[dict[str, Any]] = [
    {"type": "not_null", "name": "required_fields", "columns": list(REQUIRED)},
    {"type": "unique", "name": "event_id_unique", "columns": ["event_id"]},
    {"type": "row_count", "name": "not_empty", "min": 1},
    {"type": "row_count", "name": "volume_change", "max_change_pct": 80, "severity": "warn"},
    {"type": "accepted_values", "name": "known_event_type", "column": "event_type", "values": list(EVENT_TYPES),
     "severity": "warn"},
    {"type": "range", "name": "positive_ids", "column": "user_id", "min": 1},
]  # fmt: skip


# Default checks that hold by construction once validate_and_dedupe (or the fast path's proof) has run:
# re-running them would cost a hash aggregate over every event_id for nothing.
PROVEN_BY_PIPELINE = {
    "required_fields": "holds by construction: rows missing a required field were quarantined "
    "(fast path: the parse pass counted no NULL)",
    "event_id_unique": "holds by construction: duplicates were quarantined, the first kept "
    "(fast path: event_id strictly increasing)",
}


def fact_checks(settings: Settings) -> list[Any]:
    """The gate's checks for ``fact_events``: the defaults plus ``quality.checks.fact_events``
    (a declared check with a default's name replaces it)."""
    from headwater.quality import checks_for_table, parse_checks

    declared = checks_for_table(settings, FACT_TABLE)
    names = {c.name for c in declared}
    defaults = [c for c in parse_checks(DEFAULT_CHECKS, "events defaults") if c.name not in names]
    return [*defaults, *declared]


PROCESSED_NAME = "events.parquet"


@dataclass
class StageTiming:
    name: str
    seconds: float
    rows: int = 0
    bytes: int = 0


@dataclass
class MonthReport:
    """What processing one month did. Every input line is accounted for:
    ``rows_read == rows_out + rejected_parse + rejected_invalid + duplicates``."""

    month: str
    source_uri: str
    batch_id: str
    bytes_in: int = 0
    rows_read: int = 0
    rows_out: int = 0
    rejected_parse: int = 0
    rejected_invalid: int = 0
    duplicates: int = 0
    processed_uri: str = ""
    quarantine_uri: str | None = None
    fast_path: bool = True
    skipped: bool = False
    load: dict[str, Any] | None = None
    held: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    gate: str = ""
    stages: list[StageTiming] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def quarantined(self) -> int:
        return self.rejected_parse + self.rejected_invalid + self.duplicates

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["quarantined"] = self.quarantined
        out["mb_per_s"] = round(self.bytes_in / 1e6 / self.seconds, 1) if self.seconds else None
        return out


@contextlib.contextmanager
def _timed(report: MonthReport, name: str) -> Iterator[StageTiming]:
    stage = StageTiming(name, 0.0)
    t0 = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = time.perf_counter() - t0
        report.stages.append(stage)


def work_dir(settings: Settings) -> Path:
    return settings.resolve(".headwater/work/events")


def processed_key(month: Month) -> str:
    return f"processed/{DATASET}/year={month.year:04d}/month={month.month:02d}/{PROCESSED_NAME}"


def processed_uri(settings: Settings, month: Month) -> str:
    root = settings.storage_root
    return f"{root.rstrip('/')}/{processed_key(month)}"


def _batch_id(found: MonthFile) -> str:
    return f"events-{found.month}-{found.fingerprint[:12]}"


def _connect(settings: Settings, tmp: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": settings.events.threads or os.cpu_count() or 1})
    tz = settings.events.timezone.replace("'", "")
    con.execute(f"SET TimeZone = '{tz}'")
    con.execute(f"SET memory_limit = '{settings.events.memory_limit}'")
    con.execute(f"SET temp_directory = '{tmp.as_posix()}'")
    con.execute("SET preserve_insertion_order = true")
    return con


HEADER_LIMIT = 1 << 16
"""The most of a file read for its header (a file with no line break is not read whole)."""


def _check_header(path: Path, shown: str) -> None:
    with path.open("rb") as fh:
        first = fh.readline(HEADER_LIMIT).decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff")
    if "\r" in first:
        raise DataError(
            f"{shown} line 1: lines end with a carriage return alone (classic Mac text); "
            "convert the file to LF or CRLF line breaks (e.g. tr '\\r' '\\n')"
        )
    names = [n.strip().strip('"') for n in first.strip().split(",")]
    if names != list(COLUMNS):
        header = ",".join(names)
        header = header if len(header) <= 200 else header[:200] + "..."
        raise DataError(
            f"{shown} line 1: header {header!r} differs from the declared columns {','.join(COLUMNS)!r}"
        )


def _stats_say_clean(stats: ParseStats, month: Month) -> bool:
    """True when what the parse pass saw proves: no NULL in a required column, every event_time in the
    month, and event_id strictly increasing (so unique)."""
    if stats.rows == 0 or stats.min_time is None or stats.max_time is None:
        return False
    if any(stats.nulls.get(c, 0) for c in REQUIRED) or not stats.ids_increasing:
        return False
    lo = np.datetime64(month.first_day.isoformat(), "us")
    hi = np.datetime64(month.next().first_day.isoformat(), "us")
    return bool(lo <= stats.min_time and stats.max_time < hi)


def validate_and_dedupe(
    con: duckdb.DuckDBPyConnection, parsed: Path, out: Path, month: Month, row_lines: RowLines
) -> tuple[int, pa.Table, int]:
    """The exact pass, when statistics could not prove the batch clean. Writes the valid, first-seen rows
    to ``out`` in file order; returns (rows written, quarantined rows, duplicates). ``row_lines`` gives
    the file line of each row of ``parsed``."""
    lo, hi = month.first_day.isoformat(), month.next().first_day.isoformat()
    src = f"read_parquet({_sql_str(parsed)}, file_row_number = true)"
    missing = " ".join(f"WHEN {c} IS NULL THEN '{c}: missing'" for c in REQUIRED)
    reason = (
        f"CASE {missing} WHEN event_time < TIMESTAMP '{lo}' OR event_time >= TIMESTAMP '{hi}' "
        f"THEN 'event_time ' || strftime(event_time, '%Y-%m-%d %H:%M:%S') || ' is outside {month}' END"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW hw_checked AS SELECT *, {reason} AS _hw_reason FROM {src}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE hw_first AS SELECT event_id, min(file_row_number) AS first_row "
        "FROM hw_checked WHERE _hw_reason IS NULL GROUP BY event_id HAVING count(*) > 1"
    )
    cols = ", ".join(f"c.{k}" for k in [*COLUMNS, "event_month"])
    later = (
        "EXISTS (SELECT 1 FROM hw_first f WHERE f.event_id = c.event_id AND c.file_row_number > f.first_row)"
    )
    con.execute(
        f"COPY (SELECT {cols} FROM hw_checked c WHERE c._hw_reason IS NULL AND NOT {later} "
        "ORDER BY c.file_row_number) "
        f"TO {_sql_str(out)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE {ROW_GROUP})"
    )
    bad = con.sql(
        f"SELECT {cols}, c.file_row_number AS _row, coalesce(c._hw_reason, 'duplicate event_id ' || "
        "c.event_id || ' (first kept at row ' || f.first_row || ')') AS _hw_reason, "
        "c._hw_reason IS NULL AS _dup, f.first_row AS _first "
        "FROM hw_checked c LEFT JOIN hw_first f ON f.event_id = c.event_id AND c._hw_reason IS NULL "
        f"WHERE c._hw_reason IS NOT NULL OR {later} ORDER BY c.file_row_number"
    ).to_arrow_table()
    rows = pq.ParquetFile(out).metadata.num_rows
    dups = int(pa.compute.sum(bad.column("_dup")).as_py() or 0) if bad.num_rows else 0
    if bad.num_rows:
        lines = row_lines.lines_of(bad.column("_row").to_numpy())
        reasons = bad.column("_hw_reason").to_pylist()
        firsts = bad.column("_first").to_pylist()
        first_lines = row_lines.lines_of(np.array([f or 0 for f in firsts], np.int64)).tolist()
        fixed = [
            r if f is None else r.split(" (first kept")[0] + f" (first kept at line {line})"
            for r, f, line in zip(reasons, firsts, first_lines, strict=True)
        ]
        bad = (
            bad.drop_columns(["_row", "_hw_reason", "_dup", "_first", "event_month"])
            .append_column("_hw_line", pa.array(lines, pa.int64()))
            .append_column("_hw_reason", pa.array(fixed, pa.string()))
        )
    return rows, bad, dups


def _publish(settings: Settings, clean: Path, month: Month, kept: Counts | None = None) -> str:
    """Move the clean month into the processed zone, replacing an earlier version atomically and
    durably: the file's bytes reach the disk before the rename (DuckDB's ``COPY`` does not sync what
    it writes; the fast path's file is synced already, so this costs it nothing), and the rename
    itself before the month is reported published. ``kept``, the counts of the file's rows, go beside
    a local month (an earlier month's counts are dropped first: they would not match anyway)."""
    location = parse_location(settings.storage_root)
    key = processed_key(month)
    if location.scheme is Scheme.FILE:
        assert location.path is not None
        target = location.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(clean, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        counts.remove(target)
        os.replace(clean, target)
        fsync_dir(target.parent)
        if kept is not None:
            counts.save(kept, target)
        return str(target)
    store = open_store(location, store_options(settings))
    store.put_file(key, clean, write_once=False, progress=no_progress, task="publish bytes")
    return processed_uri(settings, month)


def _quarantine(
    settings: Settings, batch_id: str, found: MonthFile, rejects: pa.Table, invalid: pa.Table
) -> str | None:
    if rejects.num_rows == 0 and invalid.num_rows == 0:
        return None
    from headwater.quality.quarantine import quarantine_rows

    uri: str | None = None
    if rejects.num_rows:
        entry = quarantine_rows(
            settings, dataset=DATASET, batch_id=batch_id, rows=rejects,
            reason="line does not parse", source=found.uri, check="parse",
        )  # fmt: skip
        uri = str(getattr(entry, "uri", "") or "") or uri
    if invalid.num_rows:
        entry = quarantine_rows(
            settings, dataset=DATASET, batch_id=batch_id, rows=invalid,
            reason="invalid row", source=found.uri, check="validate",
        )  # fmt: skip
        uri = str(getattr(entry, "uri", "") or "") or uri
    return uri


def _state_file(settings: Settings, month: Month) -> Path:
    return work_dir(settings) / "state" / f"{month}.json"


def _already_done(settings: Settings, found: MonthFile, load: bool) -> MonthReport | None:
    state = _state_file(settings, found.month)
    if not state.is_file():
        return None
    try:
        saved = json.loads(state.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if saved.get("batch_id") != _batch_id(found) or (load and not saved.get("load")):
        return None
    location = parse_location(settings.storage_root)
    if location.scheme is Scheme.FILE:
        assert location.path is not None
        if not (location.path / processed_key(found.month)).is_file():
            return None
    report = MonthReport(
        month=str(found.month), source_uri=found.uri, batch_id=saved["batch_id"], skipped=True
    )
    for name in ("bytes_in", "rows_read", "rows_out", "rejected_parse", "rejected_invalid", "duplicates"):
        setattr(report, name, int(saved.get(name, 0)))
    report.processed_uri = saved.get("processed_uri", "")
    report.quarantine_uri = saved.get("quarantine_uri")
    report.load = saved.get("load")
    return report


def run_month(
    settings: Settings,
    month: str | Month,
    source: str | None = None,
    *,
    load: bool = True,
    force: bool = False,
    progress: Progress = no_progress,
) -> MonthReport:
    """Process one month end to end (parse, validate, dedupe, publish, quarantine, load) and return the
    report. A month already processed from the same file is skipped unless ``force``."""
    month = month if isinstance(month, Month) else Month.parse(month)
    source = source or settings.events.source
    if "://" not in source:
        source = str(settings.resolve(source))
    found = find_month(settings, source, month)
    if not force:
        done = _already_done(settings, found, load)
        if done is not None:
            return done
    batch_id = _batch_id(found)
    report = MonthReport(month=str(month), source_uri=found.uri, batch_id=batch_id, bytes_in=found.size)
    run_dir = work_dir(settings) / f"{batch_id}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _timed(report, "fetch") as st:
            csv, _ = fetch_local(settings, found, work_dir(settings), progress)
            st.bytes = found.size
        _check_header(csv, found.uri)
        parsed = run_dir / "parsed.parquet"
        with _timed(report, "parse") as st:
            parsed_result = parse_month_csv(
                csv, parsed, month.first_day, required=REQUIRED, timezone=settings.events.timezone,
                threads=settings.events.threads or None, compression=settings.events.compression,
                on_progress=lambda n: progress("parse bytes", n, found.size),
            )  # fmt: skip
            rows, rejects = parsed_result.rows, parsed_result.rejects
            st.rows, st.bytes = rows, found.size
        report.rejected_parse = rejects.num_rows
        report.rows_read = rows + rejects.num_rows
        with _timed(report, "validate") as st:
            clean = parsed
            invalid = pa.table({})
            if not _stats_say_clean(parsed_result.stats, month):
                report.fast_path = False
                clean = run_dir / "clean.parquet"
                con = _connect(settings, run_dir / "tmp")
                try:
                    rows, invalid, report.duplicates = validate_and_dedupe(
                        con, parsed, clean, month, parsed_result.row_lines
                    )
                finally:
                    con.close()
                report.rejected_invalid = invalid.num_rows - report.duplicates
            report.rows_out = rows
            st.rows = rows
        with _timed(report, "quarantine"):
            report.quarantine_uri = _quarantine(settings, batch_id, found, rejects, invalid)
        with _timed(report, "checks"):
            from headwater.quality import checks_for_table, gate_batch

            checks = fact_checks(settings)
            declared = {c.name for c in checks_for_table(settings, FACT_TABLE)}
            proven = [c for c in checks if c.name in PROVEN_BY_PIPELINE and c.name not in declared]
            gate = gate_batch(
                settings, FACT_TABLE, clean, dataset=DATASET, batch_id=batch_id, partition=str(month),
                warehouse=warehouse_from_settings(settings) if load else None,
                checks=[c for c in checks if c not in proven], source=found.uri,
            )  # fmt: skip
            report.checks = [
                {
                    "name": c.name,
                    "severity": str(c.severity),
                    "passed": True,
                    "failing": 0,
                    "message": PROVEN_BY_PIPELINE[c.name],
                }
                for c in proven
            ] + [
                {
                    "name": r.name,
                    "severity": str(r.severity),
                    "passed": r.passed,
                    "failing": r.failing_count,
                    "message": r.message,
                }
                for r in gate.report.results
            ]
            report.gate = gate.summary()
        if gate.held:
            report.held = True
            _write_state(settings, report)
            return report
        with _timed(report, "publish"):
            # counts of the rows the pass wrote; the exact path rewrote them, so its month has none
            kept = parsed_result.counts if clean == parsed else None
            report.processed_uri = _publish(settings, clean, month, kept)
        if load:
            with _timed(report, "load") as st:
                result = load_month(settings, month, batch_id, Path(report.processed_uri), progress)
                st.rows = result.rows_in
                report.load = {
                    "table": FACT_TABLE,
                    "inserted": result.inserted,
                    "deleted": result.deleted,
                    "skipped": result.skipped,
                }
        _write_state(settings, report)
        return report
    except UnreadableRange as exc:
        raise DataError(
            f"{found.uri} lines {exc.first}-{exc.last}: not readable as CSV ({exc.reason}); nothing was published"
        ) from exc
    except duckdb.Error as exc:
        raise DataError(f"{found.uri}: {str(exc).splitlines()[0]}") from exc
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _write_state(settings: Settings, report: MonthReport) -> None:
    from headwater.manifest import write_atomic

    state = _state_file(settings, Month.parse(report.month))
    state.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(state, json.dumps(report.to_json(), indent=2, default=str).encode())


def load_month(
    settings: Settings, month: Month, batch_id: str, parquet: Path, progress: Progress = no_progress
) -> LoadResult:
    """Replace the month's partition of ``fact_events`` with the processed file (one transaction)."""
    if "://" in str(parquet):
        raise HeadwaterError(f"{parquet}: loading from an object store URL needs a local copy first")
    wh = warehouse_from_settings(settings)
    request = LoadRequest(
        table=FACT_TABLE,
        batch_id=batch_id,
        mode=LoadMode.REPLACE_PARTITION,
        partition_column="event_month",
    )
    return wh.load(parquet, request, progress)


def read_processed(settings: Settings, months: list[Month], columns: list[str] | None = None) -> pa.Table:
    """The processed rows of ``months`` as one Arrow table (missing months are an error)."""
    tables = []
    for month in months:
        uri = processed_uri(settings, month)
        if "://" in uri:
            raise HeadwaterError(f"{uri}: reading processed months from an object store is not supported yet")
        if not Path(uri).is_file():
            raise DataError(
                f"{uri}: month {month} has not been processed; run: headwater events process --month {month}"
            )
        tables.append(pq.read_table(uri, columns=columns))
    return pa.concat_tables(tables) if tables else pa.table({})


def process_month(
    source: str,
    month: str,
    *,
    settings: Settings | None = None,
    project: Path | None = None,
    load: bool = True,
    force: bool = False,
) -> Any:
    """Process ``source``/YYYY/MM/events.csv for ``month`` and return the cleaned rows as a pandas
    DataFrame (``event_time`` as UTC timestamps). The file itself is processed out of core; only the
    returned frame is held in memory.

        >>> df = process_month("s3://bucket", "2021-01")          # doctest: +SKIP
    """
    if settings is None:
        from headwater.config import load_settings

        settings = load_settings(project)
    report = run_month(settings, month, source, load=load, force=force)
    frame = pq.read_table(report.processed_uri).to_pandas() if "://" not in report.processed_uri else None
    if frame is None:
        frame = read_processed(settings, [Month.parse(month)]).to_pandas()
    frame["event_time"] = frame["event_time"].dt.tz_localize("UTC")
    frame.attrs["report"] = report.to_json()
    return frame
