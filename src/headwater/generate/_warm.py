"""Imported once by the fork server that starts the worker processes (``engine._pool``): what every
worker needs is loaded there, before the workers fork, so that each worker starts in milliseconds
instead of importing NumPy, PyArrow, pandas (which PyArrow imports on its first conversion from
NumPy), the schema models and the vocabularies itself."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from headwater.generate import engine  # noqa: F401  (the worker's code)
from headwater.generate.columns import warm_caches

pa.array(np.zeros(1))
warm_caches()
