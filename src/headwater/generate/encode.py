"""Turn generated blocks into the pieces a sink writes: rows split by partition, CSV-encoded
(with row end offsets, so sinks can split files and stop at a size without re-parsing) or kept
as Arrow for Parquet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from headwater.errors import SchemaError
from headwater.generate.block import RAGGED_COLUMN, Block, Defect

_NEWLINE = 10
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False)


@dataclass
class Piece:
    """One partition's share of a chunk (CSV) or of a block (Parquet), rows in generation order."""

    key: int | None
    rows: np.ndarray
    csv: bytes | None = None
    row_ends: np.ndarray | None = None
    table: pa.Table | None = None


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


def encode_csv(table: pa.Table, ragged: np.ndarray, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """CSV text of ``table`` (no header) and the byte offset just past each row's newline.
    Rows listed in ``ragged`` get one field too many or too few."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, _CSV_OPTIONS)
    data = sink.getvalue().to_pybytes()
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE) + 1
    if len(ends) != table.num_rows:
        raise SchemaError(
            f"generated values contain line breaks ({len(ends)} lines for {table.num_rows} rows); "
            "remove newlines from choice values and templates"
        )
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


def encode_chunk(
    name: str,
    index: int,
    blocks: list[Block],
    fmt: str,
    rng: np.random.Generator,
    keep_clean: bool,
) -> ChunkResult:
    """Gather a chunk's blocks into pieces for the sink."""
    offsets = np.cumsum([0] + [b.batch.num_rows for b in blocks])
    defects = [(int(offsets[i]) + r, c, k) for i, b in enumerate(blocks) for (r, c, k) in b.defects]
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for b in blocks:
        for agg_key, (s, c) in b.aggregates.items():
            old = aggregates.get(agg_key)
            aggregates[agg_key] = (s, c) if old is None else (old[0] + s, old[1] + c)
    pieces: list[Piece] = []
    if fmt == "csv":
        table = pa.Table.from_batches([b.batch for b in blocks])
        parts = [b.partition_keys for b in blocks if b.partition_keys is not None]
        keys = np.concatenate(parts) if parts else None
        ragged = np.asarray(sorted(r for r, _, k in defects if k is Defect.RAGGED_ROW), dtype=np.int64)
        for key, rows in split_by_partition(keys, table.num_rows):
            local = np.flatnonzero(np.isin(rows, ragged)) if len(ragged) else ragged
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
