"""Arrow record batches as PostgreSQL binary COPY data, encoded column by column in NumPy.

The server then stores each value with a byte swap instead of parsing its text (float, timestamp and
integer parsing is most of the cost of a CSV COPY). Only columns whose binary form is exactly what
the CSV path would have produced are encoded; ``binary_plan`` returns None for any other batch
(DECIMAL, bounded VARCHAR, float32, nanosecond timestamps, a type override that needs a cast ...)
and the caller falls back to CSV. Binary COPY format: a signature, then per row an int16 field count
and per field an int32 length (-1 for NULL) and the value in network byte order, then an int16 -1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.warehouse.types import SqlType, TypeName

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_US_1970_TO_2000 = 946_684_800_000_000  # PostgreSQL counts timestamps from 2000-01-01
_DAYS_1970_TO_2000 = 10_957
_EMPTY = pa.scalar(b"", pa.large_binary())


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


def encode(batch: pa.RecordBatch, plan: Sequence[Encoder]) -> np.ndarray | None:
    """The rows of ``batch`` as binary COPY tuples (without signature and trailer); None when empty.

    Fixed-width parts of a row that follow each other (the field count, length words, non-NULL
    fixed-width values) are laid out side by side in one NumPy block per run; the variable parts (text,
    and values of columns with NULLs) stay Arrow binary arrays whose NULL rows contribute nothing.
    Arrow's ``binary_join_element_wise`` then concatenates the parts of every row in C++."""
    n = batch.num_rows
    if n == 0:
        return None
    parts: list[pa.Array] = []
    block: list[np.ndarray] = [
        np.frombuffer(np.array([batch.num_columns], ">i2").tobytes(), np.uint8)[None, :].repeat(n, 0)
    ]
    for enc, column in zip(plan, batch.columns, strict=True):
        f = enc(column)
        block.append(f.lengths.astype(">i4").view(np.uint8).reshape(n, 4))
        if f.fixed is not None and bool((f.lengths >= 0).all()):
            block.append(f.fixed)
            continue
        if f.fixed is None and f.data is None:
            continue  # all NULL
        parts.append(_fixed_block(block, n))
        block = []
        if f.fixed is not None:
            width = f.fixed.shape[1]
            validity = pa.py_buffer(np.packbits(f.lengths >= 0, bitorder="little"))
            values = np.ascontiguousarray(f.fixed)
            parts.append(
                pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(width), n, [validity, pa.py_buffer(values)]
                ).cast(pa.large_binary())
            )
        else:
            assert f.offsets is not None
            assert f.data is not None
            valid = pa.py_buffer(np.packbits(f.lengths >= 0, bitorder="little"))
            parts.append(
                pa.LargeBinaryArray.from_buffers(
                    pa.large_binary(), n, [valid, pa.py_buffer(f.offsets), pa.py_buffer(f.data)]
                )
            )
    if block:
        if not parts:
            return np.ascontiguousarray(np.concatenate(block, axis=1)).reshape(-1)
        parts.append(_fixed_block(block, n))
    joined = pc.binary_join_element_wise(*parts, _EMPTY, null_handling="skip")
    offsets = np.frombuffer(joined.buffers()[1], np.int64)
    return np.frombuffer(joined.buffers()[2], np.uint8)[offsets[joined.offset] : offsets[joined.offset + n]]


def _fixed_block(columns: list[np.ndarray], n: int) -> pa.Array:
    """Byte columns side by side, as a binary array of one row each."""
    raw = np.ascontiguousarray(np.concatenate(columns, axis=1))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(raw.shape[1]), n, [None, pa.py_buffer(raw)]).cast(
        pa.large_binary()
    )
