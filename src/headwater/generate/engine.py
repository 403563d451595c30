"""The generation engine: plan the tables parents first, make referenced tables in memory, stream
the rest chunk by chunk through worker processes, write files, a manifest and a defects ledger.

Determinism: every block of ``BLOCK_ROWS`` rows draws from streams seeded by (seed, table, column,
block), and pieces are written in block order, so output bytes do not depend on ``workers`` or
``chunk_rows``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from headwater import __version__
from headwater.errors import SchemaError, UsageError
from headwater.generate.block import AggregateTarget, Block, build_block, output_schema
from headwater.generate.columns import BLOCK_ROWS, ParentTable, arrow_type, pattern_space
from headwater.generate.encode import (
    ChunkResult,
    Piece,
    Slot,
    csv_bytes,
    csv_header,
    encode_chunk,
    forget_mappings,
    release,
    spill,
    unspill,
)
from headwater.generate.sinks import Segment, TableSink
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, write_atomic
from headwater.progress import Progress, no_progress
from headwater.schema import model as m
from headwater.schema.loader import main_table, schema_hash, table_order
from headwater.schema.model import Schema, TableSpec

LEDGER_NAME = "defects.csv"


@dataclass(frozen=True)
class GenerateOptions:
    """How to generate. ``rows``/``size`` apply to the main table; ``table_rows`` overrides others."""

    seed: int = 42
    rows: int | None = None
    size: int | None = None
    fmt: Literal["csv", "parquet"] = "csv"
    workers: int = 1
    chunk_rows: int = 65_536
    """Rows a worker makes and hands over at a time (rounded up to whole blocks). One block is the
    fastest measured: 1 GB of bench10 with 2 workers ran at 357-359 MB/s against 291-303 MB/s with
    four-block chunks, whose tens of megabytes of fresh arrays fall out of the CPU caches."""
    dirty: float = 0.0
    file_rows: int | None = None
    file_bytes: int | None = None
    overwrite: bool = False
    table_rows: dict[str, int] = field(default_factory=dict)


@dataclass
class TableStats:
    name: str
    rows: int = 0
    bytes: int = 0
    files: int = 0
    defects: int = 0


@dataclass
class GenerateResult:
    out: Path
    manifest: Manifest
    tables: list[TableStats]
    seconds: float
    defects: int

    @property
    def bytes(self) -> int:
        return self.manifest.total_bytes

    @property
    def rows(self) -> int:
        return self.manifest.total_rows


# ------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class _Plan:
    schema: Schema
    seed: int
    dirty: float
    fmt: str
    parents: dict[str, ParentTable]
    aggregate_targets: dict[str, list[AggregateTarget]]
    blocks_per_chunk: int
    protected: dict[str, frozenset[str]] = field(default_factory=dict)


def _referenced(schema: Schema) -> dict[str, set[str]]:
    """Per table, the columns other tables read from it (foreign keys and lookups)."""
    out: dict[str, set[str]] = {}
    for spec in schema.tables.values():
        for col in spec.columns.values():
            g = col.gen
            if isinstance(g, m.ForeignKeyGen):
                out.setdefault(g.table, set()).add(g.column)
        for col in spec.columns.values():
            g = col.gen
            if isinstance(g, m.LookupGen):
                via = spec.columns[g.via].gen
                assert isinstance(via, m.ForeignKeyGen)
                out.setdefault(via.table, set()).add(g.column)
    return out


def _check_capacity(schema: Schema, rows: dict[str, int | None]) -> None:
    for tname, spec in schema.tables.items():
        n = rows[tname]
        if n is None:
            continue
        for cname, col in spec.columns.items():
            if not col.unique:
                continue
            g, space = col.gen, None
            if isinstance(g, m.PatternGen):
                space = pattern_space(g.pattern)
            elif isinstance(g, m.UniformGen):
                space = math.floor(g.max) - math.ceil(g.min) + 1
            if space is not None and n > space:
                raise SchemaError(
                    f"tables.{tname}.columns.{cname}: {n:,} unique values needed but the generator can make only {space:,}"
                )


def _check_options(opts: GenerateOptions) -> None:
    if opts.rows is not None and opts.size is not None:
        raise UsageError("--rows and --size exclude each other; give one")
    if not 0 <= opts.dirty < 1:
        raise UsageError(f"--dirty must be in [0, 1), got {opts.dirty}")
    if opts.fmt not in ("csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, got {opts.fmt!r}")
    if opts.fmt == "parquet" and opts.file_bytes is not None:
        raise UsageError("--file-size splits CSV files only; use --file-rows for Parquet")
    for name, value in (("--rows", opts.rows), ("--size", opts.size), ("--file-rows", opts.file_rows)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive, got {value}")
    if opts.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {opts.workers}")


# ------------------------------------------------------------------------------------------ workers
_WORKER_PLAN: _Plan | None = None


def _init_worker(plan: _Plan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


class _Stopped(Exception):
    """A worker's chunk was abandoned: the writing process has all the rows it wants."""


