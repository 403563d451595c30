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
