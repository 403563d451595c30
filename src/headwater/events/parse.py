"""One pass over a month's CSV: byte ranges parsed in parallel, typed rows streamed into one Parquet file.

The file is cut into ranges of ``chunk_bytes`` that end on a line break. Worker threads read a range
(``os.pread``, no shared buffer) and parse it under the declared schema: with the compiled reader of plain
lines (:mod:`headwater.events.plain`) when every line of the range is plain, else with PyArrow's CSV
reader, which gives the same rows. The calling thread writes the typed batches, in file order, to a
single Parquet file. Memory stays bounded by ``chunk_bytes`` times the few ranges in flight, whatever the
size of the file, and both cores parse.

Whatever PyArrow's reader refuses too (a ragged line, text in a number, a timestamp with a zone offset, a
value it cannot read) sends that range to the careful reader: DuckDB's CSV reader with rejects captured,
which keeps every line it can and reports each one it cannot with its line number and reason. A cut
that falls inside a quoted value (a value with a line break) is found and the range is extended to the
next safe cut, so no record is ever split.

While the rows are in memory the pass also collects what the later stages would otherwise read the file
again for: null counts of the required columns, the time range, whether ``event_id`` strictly
increases (so it is unique), and the events per day, user and company that the analyses report
(:mod:`headwater.events.counts`; each parse thread counts its own ranges).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from headwater.csvlines import items
from headwater.directio import DirectFile
from headwater.events.counts import IDS, Counts, Tally

log = logging.getLogger(__name__)

# Declared columns of the source file, in order, and their Arrow types.
ARROW_TYPES: dict[str, pa.DataType] = {
    "event_id": pa.int64(),
    "event_time": pa.timestamp("us"),
    "user_id": pa.int64(),
    "company_id": pa.int64(),
    "event_type": pa.string(),
    "properties": pa.string(),
}
DUCKDB_TYPES = {
    "event_id": "BIGINT",
    "event_time": "TIMESTAMPTZ",
    "user_id": "BIGINT",
    "company_id": "BIGINT",
    "event_type": "VARCHAR",
    "properties": "VARCHAR",
}
SOURCE_SCHEMA = pa.schema(list(ARROW_TYPES.items()))
STRING_COLUMNS = [n for n, t in ARROW_TYPES.items() if pa.types.is_string(t)]
OUTPUT_SCHEMA = pa.schema([*ARROW_TYPES.items(), ("event_month", pa.date32())])
REJECT_SCHEMA = pa.schema([("_hw_line", pa.int64()), ("_hw_reason", pa.string()), ("_hw_raw", pa.string())])
CHUNK_BYTES = 8 << 20
"""Bytes per range. The parser reads a range right after ``pread`` copied it into the thread's buffer:
at 8 MB more of it is still in the CPU's caches than at 16 (parse threads 6.4-7.1 -> 5.8-6.4 CPU-s per
2 GB month); at 4 MB the per-range costs ate the gain."""
ROW_GROUP = 1_000_000
_PROBE = 1 << 16
IN_FLIGHT_PER_THREAD = 8
"""Ranges queued or being parsed per parse thread (64 MB per thread at 8 MB a range). With too few the
niced parse threads fall behind the writing thread and it waits: at 16 MB ranges, 2 per thread gave
run_month 6.4-6.7 s on a 2 GB month and 4 gave 5.8-5.9 s. 8 MB x 8 against 16 MB x 4, alternating:
5.46-5.94 s against 5.79-6.38 s. Peak RSS stays about 600-700 MB at any size."""
MAX_MERGE = 8
DELTA_COLUMNS = ("event_id", "event_time", "user_id", "company_id")
"""Integer columns written DELTA_BINARY_PACKED. For the ids this is as small as a dictionary (50 k users
in random order: 16-17 bits a value either way) and spares the writer a hash lookup per value: 6 M rows
of the number columns encoded in 0.26 s against 0.30 s with dictionaries, at the same size. run_month +
analyse on a 2 GB month, 10 alternating pairs: median 6.04 s against 6.17 s, faster in 8 of 10."""


class UnreadableRange(Exception):
    """Neither reader can read lines ``first``-``last`` as CSV (binary bytes, a quote that never closes):
    the month cannot be processed."""

    def __init__(self, first: int, last: int, reason: str) -> None:
        super().__init__(f"lines {first}-{last}: {reason}")
        self.first, self.last, self.reason = first, last, reason


@dataclass
class ParseStats:
    """What the pass learned about the rows it wrote (only rows that parsed)."""

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    min_time: np.datetime64 | None = None
    max_time: np.datetime64 | None = None
    ids_increasing: bool = True
    last_id: int | None = None


class RowLines:
    """The file line on which each written row starts, kept as runs of rows on consecutive lines: one run
    per month when every line is one row, a new run after each rejected line, empty line or value with
    a line break (16 bytes a run, in NumPy arrays)."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []  # the first row of each run, in chunks
        self._lines: list[np.ndarray] = []  # its line
        self._last: tuple[int, int] | None = None  # (first row, line) of the last run

    def add_run(self, row: int, line: int) -> None:
        """Rows from ``row`` on start at ``line``, one line each (until the next run)."""
        self.add_rows(row, np.array([line], np.int64))

    def add_rows(self, row: int, lines: np.ndarray) -> None:
        """Rows ``row``, ``row + 1``, ... start on ``lines`` (ascending)."""
        if lines.size == 0:
            return
        starts = np.concatenate(([0], np.flatnonzero(np.diff(lines) != 1) + 1))
        run_rows, run_lines = starts + row, lines[starts].astype(np.int64)
        if self._last is not None and run_lines[0] - self._last[1] == run_rows[0] - self._last[0]:
            run_rows, run_lines = run_rows[1:], run_lines[1:]  # the last run goes on
        if run_rows.size:
            self._rows.append(run_rows)
            self._lines.append(run_lines)
            self._last = (int(run_rows[-1]), int(run_lines[-1]))

    def lines_of(self, rows: np.ndarray) -> np.ndarray:
        """File lines of the rows numbered ``rows`` (0-based, in the order written)."""
        if len(self._rows) > 1:  # one chunk from now on
            self._rows, self._lines = [np.concatenate(self._rows)], [np.concatenate(self._lines)]
        first_rows, first_lines = self._rows[0], self._lines[0]
        rows = np.asarray(rows, np.int64)
        run = np.searchsorted(first_rows, rows, side="right") - 1
        lines: np.ndarray = first_lines[run] + (rows - first_rows[run])
        return lines