def _make_blocks(
    plan: _Plan,
    table: str,
    first_block: int,
    last_block: int,
    total: int | None,
    stop: str | None = None,
) -> list[Block]:
    """The blocks of a chunk. ``stop``: a file whose existence means the rows are no longer wanted
    (checked before each block, so that a worker drops a chunk in flight within one block's time)."""
    spec = plan.schema.tables[table]
    blocks = []
    for b in range(first_block, last_block):
        if stop is not None and os.path.exists(stop):
            raise _Stopped(f"{table} chunk of block {first_block} abandoned")
        start = b * BLOCK_ROWS
        n = BLOCK_ROWS if total is None else min(BLOCK_ROWS, total - start)
        if n <= 0:
            break
        blocks.append(
            build_block(
                plan.seed, table, spec, b, start, n, plan.parents,
                plan.aggregate_targets.get(table, []), plan.dirty, plan.fmt == "csv",
                plan.protected.get(table, frozenset()),
            )
        )  # fmt: skip
    return blocks


def _run_chunk(
    table: str,
    index: int,
    total: int | None,
    plan: _Plan | None = None,
    spill_dir: str | None = None,
    slot: Slot | None = None,
    stop: str | None = None,
) -> ChunkResult:
    plan = plan or _WORKER_PLAN
    assert plan is not None
    first = index * plan.blocks_per_chunk
    blocks = _make_blocks(plan, table, first, first + plan.blocks_per_chunk, total, stop)
    result = encode_chunk(table, index, blocks, plan.fmt, np.random.default_rng(0), False, gather=True)
    return result if spill_dir is None else spill(result, spill_dir, slot)


