"""Sinks write a table's pieces into files: one file per partition, split by rows or bytes, hashed
while written (no second pass), each file written as ``*.partial`` and renamed when complete."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.directio import DirectFile
from headwater.manifest import FileRecord

PARQUET_ROW_GROUP = 131_072
"""Rows per Parquet row group: fixed, so files are byte-identical whatever the chunk size."""


@dataclass
class Segment:
    """Rows ``[first, last)`` of a piece went to ``path`` starting at data row ``file_row`` (1-based)."""

    first: int
    last: int
    path: str
    file_row: int


class _HashingFile(DirectFile):
    """A new file that hashes (SHA-256) what it writes, written with direct I/O where possible."""

    hasher: Any

    def __init__(self, path: Path) -> None:
        super().__init__(path, hashlib.sha256())


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
