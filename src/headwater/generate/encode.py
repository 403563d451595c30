"""Turn generated blocks into the pieces a sink writes: rows split by partition, CSV-encoded
(with row end offsets, so sinks can split files and stop at a size without re-parsing) or kept
as Arrow for Parquet."""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from headwater.errors import SchemaError
from headwater.generate.block import RAGGED_COLUMN, Block, Defect
from headwater.generate.strings import concat_rows

_NEWLINE = 10
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False)


@dataclass
class Piece:
    """One partition's share of a chunk (CSV) or of a block (Parquet), rows in generation order."""

    key: int | None
    rows: np.ndarray
    csv: bytes | memoryview | None = None
    row_ends: np.ndarray | None = None
    parts: list[pa.Buffer] | None = None
    """``csv`` as buffers to lay end to end (no joined copy first), for :func:`spill` and :func:`unspill`."""
    table: pa.Table | None = None
    spill: str | None = None
    """A file holding ``csv`` while the piece travels from a worker to the writing process."""
    slot: tuple[str, int, int] | None = None
    """Where in a :class:`Slot` (its path, offset, length) ``csv`` travels instead of a file."""


@dataclass(frozen=True)
class Slot:
    """A file in the spill folder that the writing process and the workers map and keep mapped for the
    whole run, carrying one chunk at a time: a worker copies a chunk's text in, the writing process
    hashes and writes it out straight from its own mapping. Unlike a file per chunk, its RAM is
    allocated once and never read back into another buffer."""

    path: str
    capacity: int


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk of a table."""

    table: str
    index: int
    rows: int
    pieces: list[Piece]
    defects: list[tuple[int, str, Defect]]
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    clean: dict[str, pa.Array] | None = None


def csv_header(schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(schema.empty_table(), sink)
    return bytes(sink.getvalue().to_pybytes())


def _is_plain(t: pa.DataType) -> bool:
    """Types whose CSV text is their cast to string, unquoted (as pyarrow's CSV writer does)."""
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date32(t)
        or (pa.types.is_timestamp(t) and t.tz is None)
    )


def _value_bytes(values: pa.Array) -> tuple[bytes, np.ndarray]:
    """The bytes of a string array's values, back to back, and the offset just past each value."""
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    offsets = np.frombuffer(
        values.buffers()[1], dtype=width, count=len(values) + 1, offset=values.offset * width().itemsize
    )
    first, last = int(offsets[0]), int(offsets[-1])
    data = values.buffers()[2]
    text = b"" if data is None or last == first else data.slice(first, last - first).to_pybytes()
    return text, offsets[1:].astype(np.int64) - first


def csv_lines(batch: pa.RecordBatch | pa.Table) -> pa.Array | None:
    """Each row as its CSV line, newline included, byte for byte what pyarrow's CSV writer writes
    (``quoting_style="needed"``: strings quoted with inner quotes doubled, nulls empty, other
    values cast to text), in one string array whose data buffer is the CSV text and whose offsets
    are the row ends. One vectorised join per row instead of the writer's per-column passes; None
    when a column type is not covered (the caller then uses the writer)."""
    parts: list[pa.Array | str] = []
    literal = ""  # text before the next value: separators and opening quotes
    wide = sum(c.nbytes for c in batch.columns) + batch.num_rows * 3 * batch.num_columns >= 1 << 31
    for name, values in zip(batch.schema.names, batch.columns, strict=True):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        t = values.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            scanned = _value_bytes(values)[0]
            if b"\n" in scanned:
                raise SchemaError(
                    f"generated values of column {name!r} contain line breaks; "
                    "remove newlines from choice values and templates"
                )
            if b'"' in scanned:
                values = pc.replace_substring(values, '"', '""')
            if wide:
                values = values.cast(pa.large_string())
            if values.null_count:
                quoted = pc.binary_join_element_wise('"', values, '"', "")
                parts += [literal, pc.fill_null(quoted, "")]
                literal = ","
            else:
                parts += [literal + '"', values]
                literal = '",'
        elif _is_plain(t):
            text = pc.cast(values, pa.large_string() if wide else pa.string())
            if text.null_count:
                text = pc.fill_null(text, "")
            parts += [literal, text]
            literal = ","
        else:
            return None
    parts.append(literal[:-1] + "\n")
    args = [p for p in parts if not isinstance(p, str) or p]
    if not any(isinstance(p, pa.Array) for p in args):
        return None  # no columns
    return concat_rows(args, batch.num_rows)