# ------------------------------------------------------------------------------------------ engine
class _Writer:
    """Feeds chunk results to a table's sink in order, stopping at a row or byte target."""

    def __init__(self, sink: TableSink, size: int | None, progress: Progress, task: str, total: int | None):
        self.sink, self.size, self.progress, self.task, self.total = sink, size, progress, task, total
        self.rows = 0
        self.reported = 0
        self.done = False
        self.ledger: list[tuple[str, int, str, str]] = []
        self.aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._buffers: list[bytearray] = []  # reused for the chunks read back from the workers

    def feed(self, result: ChunkResult) -> None:
        try:
            for slot, piece in enumerate(result.pieces):
                unspill(piece, self._buffers, slot)
            self._feed(result)
        finally:
            for piece in result.pieces:
                release(piece)

    def _feed(self, result: ChunkResult) -> None:
        take = self._cut(result) if self.size is not None else None
        where: dict[int, tuple[Piece, list[Segment]]] = {}
        for piece in result.pieces:
            limit = None if take is None else int(np.searchsorted(piece.rows, take, side="left"))
            if limit == 0:
                continue
            if piece.csv is not None and piece.row_ends is not None:
                segs = self.sink.write_csv(piece.key, piece.csv, piece.row_ends, limit)
            else:
                assert piece.table is not None
                segs = self.sink.write_table(
                    piece.key, piece.table if limit is None else piece.table.slice(0, limit)
                )
            where[id(piece)] = (piece, segs)
        written = result.rows if take is None else take
        for row, column, kind in result.defects:
            if row < written:
                self.ledger.append(self._locate(row, where, column, kind))
        for key, (s, c) in result.aggregates.items():
            old = self.aggregates.get(key)
            self.aggregates[key] = (s, c) if old is None else (old[0] + s, old[1] + c)
        self.rows += written
        if self.size is not None:
            self.progress(f"{self.task} bytes", self.sink.bytes_written - self.reported, self.size)
            self.reported = self.sink.bytes_written
        else:
            self.progress(f"{self.task} rows", written, self.total)
        if self.size is not None and self.sink.bytes_written >= self.size:
            self.done = True

    def _cut(self, result: ChunkResult) -> int | None:
        """How many of the chunk's rows to write so the table stops at the first row reaching the size."""
        assert self.size is not None
        if result.pieces and result.pieces[0].row_ends is None:
            return None  # Parquet stops at block granularity: checked after each chunk
        lengths = np.zeros(result.rows, dtype=np.int64)
        for piece in result.pieces:
            assert piece.row_ends is not None
            lengths[piece.rows] = np.diff(piece.row_ends, prepend=0)
            if len(piece.rows) and not self.sink.is_open(piece.key):
                lengths[piece.rows[0]] += len(self.sink.header)  # a new file starts with its header
        cum = np.cumsum(lengths) + self.sink.bytes_written
        hit = int(np.searchsorted(cum, self.size, side="left"))
        return None if hit >= result.rows else hit + 1

    @staticmethod
    def _locate(
        row: int, where: dict[int, tuple[Piece, list[Segment]]], column: str, kind: str
    ) -> tuple[str, int, str, str]:
        for piece, segs in where.values():
            pos = int(np.searchsorted(piece.rows, row))
            if pos < len(piece.rows) and piece.rows[pos] == row:
                for seg in segs:
                    if seg.first <= pos < seg.last:
                        return seg.path, seg.file_row + pos - seg.first, column, kind
        raise AssertionError(f"defect row {row} not written")  # pragma: no cover