@dataclass
class ParseResult:
    rejects: pa.Table  # _hw_line, _hw_reason, _hw_raw, sorted by line
    stats: ParseStats
    chunks: int = 0
    plain_chunks: int = 0  # read by the compiled reader of plain lines
    careful_chunks: int = 0
    counts: Counts | None = None  # events per day, user and company of the rows written
    row_lines: RowLines = field(default_factory=RowLines)  # the file line of each row written

    @property
    def rows(self) -> int:
        """Rows written (every line that parsed)."""
        return self.stats.rows


@dataclass
class _Chunk:
    index: int
    start: int
    end: int
    table: pa.Table | None = None  # None: the fast reader refused the range; else in UTC
    tally: Tally | None = None  # the table's counts
    lines: int = 0  # physical lines in the range (known when table is set and no value holds a line break)
    has_newline_in_value: bool = False
    plain: bool = False  # read by the compiled reader of plain lines
    error: str = ""


def _ranges(fd: int, start: int, size: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Byte ranges [start, end) of about ``chunk_bytes`` that each end just after a line break."""
    while start < size:
        end = min(start + chunk_bytes, size)
        while end < size:
            window = os.pread(fd, _PROBE, end)
            cut = window.find(b"\n")
            if cut >= 0:
                end += cut + 1
                break
            end += len(window)
        yield start, end
        start = end


def _read_options(nbytes: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(column_names=list(ARROW_TYPES), use_threads=False, block_size=nbytes + 1)


_KEEP_EMPTY_LINES = pacsv.ParseOptions(ignore_empty_lines=False)
"""An empty line read as a row of NULLs, so that rows + empty lines = the range's lines (the careful
reader and the line numbers of rejects count them). A range with a NULL event_id is read again with
:data:`_SKIP_EMPTY_LINES`, so an empty line is never a row; a range without one costs nothing more."""
_SKIP_EMPTY_LINES = pacsv.ParseOptions(ignore_empty_lines=True)
_CONVERT = pacsv.ConvertOptions(
    column_types=ARROW_TYPES, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True
)


PARSE_POOL = pa.system_memory_pool()
"""Where parsed ranges are allocated: the C library's malloc. The pass allocates and frees ~10 MB per
range, ~250 times per 2 GB month; glibc reuses the freed memory in place, while PyArrow's default
(mimalloc) hands it back to the OS after a short delay and faults it in again. On these virtual machines
that was 0.3-0.7 s of system time per month (pass 6.5-6.9 s -> 6.2-6.4 s, alternating)."""
_LOCAL = threading.local()
PARSE_NICE = 10
"""Niceness of the parse threads (Linux: per thread). The one thread that encodes the Parquet file is
the pass's critical path, and with two parse threads beside it on two cores it lost about a fifth of
its time to them; niced, they take what it leaves. 2 GB month: 7.5-7.6 s -> 6.5-7.0 s."""


def _yield_to_writer() -> None:
    """Run in each parse thread as it starts: let the writing thread go first (Linux only, where the
    nice value belongs to the thread; elsewhere it would slow the whole process)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PARSE_NICE)


