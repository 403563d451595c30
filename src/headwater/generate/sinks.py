"""Sinks write a table's pieces into files: one file per partition, split by rows or bytes, hashed
while written (no second pass), each file written as ``*.partial`` and renamed when complete."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.manifest import FileRecord

PARQUET_ROW_GROUP = 131_072
"""Rows per Parquet row group: fixed, so files are byte-identical whatever the chunk size."""
WRITEBACK_BYTES = 64 << 20
"""Start the disk writes of a file every this many bytes (see ``_HashingFile._start_writeback``)."""


@dataclass
class Segment:
    """Rows ``[first, last)`` of a piece went to ``path`` starting at data row ``file_row`` (1-based)."""

    first: int
    last: int
    path: str
    file_row: int


class _HashingFile:
    """A binary file that hashes what it writes (for Parquet, whose writer wants a file object).

    On Linux it writes with ``O_DIRECT`` from a reused, page-aligned buffer, in blocks of
    ``DIRECT_BLOCK``: the text goes from that buffer to the disk without passing through the page
    cache. Buffered writes of freshly generated gigabytes cost the writing process 1-2.6 CPU
    seconds per GB here (the kernel allocates, accounts and later writes back every page; see
    ``docs/generate.md``), direct writes about 0.1, and the generated files do not push the
    machine's cached data out. Where the file system refuses direct I/O (tmpfs, some network and
    FUSE file systems), the same file is written through the page cache as before."""

    def __init__(self, path: Path) -> None:
        self.hasher = hashlib.sha256()
        self.bytes = 0
        self.closed = False
        self._synced = 0
        self._buffer: mmap.mmap | None = None
        self._fill = 0
        direct = _open_direct(path)
        if direct is not None:
            self._fd = direct
            self._buffer = _DIRECT_BUFFERS.pop() if _DIRECT_BUFFERS else mmap.mmap(-1, DIRECT_BLOCK)
            self._view = memoryview(self._buffer)
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hasher.update(view)
        self.bytes += view.nbytes
        if self._buffer is None:
            _write_all(self._fd, view)
            if self.bytes - self._synced >= WRITEBACK_BYTES:
                self._start_writeback()
            return view.nbytes
        done = 0
        while done < view.nbytes:
            take = min(DIRECT_BLOCK - self._fill, view.nbytes - done)
            self._view[self._fill : self._fill + take] = view[done : done + take]
            self._fill += take
            done += take
            if self._fill == DIRECT_BLOCK:
                self._write_block()
        return view.nbytes

    def _write_block(self) -> None:
        try:
            _write_all(self._fd, self._view)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # the file system took O_DIRECT at open but refuses the write (which wrote nothing):
            # this file goes through the page cache from here on
            _buffered(self._fd)
            _write_all(self._fd, self._view)
        self._fill = 0

    def _start_writeback(self) -> None:
        """Ask the kernel to start writing what is written so far to disk (without waiting), so
        that the fsync at close finds little left to do instead of the whole file."""
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, self._synced, self.bytes - self._synced, os.POSIX_FADV_DONTNEED)
        self._synced = self.bytes

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        """Nothing to do: direct writes go out a whole block at a time, the rest at :meth:`close`."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._buffer is not None:
                if self._fill:  # the tail is not a whole block: write it through the page cache
                    _buffered(self._fd)
                    _write_all(self._fd, self._view[: self._fill])
                    self._fill = 0
                self._view.release()
                _DIRECT_BUFFERS.append(self._buffer)
                self._buffer = None
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


DIRECT_BLOCK = 4 << 20
"""Bytes per direct write: a multiple of every disk's block size, large enough to keep the disk busy."""
_DIRECT_BUFFERS: list[mmap.mmap] = []
"""Page-aligned buffers of closed files, reused by the next ones (their pages are already mapped)."""
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _open_direct(path: Path) -> int | None:
    """``path`` created for direct writes, or None where the platform or file system has no ``O_DIRECT``."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or os.environ.get("HEADWATER_DIRECT_IO", "1") == "0":
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC | flag, 0o666)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return None


def _buffered(fd: int) -> None:
    """Turn direct I/O off for ``fd`` (the next writes go through the page cache)."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < view.nbytes:
        done += os.write(fd, view[done:])


@dataclass
class _OpenFile:
    path: str
    handle: _HashingFile
    rows: int = 0
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0