def generate(
    schema: Schema, out: Path, options: GenerateOptions, progress: Progress = no_progress
) -> GenerateResult:
    """Generate every table of ``schema`` into ``out``; return what was written."""
    _check_options(options)
    started = time.perf_counter()
    order = table_order(schema)
    main = main_table(schema)
    rows: dict[str, int | None] = {}
    for name, spec in schema.tables.items():
        rows[name] = options.table_rows.get(name, spec.rows)
    if options.rows is not None:
        rows[main] = options.rows
    if options.size is not None:
        rows[main] = None
    _check_capacity(schema, rows)
    referenced = _referenced(schema)
    if rows[main] is None and main in referenced:
        raise UsageError(f"--size cannot apply to table {main!r}, which other tables reference; use --rows")
    if (out / MANIFEST_NAME).exists() and not options.overwrite:
        raise UsageError(
            f"{out} already holds generated data ({MANIFEST_NAME}); choose another --out or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)

    targets: dict[str, list[AggregateTarget]] = {}
    for pname, pspec in schema.tables.items():
        for cname, col in pspec.columns.items():
            if isinstance(col.gen, m.AggregateGen):
                targets.setdefault(col.gen.table, []).append(
                    AggregateTarget(pname, cname, col.gen.via, col.gen.column, rows[pname] or 0)
                )
    plan = _Plan(
        schema,
        options.seed,
        options.dirty,
        options.fmt,
        {},
        targets,
        max(1, math.ceil(options.chunk_rows / BLOCK_ROWS)),
        {name: frozenset(cols) for name, cols in referenced.items()},
    )

    stats: dict[str, TableStats] = {}
    records: list[FileRecord] = []
    ledger: list[tuple[str, int, str, str]] = []
    deferred: dict[str, list[Block]] = {}
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    sinks: list[TableSink] = []

    def new_sink(name: str, spec: TableSpec) -> TableSink:
        schema_out = output_schema(spec, options.dirty > 0)
        layout = spec.partition_by.layout if spec.partition_by else None
        sink = TableSink(
            out, name, options.fmt, schema_out, layout, csv_header(schema_out) if options.fmt == "csv" else b"",
            options.file_rows, options.file_bytes,
        )  # fmt: skip
        sinks.append(sink)
        return sink

    def finish(name: str, writer: _Writer) -> None:
        files = writer.sink.close()
        records.extend(files)
        ledger.extend(writer.ledger)
        for key, (s, c) in writer.aggregates.items():
            old = aggregates.get(key)
            aggregates[key] = (s, c) if old is None else (old[0] + s, old[1] + c)
        stats[name] = TableStats(
            name, writer.rows, sum(f.bytes for f in files), len(files), len(writer.ledger)
        )

    try:
        # 1. tables other tables reference: in this process, whole, parents first
        for name in (t for t in order if t in referenced):
            spec = schema.tables[name]
            total = rows[name]
            assert total is not None
            blocks = _make_blocks(plan, name, 0, math.ceil(total / BLOCK_ROWS), total)
            keep = referenced[name]
            plan.parents[name] = ParentTable(
                total,
                {c: pa.concat_arrays([b.clean[c] for b in blocks]) if blocks else pa.array([], arrow_type(spec.columns[c])) for c in keep},
            )  # fmt: skip
            if any(isinstance(c.gen, m.AggregateGen) for c in spec.columns.values()):
                deferred[name] = blocks
                continue
            writer = _Writer(new_sink(name, spec), None, progress, name, total)
            _feed_blocks(writer, name, blocks, plan)
            finish(name, writer)
        # 2. the other tables, streamed through the workers
        streamed = [t for t in order if t not in referenced]
        if streamed:
            pool = _pool(options.workers, plan)
            run_dir = _spill_dir() if pool is not None else None
            spill_dir = run_dir if options.fmt == "csv" else None
            try:
                for name in streamed:
                    stop = None if run_dir is None else os.path.join(run_dir, f"stop-{name}")
                    spec = schema.tables[name]
                    writer = _Writer(
                        new_sink(name, spec),
                        options.size if name == main else None,
                        progress,
                        name,
                        rows[name],
                    )
                    chunks = _chunks(pool, plan, name, rows[name], options.workers, spill_dir, stop)
                    for result in chunks:
                        writer.feed(result)
                        if writer.done:
                            if stop is not None:  # the chunks still in the workers are not wanted
                                open(stop, "x").close()
                            break
                    finish(name, writer)
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)
                if spill_dir is not None:
                    forget_mappings(spill_dir)
                if run_dir is not None:
                    shutil.rmtree(run_dir, ignore_errors=True)
        # 3. tables with aggregates over their children, now that the children exist
        for name, blocks in deferred.items():
            spec = schema.tables[name]
            _fill_aggregates(name, spec, blocks, aggregates)
            writer = _Writer(new_sink(name, spec), None, progress, name, rows[name])
            _feed_blocks(writer, name, blocks, plan)
            finish(name, writer)
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise

    defects_total = len(ledger)
    if options.dirty > 0:
        records.append(_write_ledger(out, ledger))
    manifest = Manifest(
        files=sorted(records, key=lambda r: r.path),
        meta={
            "generator": f"headwater {__version__}",
            "schema": schema.name,
            "schema_sha256": schema_hash(schema),
            "seed": options.seed,
            "format": options.fmt,
            "dirty": options.dirty,
            "defects": defects_total,
            "tables": {s.name: s.rows for s in stats.values()},
        },
    )
    manifest.write(out / MANIFEST_NAME)
    ordered = [stats[t] for t in order if t in stats]
    return GenerateResult(out, manifest, ordered, time.perf_counter() - started, defects_total)


