"""The ``headwater`` command line: one command group per area, each a thin layer over the core.

Exit codes (also in ``headwater --help``): 0 success, 1 unexpected error, 2 bad usage, schema or
configuration, 3 bad input data, 4 storage or integrity failure, 5 warehouse failure.
"""

from __future__ import annotations

from headwater.cli.app import app, main

__all__ = ["app", "main"]
