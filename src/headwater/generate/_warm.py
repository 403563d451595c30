"""Imported once by the fork server that starts the worker processes (``engine._pool``): what every
worker needs is loaded there, before the workers fork, so that each worker starts in milliseconds
instead of importing NumPy, PyArrow, pandas (which PyArrow imports on its first conversion from
NumPy), the schema models and the vocabularies itself.

Before PyArrow loads, its allocator (mimalloc) is allowed huge pages (2 MiB, where the kernel's
transparent huge pages are on, as ``madvise``): a new worker faults in the first tens of megabytes of
its working set a page at a time, and on virtual machines each 4 KiB fault can cost tens of
microseconds (1 GB of bench10 with 2 workers: 3.17-3.78 s with huge pages, 3.23-3.84 s without,
alternating). An explicit ``MIMALLOC_ALLOW_LARGE_OS_PAGES`` in the environment wins."""

from __future__ import annotations

import os

os.environ.setdefault("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1")

import numpy as np  # after the allocator option above
import pyarrow as pa

from headwater.generate import engine  # noqa: F401  (the worker's code)
from headwater.generate.columns import warm_caches

pa.array(np.zeros(1))
warm_caches()