def _feed_blocks(writer: _Writer, name: str, blocks: list[Block], plan: _Plan) -> None:
    step = plan.blocks_per_chunk
    for i in range(0, len(blocks), step):
        writer.feed(
            encode_chunk(name, i // step, blocks[i : i + step], plan.fmt, np.random.default_rng(0), False)
        )


def _fill_aggregates(
    name: str,
    spec: TableSpec,
    blocks: list[Block],
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
) -> None:
    start = 0
    for block in blocks:
        n = block.batch.num_rows
        index = start + (np.arange(n) if block.source_rows is None else block.source_rows)
        batch = block.batch
        for cname, col in spec.columns.items():
            g = col.gen
            if not isinstance(g, m.AggregateGen) or col.hidden:
                continue
            sums, counts = aggregates.get((name, cname), (np.zeros(0), np.zeros(0, dtype=np.int64)))
            s = sums[index] if len(sums) else np.zeros(n)
            c = counts[index] if len(counts) else np.zeros(n, dtype=np.int64)
            if g.fn == "count":
                values: np.ndarray = c.astype(np.float64)
            elif g.fn == "sum":
                values = s
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    values = s / c
            if g.decimals is not None:
                values = np.round(values, g.decimals)
            missing = c == 0 if g.fn == "mean" else np.zeros(n, dtype=bool)
            if g.default is not None:
                values = np.where(missing, g.default, values)
                missing = np.zeros(n, dtype=bool)
            arr = pa.array(values, mask=missing).cast(arrow_type(col), safe=False)
            batch = batch.set_column(batch.schema.get_field_index(cname), cname, arr)
        block.batch = batch
        start += block.base_rows


def _pool(workers: int, plan: _Plan) -> ProcessPoolExecutor | None:
    if workers <= 1:
        return None
    # a fork server that has imported the engine once forks each worker in milliseconds (spawn
    # would import NumPy, PyArrow and pandas in every worker; plain fork is unsafe with threads)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["headwater.generate._warm"])
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(plan,)
    )


MIB = 1 << 20
SPILL_PREFIX = "headwater-chunks-"


def _spill_dir() -> str:
    """A private temporary folder for chunks on their way from the workers: in RAM (/dev/shm)
    where there is one, else in the system's temporary folder. Removed when the table is done; the
    folders of a generator that was killed (named after its process id) are removed by the next one,
    as they would otherwise hold RAM until the machine restarts."""
    shm = Path("/dev/shm")
    ram = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    _sweep_dead_spill_dirs(Path(ram or tempfile.gettempdir()))
    return tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=ram)


