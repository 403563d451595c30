"""Events per day, user and company: counted while the parse pass writes a month, kept beside it.

The pass has every row in memory once, typed; counting them there costs 0.17-0.19 CPU-s on a 2 GB
month (29 M rows, in the parse threads), where reading the month back for a report took 0.39-0.56 s
(its file was written past the page cache). So the pass keeps a :class:`Tally` of the rows it writes
and, when the month is published as written, the counts go beside it as ``_events.counts.npz``: sparse
(id, events) pairs, 110 kB for that month.

The sidecar is a cache and only that. It names the Parquet file it counts by a SHA-256 of the file's
size and footer (row groups, offsets, sizes and statistics): a month rewritten by anything else, the
exact path of the pipeline included, no longer matches, and its counts are read from the file again.
A sidecar that is missing, unreadable or does not match is ignored; deleting one is always safe. The
``_`` prefix keeps it out of Spark's and Hadoop's view of the folder and out of ``*.parquet`` globs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from headwater.arrowbuf import int64_values
from headwater.manifest import write_atomic

IDS = ("user_id", "company_id")
TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
TALLY_MAX_ID = 1 << 20
"""Ids the pass counts are below this: each parsed range counts its ids in an array as long as its
largest id (8 MB at most). A month with larger or negative ids, or NULLs, gets no sidecar; its report
counts the file instead."""
INT64_MIN = -(1 << 63)
FORMAT = 1


@dataclass
class Counts:
    """Events per day (days since 1970-01-01), per user_id and per company_id."""

    days: dict[int, int]
    user_id: np.ndarray  # index = id, value = events
    company_id: np.ndarray
    dtypes: dict[str, np.dtype[Any]]  # the id columns' own types, as DuckDB returns them

    @property
    def total(self) -> int:
        return sum(self.days.values())

    def merged(self, other: Counts) -> Counts | None:
        """Both counts together, or None when the id columns have different types (DuckDB reconciles
        those)."""
        if self.dtypes != other.dtypes:
            return None
        days = dict(self.days)
        add_days(days, other.days)
        ids = {name: add_counts(getattr(self, name), getattr(other, name)) for name in IDS}
        return Counts(days, ids["user_id"], ids["company_id"], self.dtypes)


def add_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two arrays of counts by id added (the shorter one padded with zeros); may reuse ``a`` or ``b``."""
    if len(a) < len(b):
        a, b = b, a
    a = a.copy() if not a.flags.writeable else a
    a[: len(b)] += b
    return a


def add_days(days: dict[int, int], more: dict[int, int]) -> None:
    """Add the events per day in ``more`` to ``days``."""
    for day, n in more.items():
        days[day] = days.get(day, 0) + n