def _read_range(fd: int, start: int, end: int) -> memoryview:
    """Bytes [start, end) of ``fd`` in this thread's reused buffer (valid until its next call). A new
    ``bytes`` per range would fault in fresh pages every time: on these virtual machines that was
    1-3 s of system time per 2 GB month. PyArrow's CSV reader copies what it parses, so the buffer is
    free again once the range is parsed."""
    size = end - start
    buf: bytearray | None = getattr(_LOCAL, "buf", None)
    if buf is None or len(buf) < size:
        buf = _LOCAL.buf = bytearray(size)
    view = memoryview(buf)[:size]
    got = os.preadv(fd, [view], start)
    return view[:got]


PlainReader = Callable[[memoryview, pa.Schema], pa.Table | None]
""":func:`headwater.events.plain.read_plain`, passed in when the pass uses it (see :func:`_plain_reader`)."""
PLAIN_MIN_BYTES = 1 << 30
"""Months from this size on are read with the compiled reader for plain lines (:mod:`headwater.events.plain`)
even when the process has not loaded it yet. Loading it (Numba) takes ~0.5 s once per process, which
smaller months do not win back. The pass in a fresh process, 2 cores, loading included, alternating:
512 MB month 1.65-1.77 s with it against 1.52-1.81 s without; 1 GB 2.80-3.22 s against 2.85-3.75 s."""


def _plain_reader(size: int, plain: bool | None) -> PlainReader | None:
    """The compiled reader for plain ranges, or None: PyArrow's reader for every range. ``plain``: True or
    False to choose; None to use it when the process has it loaded already or the file is large enough
    to win back the loading."""
    if plain is False:
        return None
    if plain is None and size < PLAIN_MIN_BYTES and "headwater.events.plain" not in sys.modules:
        return None
    try:
        from headwater.events.plain import read_plain
    except ImportError as exc:  # e.g. a NumPy newer than the installed Numba supports: slower, not wrong
        log.warning(
            "events: the compiled reader of plain lines is unavailable (%s); PyArrow's reads every range", exc
        )
        return None
    return read_plain


def _fast(fd: int, index: int, start: int, end: int, timezone: str, read_plain: PlainReader | None) -> _Chunk:
    data = _read_range(fd, start, end)
    chunk = _Chunk(index, start, end)
    plain = None if read_plain is None else read_plain(data, SOURCE_SCHEMA)
    if plain is not None:  # every line plain: read in one compiled pass, a row a line
        chunk.table = _utc(plain, timezone)
        chunk.tally = Tally.of(chunk.table)
        chunk.lines = plain.num_rows
        chunk.plain = True
        return chunk

    def read(parse_options: pacsv.ParseOptions) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=_read_options(len(data)),
            parse_options=parse_options,
            convert_options=_CONVERT,
            memory_pool=PARSE_POOL,
        )

    try:
        table = read(_KEEP_EMPTY_LINES)
        rows_and_empty_lines = table.num_rows
        if table.column("event_id").null_count:  # an empty line (or a row without an id): skip empty lines
            table = read(_SKIP_EMPTY_LINES)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        chunk.error = str(exc).splitlines()[0]
        return chunk
    # a line break inside a value: the range may end inside a quoted value, and rows != lines
    chunk.has_newline_in_value = any(_holds_newline(table.column(c)) for c in STRING_COLUMNS)
    chunk.table = _utc(table, timezone)
    chunk.tally = Tally.of(chunk.table)
    if chunk.has_newline_in_value:
        chunk.lines = int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
    else:
        chunk.lines = rows_and_empty_lines
    return chunk