def _sweep_dead_spill_dirs(parent: Path) -> None:
    """Remove ``parent``'s chunk folders whose generator process no longer runs (same user only)."""
    for folder in parent.glob(f"{SPILL_PREFIX}*-*"):
        pid = folder.name.removeprefix(SPILL_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive but another user's (EPERM), or unknown: leave it
            continue


def _ready() -> None:
    """A no-op task: its result means a worker process is up."""


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    try:
        for future in [pool.submit(_ready) for _ in range(workers)]:
            future.result()
    except Exception:  # shut down meanwhile, or broken: the chunks' own futures report it
        return


def _chunks(
    pool: ProcessPoolExecutor | None,
    plan: _Plan,
    name: str,
    total: int | None,
    workers: int,
    spill_dir: str | None = None,
    stop: str | None = None,
) -> Iterator[ChunkResult]:
    """Chunk results in order. With a pool, this process makes the first chunks itself while the
    workers start (in a thread: starting them blocks until the fork server is up), then keeps a
    bounded window of chunks in flight in the workers."""
    chunk_rows = plan.blocks_per_chunk * BLOCK_ROWS
    count = None if total is None else math.ceil(total / chunk_rows)
    indices = iter(range(count)) if count is not None else _forever()
    if pool is None:
        for i in indices:
            yield _run_chunk(name, i, total, plan)
        return
    starting = threading.Thread(target=_start_workers, args=(pool, workers), daemon=True)
    starting.start()
    seen = 0  # the largest chunk's text so far: the first size of the slots
    while starting.is_alive():
        local = next(indices, None)
        if local is None:
            return
        result = _run_chunk(name, local, total, plan)
        seen = max(seen, csv_bytes(result))
        yield result
    starting.join()
    slots = _Slots(spill_dir, 2 * workers + 1, seen) if spill_dir is not None else None
    window: deque[tuple[Future[ChunkResult], Slot | None]] = deque()

    def done() -> Iterator[ChunkResult]:
        future, slot = window.popleft()
        result = future.result()
        if slots is not None:
            slots.observe(result)
        yield result  # the writer has written it (and let go of its views) when this resumes
        if slots is not None and slot is not None:
            slots.give(slot)

    for i in indices:
        slot = slots.take() if slots is not None else None
        window.append((pool.submit(_run_chunk, name, i, total, None, spill_dir, slot, stop), slot))
        if len(window) >= 2 * workers:
            yield from done()
    while window:
        yield from done()


class _Slots:
    """The :class:`Slot` files of one run, sized from the largest chunk seen so far (one eighth more);
    a chunk larger than its slot travels as a file instead, and the next slots handed out are larger."""

    def __init__(self, folder: str, count: int, seen: int) -> None:
        self.capacity = _slot_capacity(seen)
        self.room = True  # False once the folder had no room for a slot: files from then on
        self.free = [os.path.join(folder, f"slot-{i}.bin") for i in range(count)]
        for path in self.free:
            if not os.path.exists(path):
                open(path, "xb").close()

    def take(self) -> Slot | None:
        if not self.free or self.capacity == 0 or not self.room:
            return None
        path = self.free[-1]
        if os.path.getsize(path) < self.capacity and not _reserve(path, self.capacity):
            self.room = False  # the folder is full (a small /dev/shm, as in containers)
            return None
        self.free.pop()
        return Slot(path, self.capacity)

    def give(self, slot: Slot) -> None:
        self.free.append(slot.path)

    def observe(self, result: ChunkResult) -> None:
        self.capacity = max(self.capacity, _slot_capacity(csv_bytes(result)))


def _reserve(path: str, size: int) -> bool:
    """Grow slot file ``path`` to ``size`` bytes with its space allocated now: a mapped page that cannot be
    allocated later would kill the process writing it (SIGBUS) instead of raising an error. False, the
    file cut back to nothing, when there is no room."""
    try:
        with open(path, "r+b") as fh:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fh.fileno(), 0, size)
            else:  # no fallocate (macOS): a sparse file, as before
                os.truncate(fh.fileno(), size)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.truncate(path, 0)
        return False


def _slot_capacity(chunk_bytes: int) -> int:
    return 0 if chunk_bytes <= 0 else -(-(chunk_bytes + chunk_bytes // 8) // MIB) * MIB


def _forever() -> Iterator[int]:
    i = 0
    while True:
        yield i
        i += 1


def _write_ledger(out: Path, ledger: list[tuple[str, int, str, str]]) -> FileRecord:
    import hashlib

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "row", "line", "column", "defect"])
    for path, row, column, kind in sorted(ledger):
        w.writerow([path, row, row + 1, column, kind])
    data = buf.getvalue().encode()
    write_atomic(out / LEDGER_NAME, data)
    return FileRecord(LEDGER_NAME, len(data), hashlib.sha256(data).hexdigest(), len(ledger), "defects")


__all__ = ["GenerateOptions", "GenerateResult", "TableStats", "generate"]
