"""Row groups of Parquet files read column by column from a pool of threads.

A ``pyarrow.parquet.ParquetFile`` is not safe to share between threads, so each thread reads through its
own file objects (opening one parses the footer again, a fraction of a millisecond); the footers read
once up front serve the planning. Local files are read without pre-buffering: one copy fewer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class RowGroups:
    """The row groups of ``files``: footers read once, one column of one row group on demand."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = tuple(files)
        self.readers = tuple(pq.ParquetFile(f, pre_buffer=False) for f in self.files)
        self._local = threading.local()

    @property
    def rows(self) -> int:
        return sum(r.metadata.num_rows for r in self.readers)

    def parts(self) -> list[tuple[int, int]]:
        """Every (file, row group)."""
        return [(f, g) for f, r in enumerate(self.readers) for g in range(r.metadata.num_row_groups)]

    def leaf(self, column: str, file: int) -> int | None:
        """The index of ``column`` among the Parquet leaf columns of one file (None when not one leaf)."""
        schema = self.readers[file].schema
        leaves = [schema.column(i).path for i in range(len(schema))]
        return leaves.index(column) if leaves.count(column) == 1 else None

    def chunk(self, column: str, file: int, group: int) -> Any | None:
        """The ``ColumnChunkMetaData`` of ``column`` in one row group (None when not one leaf)."""
        index = self.leaf(column, file)
        return None if index is None else self.readers[file].metadata.row_group(group).column(index)

    def read(
        self, column: str, file: int, group: int, *, dictionary: bool = False, first_row: bool = False
    ) -> pa.Array | None:
        """One row group of one column (a DictionaryArray when asked), read on the calling thread; with
        ``first_row`` only its first row, whose dictionary is the row group's whole dictionary page.
        None for a row group without rows."""
        cache: dict[tuple[int, bool, str], pq.ParquetFile] = self._local.__dict__.setdefault("files", {})
        key = (file, dictionary, column if dictionary else "")
        reader = cache.get(key)
        if reader is None:
            reader = cache[key] = pq.ParquetFile(
                self.files[file], read_dictionary=[column] if dictionary else None, pre_buffer=False
            )
        if first_row:
            batches = reader.iter_batches(
                batch_size=1, row_groups=[group], columns=[column], use_threads=False
            )
            batch = next(batches, None)
            return None if batch is None else batch.column(0)
        arr = reader.read_row_group(group, columns=[column], use_threads=False).column(0)
        if len(arr) == 0:
            return None
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
