"""Landing -> working: each landing CSV read once by DuckDB with declared column types (no detection),
rows that do not parse captured with their line by DuckDB's reject tables, every parsed row checked by the
row rules, good rows streamed into typed Parquet and the rest sent to quarantine with file, line and reason.

Line numbers: a rejected line is reported by DuckDB; a parsed row that fails a rule gets its line from its
position in the (ordered) stream of parsed rows, shifted past the rejected lines before it. Lines count
records: header = line 1, first record = line 2 (the physical line too unless a quoted field holds a
newline).
"""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from headwater.csvlines import file_blocks, items
from headwater.errors import DataError
from headwater.goodreads.etl_schema import (
    FILE_COLUMN,
    ROW_COLUMN,
    Entity,
    csv_schema,
    duckdb_columns,
    entity_of_file,
    reason_expression,
    working_schema,
)
from headwater.manifest import Manifest
from headwater.progress import Progress, no_progress
from headwater.sqltext import sql_string

REASON = "_hw_reason"
LINE = "_hw_line"
RAW = "_hw_raw"
STREAM_ROWS = 1 << 17
# columns worth dictionary-encoding in Parquet (few distinct values); long text is not
_LOW_CARDINALITY = frozenset({"role", "format", "edition_information", "spoiler_state", "location"})
_scan_ids = itertools.count()


@dataclass
class FileIngest:
    """One landing file read into the working zone."""

    file: str
    entity: Entity
    bytes: int
    rows_ok: int = 0
    rows_invalid: int = 0  # parsed, failed a row rule
    rows_rejected: int = 0  # did not parse (wrong field count, bad number or timestamp, ...)

    @property
    def rows_read(self) -> int:
        return self.rows_ok + self.rows_invalid + self.rows_rejected


@dataclass
class Held:
    """Rows of one file held back: parsed rows that failed a rule, and lines that did not parse."""

    invalid: pa.Table | None = None
    rejected: pa.Table | None = None


@dataclass
class IngestResult:
    files: list[FileIngest] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def rows_ok(self) -> int:
        return sum(f.rows_ok for f in self.files)

    @property
    def rows_held(self) -> int:
        return sum(f.rows_invalid + f.rows_rejected for f in self.files)

    def rows_by_entity(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.entity.value] = out.get(f.entity.value, 0) + f.rows_ok
        return out


#: called with (file name, held rows) for every file that had rows to hold back
HoldRows = Callable[[str, Entity, Held], None]


