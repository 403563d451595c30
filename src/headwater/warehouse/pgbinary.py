"""Arrow record batches as PostgreSQL binary COPY data, encoded column by column in NumPy.

The server then stores each value with a byte swap instead of parsing its text (float, timestamp and
integer parsing is most of the cost of a CSV COPY). Only columns whose binary form is exactly what
the CSV path would have produced are encoded; ``binary_plan`` returns None for any other batch
(DECIMAL, bounded VARCHAR, float32, nanosecond timestamps, a type override that needs a cast ...)
and the caller falls back to CSV. Binary COPY format: a signature, then per row an int16 field count
and per field an int32 length (-1 for NULL) and the value in network byte order, then an int16 -1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from headwater.warehouse.types import SqlType, TypeName

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_US_1970_TO_2000 = 946_684_800_000_000  # PostgreSQL counts timestamps from 2000-01-01
_DAYS_1970_TO_2000 = 10_957
_MAX_TEXT_BYTES = 8 << 20  # text bytes per encoded slice: bounds the index arrays the scatter needs
_LEN4 = np.arange(4)


@dataclass(frozen=True)
class _Field:
    lengths: np.ndarray  # int32 per row: bytes of the value, -1 for NULL
    fixed: np.ndarray | None = None  # (rows, width) uint8: fixed-width values, big-endian
    offsets: np.ndarray | None = None  # text: start of each row's bytes in ``data`` (rows + 1)
    data: np.ndarray | None = None  # text: the UTF-8 bytes


Encoder = Callable[[pa.Array], _Field]


def _lengths(array: pa.Array, width: int) -> np.ndarray:
    if array.null_count == 0:
        return np.full(len(array), width, np.int32)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, np.int32(width), np.int32(-1))


def _fixed(
    target: pa.DataType, big_endian: str, shift: int = 0, storage: pa.DataType | None = None
) -> Encoder:
    """``target``: the Arrow type whose values PostgreSQL expects (``storage``: its integer form)."""

    def encode(array: pa.Array) -> _Field:
        cast = array.cast(target)
        if storage is not None:
            cast = cast.cast(storage)
        values = cast.fill_null(0).to_numpy(zero_copy_only=False)
        if shift:
            values = values - shift
        raw = values.astype(big_endian).view(np.uint8).reshape(len(array), -1)
        return _Field(_lengths(array, raw.shape[1]), fixed=raw)

    return encode


def _boolean(array: pa.Array) -> _Field:
    raw = array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).reshape(-1, 1)
    return _Field(_lengths(array, 1), fixed=raw)


def _text(array: pa.Array) -> _Field:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    n = len(array)
    _, offsets_buf, data_buf = array.buffers()
    offsets = (
        np.frombuffer(offsets_buf, np.int64)[array.offset : array.offset + n + 1]
        if n
        else np.zeros(1, np.int64)
    )
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets).astype(np.int32)
    if array.null_count:
        lengths[~array.is_valid().to_numpy(zero_copy_only=False)] = -1
    return _Field(lengths, offsets=offsets, data=data)


def _nulls(array: pa.Array) -> _Field:
    return _Field(np.full(len(array), -1, np.int32))


def _encoder(arrow: pa.DataType, sql: SqlType) -> Encoder | None:
    """How to encode an Arrow column into a staging column of type ``sql``; None when binary could
    differ from what PostgreSQL makes of the CSV text (then the whole copy goes as CSV)."""
    t, name = pa.types, sql.name
    if t.is_null(arrow):
        return _nulls
    if t.is_dictionary(arrow):
        return (
            _text
            if name is TypeName.VARCHAR and sql.length is None and t.is_string(arrow.value_type)
            else None
        )
    if name is TypeName.BOOLEAN and t.is_boolean(arrow):
        return _boolean
    if name is TypeName.INTEGER and arrow in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()):
        return _fixed(pa.int32(), ">i4")
    if name is TypeName.BIGINT and t.is_integer(arrow) and not t.is_uint64(arrow):
        return _fixed(pa.int64(), ">i8")
    if name is TypeName.DOUBLE and t.is_float64(arrow):
        return _fixed(pa.float64(), ">f8")
    if name is TypeName.DATE and t.is_date32(arrow):
        return _fixed(pa.date32(), ">i4", _DAYS_1970_TO_2000, pa.int32())
    if t.is_timestamp(arrow) and arrow.unit != "ns":
        aware = arrow.tz is not None
        if (name is TypeName.TIMESTAMPTZ and aware) or (name is TypeName.TIMESTAMP and not aware):
            return _fixed(pa.timestamp("us", arrow.tz), ">i8", _US_1970_TO_2000, pa.int64())
        return None
    if name is TypeName.VARCHAR and sql.length is None and (t.is_string(arrow) or t.is_large_string(arrow)):
        return _text
    return None


def binary_plan(schema: pa.Schema, types: Sequence[SqlType]) -> list[Encoder] | None:
    """One encoder per column of ``schema`` (loaded into columns of ``types``), or None."""
    encoders = [_encoder(f.type, sql) for f, sql in zip(schema, types, strict=True)]
    return None if any(e is None for e in encoders) else [e for e in encoders if e is not None]


def encode(batch: pa.RecordBatch, plan: Sequence[Encoder]) -> Iterator[np.ndarray]:
    """The rows of ``batch`` as binary COPY tuples (without signature and trailer), in slices that
    keep the text bytes of each under ``_MAX_TEXT_BYTES``."""
    n = batch.num_rows
    if n == 0:
        return
    fields = [enc(col) for enc, col in zip(plan, batch.columns, strict=True)]
    text = sum(int(np.maximum(f.lengths, 0).sum()) for f in fields if f.data is not None)
    slices = max(1, -(-text // _MAX_TEXT_BYTES))
    bounds = np.linspace(0, n, slices + 1).astype(np.int64)
    for lo, hi in itertools.pairwise(bounds.tolist()):
        if hi > lo:
            yield _encode_rows(fields, lo, hi)


def _encode_rows(fields: list[_Field], lo: int, hi: int) -> np.ndarray:
    n = hi - lo
    sizes = [4 + np.maximum(f.lengths[lo:hi], 0).astype(np.int64) for f in fields]
    row_size = 2 + np.sum(sizes, axis=0) if sizes else np.full(n, 2, np.int64)
    ends = np.cumsum(row_size)
    starts = ends - row_size
    out = np.empty(int(ends[-1]), np.uint8)
    count = np.array([len(fields)], ">i2").view(np.uint8)
    out[starts], out[starts + 1] = count[0], count[1]
    pos = starts + 2
    for f, size in zip(fields, sizes, strict=True):
        lengths = f.lengths[lo:hi]
        out[pos[:, None] + _LEN4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        value_at = pos + 4
        if f.fixed is not None:
            raw = f.fixed[lo:hi]
            width = np.arange(raw.shape[1])
            valid = lengths >= 0
            if valid.all():
                out[value_at[:, None] + width] = raw
            else:
                out[value_at[valid][:, None] + width] = raw[valid]
        elif f.offsets is not None and f.data is not None:
            counts = np.maximum(lengths, 0).astype(np.int64)
            total = int(counts.sum())
            if total:
                within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                src = np.repeat(f.offsets[lo:hi], counts) + within
                out[np.repeat(value_at, counts) + within] = f.data[src]
        pos = pos + size
    return out