def _holds_newline(column: pa.ChunkedArray) -> bool:
    """Whether any value holds a line break: one byte scan of the string data (conservative)."""
    for arr in column.chunks:
        data = arr.buffers()[2]
        if data is not None and np.count_nonzero(np.frombuffer(data, np.uint8) == 10):
            return True
    return False


def _quote_parity(fd: int, start: int, end: int) -> int:
    return os.pread(fd, end - start, start).count(b'"') % 2


class _Careful:
    """DuckDB's CSV reader over one range: keeps what parses, reports each rejected line."""

    def __init__(self, header: bytes, timezone: str, tmp: Path) -> None:
        self.header = header
        self.con = duckdb.connect(config={"threads": 1})
        self.con.execute(f"SET TimeZone = '{timezone.replace(chr(39), '')}'")
        self.path = tmp / "careful.csv"
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in DUCKDB_TYPES.items()) + "}"
        select = ", ".join(
            f"timezone('UTC', {k}) AS {k}" if v == "TIMESTAMPTZ" else k for k, v in DUCKDB_TYPES.items()
        )
        self.sql = (
            f"SELECT {select} FROM read_csv('{self.path.as_posix()}', columns = {columns}, header = true, "
            "auto_detect = false, delim = ',', quote = '\"', escape = '\"', store_rejects = true, "
            "rejects_table = 'hw_rejects', rejects_scan = 'hw_reject_scans', rejects_limit = 0)"
        )

    def parse(self, data: bytes) -> tuple[pa.Table, pa.Table]:
        """(rows, rejects numbered by DuckDB: the range's items from 1, a record spanning lines once)."""
        self.path.write_bytes(self.header + data)
        self.con.execute("DROP TABLE IF EXISTS hw_rejects; DROP TABLE IF EXISTS hw_reject_scans")
        table = self.con.sql(self.sql).to_arrow_table()
        rejects = self.con.sql(
            "SELECT line - 1 AS _hw_line, string_agg(DISTINCT error_type || coalesce(' ' || column_name, '') "
            "|| ': ' || error_message, '; ') AS _hw_reason, any_value(csv_line) AS _hw_raw "
            "FROM hw_rejects GROUP BY line ORDER BY line"
        ).to_arrow_table()
        return table.cast(SOURCE_SCHEMA), rejects.cast(REJECT_SCHEMA)

    def close(self) -> None:
        self.con.close()


def _utc(table: pa.Table, timezone: str) -> pa.Table:
    """Naive timestamps read in ``timezone`` -> UTC (the stored naive value is UTC)."""
    if timezone.upper() in ("UTC", "ETC/UTC", "Z"):
        return table
    col = pc.assume_timezone(table.column("event_time"), timezone)
    i = table.schema.get_field_index("event_time")
    return table.set_column(i, "event_time", col.cast(pa.timestamp("us", "UTC")).cast(pa.timestamp("us")))


def _observe(stats: ParseStats, table: pa.Table, required: tuple[str, ...]) -> None:
    n = table.num_rows
    if n == 0:
        return
    stats.rows += n
    for c in required:
        stats.nulls[c] = stats.nulls.get(c, 0) + table.column(c).null_count
    mm = pc.min_max(table.column("event_time"))
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    if lo is not None:
        lo64, hi64 = np.datetime64(lo, "us"), np.datetime64(hi, "us")
        stats.min_time = lo64 if stats.min_time is None else min(stats.min_time, lo64)
        stats.max_time = hi64 if stats.max_time is None else max(stats.max_time, hi64)
    if stats.ids_increasing:
        col = table.column("event_id")
        if col.null_count:
            stats.ids_increasing = False
            return
        ids = col.to_numpy()
        after_last = stats.last_id is None or ids[0] > stats.last_id
        if not after_last or (n > 1 and not bool(np.all(ids[1:] > ids[:-1]))):
            stats.ids_increasing = False
        stats.last_id = int(ids[-1])