def read_header(path: Path) -> list[str]:
    """The header fields of a CSV file (one-line message naming the file when it has none)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    if not head:
        raise DataError(f"{path}: empty file; a landing file starts with a header line")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1: header is not UTF-8 ({exc.reason})") from exc
    return next(csv.reader(io.StringIO(text)), [])


def check_header(path: Path, entity: Entity) -> None:
    expected = csv_schema(entity).names
    found = read_header(path)
    if found != expected:
        missing = [c for c in expected if c not in found]
        extra = [c for c in found if c not in expected]
        detail = (
            f"missing {', '.join(missing)}"
            if missing
            else f"unexpected {', '.join(extra)}"
            if extra
            else "order differs"
        )
        raise DataError(
            f"{path}: line 1: header does not match the {entity} columns ({detail}); expected {','.join(expected)}"
        )


def _read_query(path: Path, entity: Entity, rejects: str, scans: str) -> str:
    columns = (
        "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in duckdb_columns(entity).items()) + "}"
    )
    names = ", ".join(f'"{c}"' for c in csv_schema(entity).names)
    return (
        f"SELECT {names}, {reason_expression(entity)} AS {REASON} FROM read_csv({sql_string(path)}, "
        f"columns = {columns}, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
        f"nullstr = '', allow_quoted_nulls = false, store_rejects = true, "
        f"rejects_table = {sql_string(rejects)}, rejects_scan = {sql_string(scans)})"
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    entity: Entity,
    target: Path,
    progress: Progress = no_progress,
    compression: str = "snappy",
) -> tuple[FileIngest, Held]:
    """Read one landing file into ``target`` (typed Parquet with ``_hw_file``/``_hw_row``, compressed
    with ``compression``); the rows held."""
    check_header(path, entity)
    size = path.stat().st_size
    result = FileIngest(path.name, entity, size)
    scan = next(_scan_ids)
    rejects, scans = f"hw_rejects_{scan}", f"hw_scans_{scan}"
    schema = working_schema(entity)
    invalid: list[pa.Table] = []
    offset = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        reader = con.sql(_read_query(path, entity, rejects, scans)).to_arrow_reader(STREAM_ROWS)
        dictionary = [f.name for f in schema if pa.types.is_dictionary(f.type) or f.name in _LOW_CARDINALITY]
        with pq.ParquetWriter(target, schema, compression=compression, use_dictionary=dictionary) as writer:
            for batch in reader:
                n = batch.num_rows
                positions = pa.array(np.arange(offset, offset + n, dtype=np.int64))
                offset += n
                reasons = batch.column(REASON)
                bad = pc.is_valid(reasons)
                good = pc.invert(bad)
                table = pa.Table.from_batches([batch])
                n_bad = pc.sum(bad).as_py() or 0
                if n_bad:
                    invalid.append(table.filter(bad).append_column(ROW_COLUMN, positions.filter(bad)))
                    table = table.filter(good)
                    positions = positions.filter(good)
                out = table.drop_columns([REASON])
                out = out.append_column(FILE_COLUMN, _constant(path.name, out.num_rows))
                out = out.append_column(ROW_COLUMN, positions)
                writer.write_table(out.cast(schema))
                result.rows_ok += out.num_rows
                result.rows_invalid += n_bad
                progress(f"{entity} rows", n)
        rejected = con.sql(
            f"SELECT line, string_agg(CASE WHEN error_type = 'CAST' THEN column_name || ': ' ELSE '' END "
            f"|| error_message, '; ') AS reason, "
            f"first(csv_line) AS raw FROM {rejects} GROUP BY line ORDER BY line"
        ).to_arrow_table()
    except duckdb.Error as exc:
        target.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot read as {entity} CSV: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        for table_name in (rejects, scans):
            con.execute(f"DROP TABLE IF EXISTS {table_name}")
    result.rows_rejected = rejected.num_rows
    held = Held()
    reject_lines = (
        rejected.column("line").to_numpy().astype(np.int64) if rejected.num_rows else np.zeros(0, np.int64)
    )
    row_lines: np.ndarray | None = None
    if rejected.num_rows or invalid:
        reject_lines, row_lines = _file_lines(path, reject_lines, offset)
    if rejected.num_rows:
        held.rejected = pa.table(
            {
                LINE: pa.array(reject_lines),
                REASON: rejected.column("reason").cast(pa.string()),
                RAW: rejected.column("raw").cast(pa.string()),
            }
        )
    if invalid:
        rows = pa.concat_tables(invalid)
        index = rows.column(ROW_COLUMN).to_numpy()
        lines = row_lines[index] if row_lines is not None else record_lines(index, reject_lines)
        rows = rows.append_column(LINE, pa.array(lines))
        rows = rows.append_column(FILE_COLUMN, pa.array([path.name] * rows.num_rows, pa.string()))
        held.invalid = rows
    return result, held


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """``n`` copies of ``value``, stored once."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value], pa.string()))


def _file_lines(path: Path, reject_lines: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """DuckDB's reject numbers (records, header = 1: a record spanning lines counts once) as the file's
    lines, and the line of each of the ``rows`` rows it read; the numbers as given and None when the file
    does not split into items as expected (a stray quote)."""
    located = items(file_blocks(path)).locate(reject_lines - 1, rows, header=True)
    if located is None:
        return reject_lines, None
    return located[0] + 1, located[1] + 1


def record_lines(index: np.ndarray, reject_lines: np.ndarray) -> np.ndarray:
    """Lines of parsed rows from their 0-based position among parsed rows: header is line 1, and every
    rejected line before a row pushes it one line further."""
    shifted = np.sort(reject_lines) - 2 - np.arange(len(reject_lines))
    return index + 2 + np.searchsorted(shifted, index, side="right")


def ingest_batch(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    manifest: Manifest,
    out: Path,
    hold: HoldRows,
    progress: Progress = no_progress,
    compression: str = "snappy",
) -> IngestResult:
    """Read every CSV file the landing manifest lists into ``out/<entity>/<file>.parquet``; entities
    without a file get an empty Parquet file so the models always find their four sources."""
    started = time.perf_counter()
    result = IngestResult()
    seen: set[Entity] = set()
    for record in sorted(manifest.files, key=lambda r: r.path):
        name = record.path.rsplit("/", 1)[-1]
        entity = entity_of_file(name)
        if entity is None:
            if name.endswith(".csv"):
                raise DataError(
                    f"{landing / record.path}: file name names no entity; expected author_*, book_*, user_* or reviews_*.csv"
                )
            continue
        path = landing / record.path
        if not path.is_file():
            raise DataError(f"{path}: listed in the landing manifest but missing")
        if path.stat().st_size != record.bytes:
            raise DataError(f"{path}: {path.stat().st_size} bytes, the manifest says {record.bytes}")
        target = out / entity.value / (name.removesuffix(".csv") + ".parquet")
        file_result, held = ingest_file(con, path, entity, target, progress, compression)
        result.files.append(file_result)
        seen.add(entity)
        if held.invalid is not None or held.rejected is not None:
            hold(record.path, entity, held)
    for entity in Entity:
        if entity not in seen:
            folder = out / entity.value
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(working_schema(entity).empty_table(), folder / "empty.parquet")
    result.seconds = time.perf_counter() - started
    return result
