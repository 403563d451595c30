"""Data quality: checks compiled to SQL, gates that hold bad batches back, quarantine, profiling.

The public API, re-exported from small modules. See docs/quality.md.
"""

from __future__ import annotations

from headwater.quality.quarantine import (
    EntryState,
    QuarantineEntry,
    QuarantineStore,
    ReleasedBatch,
    Resolution,
    drop_quarantine,
    list_quarantine,
    mark_release_done,
    quarantine_rows,
    read_released,
    release_quarantine,
    released_batches,
    show_quarantine,
    strip_internal,
)

__all__ = [
    "EntryState",
    "QuarantineEntry",
    "QuarantineStore",
    "ReleasedBatch",
    "Resolution",
    "drop_quarantine",
    "list_quarantine",
    "mark_release_done",
    "quarantine_rows",
    "read_released",
    "release_quarantine",
    "released_batches",
    "show_quarantine",
    "strip_internal",
]