class TableSink:
    """Writes one table's files under ``out``; ``records`` lists them once closed."""

    def __init__(
        self,
        out: Path,
        table: str,
        fmt: str,
        schema: pa.Schema,
        layout: str | None,
        header: bytes = b"",
        file_rows: int | None = None,
        file_bytes: int | None = None,
    ) -> None:
        self.out, self.table, self.fmt, self.schema = out, table, fmt, schema
        self.layout, self.header = layout, header
        self.file_rows, self.file_bytes = file_rows, file_bytes
        self.split = file_rows is not None or file_bytes is not None
        self.records: list[FileRecord] = []
        self.bytes_written = 0
        self._open: dict[int | None, _OpenFile] = {}
        self._parts: dict[int | None, int] = {}

    # ------------------------------------------------------------------ naming
    def path_for(self, key: int | None) -> str:
        ext = self.fmt
        if key is None or self.layout is None:
            rel = f"{self.table}.{ext}"
        else:
            y, mth, d = key // 10000, key // 100 % 100, key % 100
            rel = self.layout.format(
                yyyy=f"{y:04d}", mm=f"{mth:02d}", dd=f"{d:02d}", table=self.table, ext=ext
            )
        if self.split:
            part = self._parts.get(key, 0)
            stem, dot, suffix = rel.rpartition(".")
            rel = f"{stem}-{part:05d}{dot}{suffix}" if dot else f"{rel}-{part:05d}"
        return rel

    def is_open(self, key: int | None) -> bool:
        return key in self._open

    def _file(self, key: int | None) -> _OpenFile:
        f = self._open.get(key)
        if f is None:
            rel = self.path_for(key)
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            f = _OpenFile(rel, _HashingFile(target.with_name(target.name + ".partial")))
            if self.fmt == "csv":
                f.handle.write(self.header)
                self.bytes_written += len(self.header)
            else:
                f.writer = pq.ParquetWriter(f.handle, self.schema, compression="zstd")
            self._open[key] = f
        return f

    def _close(self, key: int | None) -> None:
        f = self._open.pop(key)
        if f.writer is not None:
            self._flush_parquet(f, final=True)
            f.writer.close()
        f.handle.close()
        final = self.out / f.path
        os.replace(final.with_name(final.name + ".partial"), final)
        self.records.append(
            FileRecord(f.path, f.handle.bytes, f.handle.hasher.hexdigest(), f.rows, self.table)
        )
        self._parts[key] = self._parts.get(key, 0) + 1

    # ------------------------------------------------------------------ csv
    def write_csv(
        self, key: int | None, data: bytes | memoryview, row_ends: np.ndarray, take: int | None = None
    ) -> list[Segment]:
        """Write the first ``take`` rows (all by default) of an encoded piece; return where they went."""
        total = len(row_ends) if take is None else take
        segments: list[Segment] = []
        done = 0
        view = memoryview(data)
        while done < total:
            f = self._file(key)
            room = total - done
            if self.file_rows is not None:
                room = min(room, self.file_rows - f.rows)
            if self.file_bytes is not None:
                base = int(row_ends[done - 1]) if done else 0
                fit = int(
                    np.searchsorted(
                        row_ends[done:total] - base, self.file_bytes - f.handle.bytes, side="right"
                    )
                )
                room = min(room, fit)
            if room <= 0:
                if f.rows == 0:
                    room = 1  # a single row larger than the limit still has to go somewhere
                else:
                    self._close(key)
                    continue
            begin = int(row_ends[done - 1]) if done else 0
            end = int(row_ends[done + room - 1])
            f.handle.write(view[begin:end])
            segments.append(Segment(done, done + room, f.path, f.rows + 1))
            f.rows += room
            self.bytes_written += end - begin
            done += room
            if self.file_rows is not None and f.rows >= self.file_rows:
                self._close(key)
        return segments

    # ------------------------------------------------------------------ parquet
    def write_table(self, key: int | None, table: pa.Table) -> list[Segment]:
        segments: list[Segment] = []
        done = 0
        while done < table.num_rows:
            f = self._file(key)
            room = table.num_rows - done
            if self.file_rows is not None:
                room = min(room, self.file_rows - f.rows)
            part = table.slice(done, room)
            f.pending.append(part)
            f.pending_rows += room
            segments.append(Segment(done, done + room, f.path, f.rows + 1))
            f.rows += room
            done += room
            self._flush_parquet(f, final=False)
            if self.file_rows is not None and f.rows >= self.file_rows:
                self._close(key)
        return segments

    def _flush_parquet(self, f: _OpenFile, final: bool) -> None:
        assert f.writer is not None
        while f.pending_rows >= PARQUET_ROW_GROUP or (final and f.pending_rows):
            merged = pa.concat_tables(f.pending)
            size = min(PARQUET_ROW_GROUP, merged.num_rows)
            before = f.handle.bytes
            f.writer.write_table(merged.slice(0, size), row_group_size=size)
            self.bytes_written += f.handle.bytes - before
            rest = merged.slice(size)
            f.pending = [rest] if rest.num_rows else []
            f.pending_rows = rest.num_rows

    def close(self) -> list[FileRecord]:
        for key in sorted(self._open, key=lambda k: -1 if k is None else k):
            self._close(key)
        return self.records

    def abort(self) -> None:
        """Remove the partial files of an interrupted run."""
        for f in self._open.values():
            f.handle.close()
            final = self.out / f.path
            final.with_name(final.name + ".partial").unlink(missing_ok=True)
        self._open.clear()