def count_days(ticks: np.ndarray, unit: str) -> dict[int, int]:
    """Events per day of naive timestamps given as int64 ticks of ``unit``."""
    if ticks.size == 0:
        return {}
    per_day = TICKS_PER_DAY[unit]
    first, last = int(ticks.min()) // per_day, int(ticks.max()) // per_day
    if last - first > 1 << 16 or first * per_day < INT64_MIN:  # centuries apart: sort, not a dense count
        found, n = np.unique(ticks // per_day, return_counts=True)
        return dict(zip(found.tolist(), n.tolist(), strict=True))
    days = ticks - np.int64(first * per_day)  # a month spans a few dozen days
    np.floor_divide(days, per_day, out=days)
    n = np.bincount(days)
    present = np.flatnonzero(n)
    return dict(zip((present + first).tolist(), n[present].tolist(), strict=True))


class Tally:
    """The counts of the tables given to :meth:`add` (``event_time`` naive, ids integers), or none from
    the first table it cannot count (a NULL, an id out of ``[0, TALLY_MAX_ID)``). The parse threads
    each count the ranges they parse (:meth:`of`); the writing thread adds them up (:meth:`absorb`)."""

    def __init__(self) -> None:
        self.days: dict[int, int] = {}
        self.ids = {name: np.zeros(0, np.int64) for name in IDS}
        self.countable = True

    @classmethod
    def of(cls, table: pa.Table) -> Tally:
        tally = cls()
        tally.add(table)
        return tally

    def add(self, table: pa.Table) -> None:
        if not self.countable or table.num_rows == 0:
            return
        times = table.column("event_time")
        columns = [times, *(table.column(name) for name in IDS)]
        typed = pa.types.is_timestamp(times.type) and not times.type.tz
        typed = typed and all(pa.types.is_integer(table.schema.field(name).type) for name in IDS)
        if not typed or any(c.null_count for c in columns):
            self.countable = False
            return
        counted: dict[str, np.ndarray] = {}
        for name in IDS:
            ids = int64_values(table.column(name))
            if int(ids.min()) < 0 or int(ids.max()) >= TALLY_MAX_ID:
                self.countable = False
                return
            counted[name] = np.bincount(ids)
        for name, by_id in counted.items():
            self.ids[name] = add_counts(self.ids[name], by_id)
        add_days(self.days, count_days(int64_values(times), times.type.unit))

    def absorb(self, other: Tally) -> None:
        """Add ``other``'s counts to these."""
        if not (self.countable and other.countable):
            self.countable = False
            return
        for name in IDS:
            self.ids[name] = add_counts(self.ids[name], other.ids[name])
        add_days(self.days, other.days)

    def counts(self, dtypes: dict[str, np.dtype[Any]]) -> Counts | None:
        if not self.countable:
            return None
        return Counts(dict(self.days), self.ids["user_id"], self.ids["company_id"], dtypes)


def sidecar_path(parquet: Path) -> Path:
    """Where the counts of ``parquet`` are kept: ``_<stem>.counts.npz`` in the same folder."""
    return parquet.with_name(f"_{parquet.stem}.counts.npz")


def footer_digest(parquet: Path) -> str:
    """SHA-256 of the file's size and its Parquet footer; empty when the file has no valid footer."""
    with open(parquet, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 12:
            return ""
        fh.seek(size - 8)
        tail = fh.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > size - 12:
            return ""
        fh.seek(size - 8 - length)
        footer = fh.read(length)
    return hashlib.sha256(size.to_bytes(8, "little") + footer).hexdigest()


def save(counts: Counts, parquet: Path) -> Path:
    """Write the counts of the published file ``parquet`` beside it (atomically)."""
    arrays: dict[str, Any] = {  # (typed Any: numpy's stub reads **kwargs as its own options)
        "format": np.array(FORMAT),
        "digest": np.array(footer_digest(parquet)),
        "days": np.array(sorted(counts.days), np.int64),
    }
    arrays["day_events"] = np.array([counts.days[d] for d in arrays["days"].tolist()], np.int64)
    for name in IDS:
        by_id = getattr(counts, name)
        present = np.flatnonzero(by_id)
        arrays[f"{name}_gaps"] = np.diff(present, prepend=0).astype(np.int64)  # small numbers: deflate well
        arrays[f"{name}_events"] = by_id[present].astype(np.int64)
        arrays[f"{name}_dtype"] = np.array(counts.dtypes[name].str)
    # an .npz (NumPy's zip of .npy files) deflated at level 1: 4.5 ms and 103 kB for 40 k users, where
    # np.savez_compressed (level 6) took 28-51 ms for 84-159 kB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    # renamed into place, not synced: after a crash the sidecar is old, torn or gone, and every one of
    # those is ignored (old: its digest names another footer); readable by whoever reads the month
    path = sidecar_path(parquet)
    write_atomic(path, buf.getvalue(), durable=False, mode=stat.S_IMODE(os.stat(parquet).st_mode))
    return path


def load(parquet: Path) -> Counts | None:
    """The counts kept beside ``parquet``, or None when there are none that match the file as it is."""
    path = sidecar_path(parquet)
    try:
        with np.load(path, allow_pickle=False) as kept:
            arrays = {name: kept[name] for name in kept.files}
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error):
        return None  # unreadable: a cache, so count the file instead
    try:
        if int(arrays["format"]) != FORMAT or str(arrays["digest"]) != footer_digest(parquet):
            return None
        days = dict(zip(arrays["days"].tolist(), arrays["day_events"].tolist(), strict=True))
        ids, dtypes = {}, {}
        for name in IDS:
            gaps, events = arrays[f"{name}_gaps"], arrays[f"{name}_events"]
            if gaps.size and (gaps[0] < 0 or (gaps[1:] <= 0).any()):
                return None
            present = np.cumsum(gaps)
            dense = np.zeros(int(present.max()) + 1 if present.size else 0, np.int64)
            dense[present] = events
            ids[name], dtypes[name] = dense, np.dtype(str(arrays[f"{name}_dtype"]))
    except (KeyError, ValueError, TypeError, IndexError):
        return None
    counts = Counts(days, ids["user_id"], ids["company_id"], dtypes)
    total = counts.total
    if any(int(ids[name].sum()) != total for name in IDS):
        return None
    return counts


def remove(parquet: Path) -> None:
    """Drop the counts kept beside ``parquet`` (before the file is replaced by one they do not count)."""
    with contextlib.suppress(FileNotFoundError):
        sidecar_path(parquet).unlink()