def encode_csv(table: pa.Table, ragged: np.ndarray, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """CSV text of ``table`` (no header) and the byte offset just past each row's newline.
    Rows listed in ``ragged`` get one field too many or too few."""
    lines = csv_lines(table)
    if lines is not None:
        data, ends = _value_bytes(lines)
    else:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, _CSV_OPTIONS)
        data = sink.getvalue().to_pybytes()
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE) + 1
        if len(ends) != table.num_rows:
            raise SchemaError(
                f"generated values contain line breaks ({len(ends)} lines for {table.num_rows} rows); "
                "remove newlines from choice values and templates"
            )
    return _make_ragged(data, ends, ragged)


def _make_ragged(data: bytes, ends: np.ndarray, ragged: np.ndarray) -> tuple[bytes, np.ndarray]:
    if len(ragged) == 0:
        return data, ends
    parts: list[bytes] = []
    prev = 0
    for i, row in enumerate(ragged.tolist()):
        begin = int(ends[row - 1]) if row else 0
        end = int(ends[row])
        parts.append(data[prev:begin])
        line = data[begin : end - 1]
        if i % 2 == 0 or b"," not in line:
            parts.append(line + b',"extra field"\n')
        else:
            parts.append(line[: line.rindex(b",")] + b"\n")
        prev = end
    parts.append(data[prev:])
    out = b"".join(parts)
    ends = np.flatnonzero(np.frombuffer(out, dtype=np.uint8) == _NEWLINE) + 1
    return out, ends


def split_by_partition(keys: np.ndarray | None, rows: int) -> list[tuple[int | None, np.ndarray]]:
    """Row indices per partition key, keys ascending, rows in order within each."""
    if keys is None:
        return [(None, np.arange(rows, dtype=np.int64))]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    return [
        (int(sorted_keys[s]), order[s:e])
        for s, e in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(keys)]]), strict=True)
    ]


def _line_buffers(lines: list[pa.Array]) -> tuple[list[pa.Buffer], np.ndarray]:
    """The text (as buffers, no copy) and row ends of several ``csv_lines`` arrays, one after the other."""
    views: list[pa.Buffer] = []
    ends: list[np.ndarray] = []
    base = 0
    for x in lines:
        width = np.int64 if pa.types.is_large_string(x.type) else np.int32
        offsets = np.frombuffer(
            x.buffers()[1], dtype=width, count=len(x) + 1, offset=x.offset * width().itemsize
        )
        first, last = int(offsets[0]), int(offsets[-1])
        data = x.buffers()[2]
        if data is not None and last > first:
            views.append(data.slice(first, last - first))
        ends.append(offsets[1:].astype(np.int64) + (base - first))
        base += last - first
    return views, np.concatenate(ends)


def _join_lines(lines: list[pa.Array]) -> tuple[bytes, np.ndarray]:
    """The text and row ends of several ``csv_lines`` arrays, one after the other (one copy)."""
    if len(lines) == 1:
        return _value_bytes(lines[0])
    views, ends = _line_buffers(lines)
    return b"".join(views), ends


