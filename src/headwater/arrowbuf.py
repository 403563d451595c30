"""NumPy views of Arrow buffers, without pandas.

``pyarrow.Array.to_numpy`` and ``pa.array`` on Python values import pandas (about 0.2 s the first time),
which a gate or an analysis that needs nothing else of pandas should not pay.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def as_int64(arr: pa.Array) -> np.ndarray:
    """A null-free integer, timestamp or date array's values as int64 (temporal types as their raw
    ticks), viewed from its buffer (copied only to widen narrower integers)."""
    width = arr.type.bit_width // 8
    values = np.frombuffer(
        arr.buffers()[1], dtype=np.dtype(f"<i{width}"), count=len(arr), offset=arr.offset * width
    )
    return values.astype(np.int64, copy=False)


def int64_values(column: pa.ChunkedArray) -> np.ndarray:
    """The non-NULL values of an integer or temporal column as one int64 array: a view of the column's
    buffer when it has one chunk and no NULLs, else a new array."""
    parts = [as_int64(c.drop_null() if c.null_count else c) for c in column.chunks if len(c)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