def parse_month_csv(
    csv: Path,
    out: Path,
    month_first_day: date,
    *,
    required: tuple[str, ...],
    timezone: str = "UTC",
    threads: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    compression: str = "snappy",
    on_progress: Callable[[int], None] | None = None,
    plain: bool | None = None,
) -> ParseResult:
    """Parse ``csv`` (header already checked) into ``out`` with the ``event_month`` column set to
    ``month_first_day``. Rows keep file order; rejected lines come back with their file line numbers.
    ``plain`` chooses the reader of plain ranges (:func:`_plain_reader`); the rows are the same either way."""
    threads = max(1, threads or os.cpu_count() or 1)
    fd = os.open(csv, os.O_RDONLY)
    writer: pq.ParquetWriter | None = None
    sink: DirectFile | None = None
    careful: _Careful | None = None
    stats = ParseStats()
    rejects: list[pa.Table] = []
    result = ParseResult(REJECT_SCHEMA.empty_table(), stats)
    pending: list[pa.Table] = []
    pending_rows = 0
    tally = Tally()
    month_days = int(np.datetime64(month_first_day.isoformat(), "D").astype(np.int64))
    with tempfile.TemporaryDirectory(prefix="hw-parse-", dir=out.parent) as tmp_name:
        try:
            size = os.fstat(fd).st_size
            read_plain = _plain_reader(size, plain)
            head = os.pread(fd, _PROBE, 0)
            first = head.find(b"\n")
            header = head[: first + 1] if first >= 0 else head + b"\n"
            body_start = len(header) if first >= 0 else size
            if on_progress is not None:
                on_progress(body_start)  # the header: the ranges cover the rest, so the bytes add up to size
            sink = DirectFile(out)  # direct I/O: the month's Parquet bypasses the page cache
            writer = pq.ParquetWriter(
                sink,
                OUTPUT_SCHEMA,
                compression={
                    c: (compression if c in STRING_COLUMNS else "none") for c in OUTPUT_SCHEMA.names
                },
                use_dictionary=["event_type", "event_month"],
                # min/max of the number and time columns let readers skip row groups; text statistics
                # would cost the writer a comparison per value (event_type: 7% of its time) and prune
                # nothing (every row group holds every event type)
                write_statistics=[c for c in OUTPUT_SCHEMA.names if c not in STRING_COLUMNS],
                column_encoding=dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED"),
            )
            next_line = 2  # physical line number of the next range's first line

            def flush(force: bool) -> None:
                """Write whole row groups of ``ROW_GROUP`` rows; the rest waits for the next ranges (or,
                with ``force``, the last row group takes it). Writing all that had arrived as one table
                split it into 1 M rows and a stub of up to a range's rows: 53 row groups per 29 M rows."""
                nonlocal pending, pending_rows
                assert writer is not None
                while pending and (pending_rows >= ROW_GROUP or force):
                    rows = pa.concat_tables(pending)
                    writer.write_table(rows.slice(0, ROW_GROUP), row_group_size=ROW_GROUP)
                    rest = rows.slice(ROW_GROUP)
                    pending, pending_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)

            def emit(
                table: pa.Table,
                lines: int,
                chunk_rejects: pa.Table | None,
                counted: Tally,
                row_lines: np.ndarray | None = None,
            ) -> None:
                """Queue ``table``, the rows of a range of ``lines`` lines starting at ``next_line``; its
                rows start on ``row_lines`` (relative to the range), or one a line from its first line.
                ``chunk_rejects`` carry lines relative to the range's first line = 1."""
                nonlocal next_line, pending_rows
                tally.absorb(counted)
                if row_lines is None:
                    result.row_lines.add_run(stats.rows, next_line)
                else:
                    result.row_lines.add_rows(stats.rows, row_lines + next_line)
                table = table.append_column(
                    "event_month",
                    pa.array(np.full(table.num_rows, month_days, dtype=np.int32), pa.int32()).cast(
                        pa.date32()
                    ),
                )
                _observe(stats, table, required)
                if chunk_rejects is not None and chunk_rejects.num_rows:
                    shifted = pc.add(chunk_rejects.column("_hw_line"), next_line - 1)
                    rejects.append(chunk_rejects.set_column(0, "_hw_line", shifted))
                next_line += lines
                if table.num_rows:
                    pending.append(table)
                    pending_rows += table.num_rows
                flush(False)

            def carefully(start: int, end: int) -> None:
                nonlocal careful
                if careful is None:
                    careful = _Careful(header, timezone, Path(tmp_name))
                data = os.pread(fd, end - start, start)
                lines = data.count(b"\n")
                try:
                    table, chunk_rejects = careful.parse(data)
                except duckdb.Error as exc:
                    last = next_line + lines - data.endswith(b"\n")
                    raise UnreadableRange(next_line, max(next_line, last), str(exc).splitlines()[0]) from exc
                result.careful_chunks += 1
                # DuckDB numbers the items of the range (a record spanning lines counts once, an empty
                # line counts): turn its numbers into lines, and find the lines of the rows it kept
                item = chunk_rejects.column("_hw_line").to_numpy().astype(np.int64) - 1
                located = items([data]).locate(item, table.num_rows)
                if located is not None:
                    reject_lines, row_lines = located
                    chunk_rejects = chunk_rejects.set_column(0, "_hw_line", pa.array(reject_lines + 1))
                else:  # not as expected (a stray quote): one line per item
                    row_lines = np.setdiff1d(np.arange(lines), item)[: table.num_rows]
                # DuckDB already converted the times to UTC
                emit(table, lines, chunk_rejects, Tally.of(table), row_lines)

            queue: deque[Future[_Chunk]] = deque()
            with ThreadPoolExecutor(threads, "hw-parse", initializer=_yield_to_writer) as pool:
                ranges = _ranges(fd, body_start, size, chunk_bytes)
                index = 0

                def submit() -> bool:
                    nonlocal index
                    nxt = next(ranges, None)
                    if nxt is None:
                        return False
                    queue.append(pool.submit(_fast, fd, index, *nxt, timezone, read_plain))
                    index += 1
                    return True

                for _ in range(threads * IN_FLIGHT_PER_THREAD):
                    if not submit():
                        break
                while queue:
                    chunk = queue.popleft().result()
                    result.chunks += 1
                    start, end = chunk.start, chunk.end
                    suspect = chunk.table is None or chunk.has_newline_in_value
                    if suspect and _quote_parity(fd, start, end):
                        # the cut may fall inside a quoted value: take the following ranges until the
                        # quotes balance (a stray quote never balances: give up after a few ranges)
                        for _ in range(MAX_MERGE):
                            if not queue:
                                break
                            end = queue.popleft().result().end
                            submit()
                            if not _quote_parity(fd, start, end):
                                break
                        # (a quoted value spans the cut: not plain, so PyArrow's reader reads it)
                        chunk = _fast(fd, chunk.index, start, end, timezone, None)
                    if chunk.table is None:
                        carefully(start, end)
                    else:
                        assert chunk.tally is not None
                        result.plain_chunks += chunk.plain
                        located = None
                        if chunk.lines != chunk.table.num_rows:  # empty lines, or values with line breaks
                            located = items([os.pread(fd, end - start, start)]).locate(
                                np.zeros(0, np.int64), chunk.table.num_rows
                            )
                        emit(chunk.table, chunk.lines, None, chunk.tally, located[1] if located else None)
                    if on_progress is not None:
                        on_progress(end - start)
                    submit()
            flush(True)
            writer.close()
            writer = None
            sink.close()  # durable: the file may be published as it is (renamed into processed/)
        finally:
            os.close(fd)
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
            if careful is not None:
                careful.close()
    if rejects:
        result.rejects = pa.concat_tables(rejects)
    result.counts = tally.counts({c: np.dtype(OUTPUT_SCHEMA.field(c).type.to_pandas_dtype()) for c in IDS})
    return result