def _concat_lines(lines: list[pa.Array | None]) -> pa.Array:
    arrays = [x for x in lines if x is not None]
    if sum(x.nbytes for x in arrays) >= 1 << 31:
        arrays = [x.cast(pa.large_string()) for x in arrays]
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def encode_chunk(
    name: str,
    index: int,
    blocks: list[Block],
    fmt: str,
    rng: np.random.Generator,
    keep_clean: bool,
    gather: bool = False,
) -> ChunkResult:
    """Gather a chunk's blocks into pieces for the sink. ``gather``: a piece of every row in order
    may keep its text as the blocks' buffers (``Piece.parts``) for :func:`spill` or :func:`unspill` to
    copy one after the other into a slot or a reused buffer, instead of joining them into a new copy
    first (whose fresh pages cost more to fault in than the copy itself)."""
    offsets = np.cumsum([0] + [b.batch.num_rows for b in blocks])
    defects = [(int(offsets[i]) + r, c, k) for i, b in enumerate(blocks) for (r, c, k) in b.defects]
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for b in blocks:
        for agg_key, (s, c) in b.aggregates.items():
            old = aggregates.get(agg_key)
            aggregates[agg_key] = (s, c) if old is None else (old[0] + s, old[1] + c)
    pieces: list[Piece] = []
    if fmt == "csv":
        parts = [b.partition_keys for b in blocks if b.partition_keys is not None]
        keys = np.concatenate(parts) if parts else None
        ragged = np.asarray(sorted(r for r, _, k in defects if k is Defect.RAGGED_ROW), dtype=np.int64)
        total = int(offsets[-1])
        lines = [csv_lines(b.batch) for b in blocks]
        every = [x for x in lines if x is not None]  # the blocks' lines, when no block needs the writer
        table: pa.Table | None = None
        for key, rows in split_by_partition(keys, total):
            local = np.flatnonzero(np.isin(rows, ragged)) if len(ragged) else ragged
            if gather and len(local) == 0 and len(rows) == total and len(every) == len(lines):
                views, ends = _line_buffers(every)
                pieces.append(Piece(key=key, rows=rows, row_ends=ends, parts=views))
                continue
            if len(every) == len(lines):
                if len(rows) == total:  # every row, in order: the blocks' lines back to back
                    data, ends = _join_lines(every)
                else:
                    data, ends = _value_bytes(_concat_lines(lines).take(pa.array(rows)))
                data, ends = _make_ragged(data, ends, local)
            else:
                table = table or pa.Table.from_batches([b.batch for b in blocks])
                data, ends = encode_csv(table.take(pa.array(rows)), local, rng)
            pieces.append(Piece(key=key, rows=rows, csv=data, row_ends=ends))
    else:
        for i, b in enumerate(blocks):
            for key, rows in split_by_partition(b.partition_keys, b.batch.num_rows):
                sub = pa.Table.from_batches([b.batch]).take(pa.array(rows))
                pieces.append(Piece(key=key, rows=rows + offsets[i], table=sub))
    clean = None
    if keep_clean:
        clean = {col: pa.concat_arrays([b.clean[col] for b in blocks]) for col in blocks[0].clean}
    defects = [(r, RAGGED_COLUMN if k is Defect.RAGGED_ROW else c, k) for r, c, k in defects]
    return ChunkResult(name, index, int(offsets[-1]), pieces, defects, aggregates, clean)


# ------------------------------------------------------------------------------------------ hand-off
_spilled = itertools.count()


_MAPPINGS: dict[str, mmap.mmap] = {}


def _mapping(path: str, size: int) -> mmap.mmap:
    """This process's mapping of slot file ``path``, at least ``size`` bytes (kept for the next chunk;
    mapped again, larger, after the slot grew)."""
    mm = _MAPPINGS.get(path)
    if mm is None or len(mm) < size:
        with open(path, "r+b") as fh:
            mm = mmap.mmap(fh.fileno(), size)
        _MAPPINGS[path] = mm  # a smaller mapping is dropped, unmapped once no view holds it
    return mm


def forget_mappings(folder: str) -> None:
    """Drop this process's mappings of the slots under ``folder`` (the run is over)."""
    for path in [p for p in _MAPPINGS if os.path.dirname(p) == folder]:
        del _MAPPINGS[path]


def csv_bytes(result: ChunkResult) -> int:
    """Bytes of CSV text in ``result`` (0 for Parquet)."""
    return sum(int(p.row_ends[-1]) for p in result.pieces if p.row_ends is not None and len(p.row_ends))


def _piece_size(piece: Piece) -> int:
    if piece.parts is not None:
        return sum(p.size for p in piece.parts)
    return 0 if piece.csv is None else len(piece.csv)


def _lay_out(
    parts: list[pa.Buffer] | list[bytes | memoryview], target: mmap.mmap | memoryview, at: int
) -> int:
    """Copy ``parts`` one after the other into ``target`` from byte ``at``; the offset just past them."""
    for part in parts:
        view = memoryview(part).cast("B")
        target[at : at + view.nbytes] = view
        at += view.nbytes
    return at


def _to_slot(result: ChunkResult, slot: Slot) -> bool:
    """Copy the CSV text of every piece of ``result`` into ``slot``, one after the other; False (nothing
    moved) when it does not fit."""
    sizes = [_piece_size(p) for p in result.pieces]
    if not 0 < sum(sizes) <= slot.capacity:
        return False
    mm = _mapping(slot.path, slot.capacity)
    offset = 0
    for piece, size in zip(result.pieces, sizes, strict=True):
        if piece.parts is None and piece.csv is None:
            continue
        start = offset
        offset = _lay_out(piece.parts or [piece.csv], mm, offset)
        piece.csv, piece.parts, piece.slot = None, None, (slot.path, start, size)
    return True


def spill(result: ChunkResult, folder: str, slot: Slot | None = None) -> ChunkResult:
    """Move the CSV text of ``result`` into ``slot`` when it fits, else into files under ``folder`` (a
    RAM-backed temporary folder), so that a worker hands a chunk to the writing process as a place
    instead of pickling tens of megabytes through a pipe (which cost the writing process more CPU than
    hashing and writing them). A piece whose file cannot be written (e.g. the folder is full) keeps
    its bytes."""
    if slot is not None and _to_slot(result, slot):
        return result
    for piece in result.pieces:
        if piece.parts is not None and not _piece_size(piece):
            piece.csv, piece.parts = b"", None
        if piece.parts is None and (piece.csv is None or len(piece.csv) == 0):
            continue
        path = os.path.join(folder, f"{os.getpid()}-{next(_spilled)}.csv")
        try:
            with open(path, "xb") as fh:
                for part in piece.parts or [piece.csv]:
                    fh.write(part)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            if piece.parts is not None:
                piece.csv, piece.parts = b"".join(piece.parts), None
            continue
        piece.csv, piece.parts, piece.spill = None, None, path
    return result


def unspill(piece: Piece, buffers: list[bytearray], slot: int) -> None:
    """Make a piece that travelled in a :class:`Slot` or a file a ``csv`` again: a view of this process's
    mapping of the slot (no copy), or the file read back into ``buffers[slot]`` (grown when too small,
    kept for the next chunk) and the file removed. Reading into a buffer that is reused, then writing
    from it, costs half the CPU of writing from a fresh mapping of a file: the mapping's pages fault in
    one by one (or, populated up front, still cost twice as much); a slot's mapping is not fresh after
    its first chunk."""
    if piece.slot is not None:
        path, offset, size = piece.slot
        piece.csv, piece.slot = memoryview(_mapping(path, offset + size))[offset : offset + size], None
        return
    if piece.parts is not None:  # made in this process: laid end to end in a buffer that is reused
        view = _buffer(buffers, slot, _piece_size(piece))
        _lay_out(piece.parts, view, 0)
        piece.csv, piece.parts = view, None
        return
    if piece.spill is None:
        return
    with open(piece.spill, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        view = _buffer(buffers, slot, size)
        done = 0
        while done < size:
            got = fh.readinto(view[done:])
            if not got:
                view.release()
                raise OSError(f"{piece.spill}: chunk file ended at byte {done:,} of {size:,}")
            done += got
    os.unlink(piece.spill)
    piece.csv, piece.spill = view, None


def _buffer(buffers: list[bytearray], slot: int, size: int) -> memoryview:
    """A view of the first ``size`` bytes of ``buffers[slot]``, grown (an eighth more) when too small."""
    while len(buffers) <= slot:
        buffers.append(bytearray())
    if len(buffers[slot]) < size:
        buffers[slot] = bytearray(size + size // 8)
    return memoryview(buffers[slot])[:size]


def release(piece: Piece) -> None:
    """Let go of the buffer view :func:`unspill` made (or remove a spilled file never read)."""
    if piece.spill is not None:
        with contextlib.suppress(OSError):
            os.unlink(piece.spill)
        piece.spill = None
    piece.slot = None
    if isinstance(piece.csv, memoryview) and isinstance(piece.csv.obj, bytearray | mmap.mmap):
        piece.csv.release()
        piece.csv = None
