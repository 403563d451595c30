"""Write-only files that bypass the page cache (``O_DIRECT``) where the file system allows it.

Bulk output that nobody reads back at once (generated data, a month's parsed Parquet) costs the
writing process 1-2.6 CPU seconds per GB when it goes through the page cache on these machines: the
kernel allocates, accounts and later writes back every 4 KiB page, and on virtual machines fresh pages
are dear. :class:`DirectFile` copies what it is given into a reused, page-aligned buffer and writes it
to the disk a ``DIRECT_BLOCK`` at a time, about 0.1 CPU-s per GB, without pushing the machine's cached
data out. Only local disk file systems get it (``LOCAL_FILE_SYSTEMS``, looked up in the mount table):
on NFS or CIFS each direct write would wait for the server, FUSE file systems often refuse it. Where
the file system refuses direct I/O anyway (at open, or at the first write) the same file is written
through the page cache; ``HEADWATER_DIRECT_IO=0`` asks for that everywhere.

A direct write returns only once the disk has the block, so full blocks are written by a background
thread while the caller fills the next one (two buffers per file): the events pass's writing thread,
its critical path, waited 0.5 s per 2 GB month on its 150 direct writes before.

It is a file object for writers that want one (``pyarrow.parquet.ParquetWriter``), optionally hashing
what it writes, and durable at :meth:`DirectFile.close` (every block written, the tail, then ``fsync``);
an error of a background write is raised by the next :meth:`DirectFile.write` that needs its buffer, or
by :meth:`DirectFile.close`."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

DIRECT_BLOCK = 4 << 20
"""Bytes per direct write: a multiple of every disk's block size, large enough to keep the disk busy."""
HASH_STEP = 256 << 10
"""Bytes copied into the block, then hashed from it, at a time. Hashing what the caller passed (memory
another process wrote: not in this CPU's cache), then copying it, read it twice from memory: SHA-256
ran at ~1.15 GB/s here, against ~1.8 GB/s from the cache; 512 MB copied and hashed took 0.48 CPU-s,
in 256 KiB steps 0.35."""
WRITEBACK_BYTES = 64 << 20
"""Buffered fallback: start the disk writes of a file every this many bytes (see ``_start_writeback``)."""
_DIRECT_BUFFERS: list[mmap.mmap] = []
"""Page-aligned buffers of closed files, reused by the next ones (their pages are already mapped)."""
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_WRITES: ThreadPoolExecutor | None = None
"""The thread that writes full blocks, for every direct file of the process (in order, one at a time:
the disk takes them one at a time anyway)."""
_WRITES_LOCK = threading.Lock()


def _writes() -> ThreadPoolExecutor:
    global _WRITES
    with _WRITES_LOCK:
        if _WRITES is None:
            _WRITES = ThreadPoolExecutor(1, thread_name_prefix="hw-direct-write")
        return _WRITES


def _forget_writes_thread() -> None:
    """In a forked child: the parent's writing thread does not exist there; start a new one if needed."""
    global _WRITES, _WRITES_LOCK
    _WRITES, _WRITES_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_writes_thread)


def _take_buffer() -> mmap.mmap:
    return _DIRECT_BUFFERS.pop() if _DIRECT_BUFFERS else mmap.mmap(-1, DIRECT_BLOCK)


class Hasher(Protocol):
    def update(self, data: Any, /) -> None: ...


class DirectFile:
    """A new binary file at ``path`` written with direct I/O where possible; ``hasher`` (e.g.
    ``hashlib.sha256()``) sees every byte written. ``bytes`` counts them."""

    def __init__(self, path: Path, hasher: Hasher | None = None) -> None:
        self.hasher = hasher
        self.bytes = 0
        self.closed = False
        self._synced = 0
        self._buffer: mmap.mmap | None = None
        self._fill = 0
        self._in_flight: tuple[Future[None], mmap.mmap] | None = None  # a full block being written
        direct = _open_direct(path)
        if direct is not None:
            self._fd = direct
            self._buffer = _take_buffer()
            self._view = memoryview(self._buffer)
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)

    @property
    def direct(self) -> bool:
        """Whether the file is still written with direct I/O."""
        return self._buffer is not None and bool(fcntl.fcntl(self._fd, fcntl.F_GETFL) & os.O_DIRECT)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.bytes += view.nbytes
        if self._buffer is None:
            if self.hasher is not None:
                self.hasher.update(view)
            _write_all(self._fd, view)
            if self.bytes - self._synced >= WRITEBACK_BYTES:
                self._start_writeback()
            return view.nbytes
        # copy a cache-sized step into the block, then hash the step from there while it is still in
        # the CPU's cache: one read of the caller's memory instead of two
        step = HASH_STEP if self.hasher is not None else DIRECT_BLOCK
        done = 0
        while done < view.nbytes:
            take = min(DIRECT_BLOCK - self._fill, view.nbytes - done, step)
            end = self._fill + take
            self._view[self._fill : end] = view[done : done + take]
            if self.hasher is not None:
                self.hasher.update(self._view[self._fill : end])
            self._fill = end
            done += take
            if self._fill == DIRECT_BLOCK:
                self._write_block()
        return view.nbytes

    def _write_block(self) -> None:
        """Hand the full block to the writing thread and go on in the other buffer (once the block
        before this one is written)."""
        free = self._wait()  # first: a failed write raises before anything here changes
        assert self._buffer is not None
        full = self._buffer
        self._view.release()
        self._in_flight = (_writes().submit(self._write_direct, full), full)
        self._buffer = free if free is not None else _take_buffer()
        self._view = memoryview(self._buffer)
        self._fill = 0

    def _write_direct(self, block: mmap.mmap) -> None:
        """Write one full block (in the writing thread)."""
        view = memoryview(block)
        try:
            _write_all(self._fd, view)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # the file system took O_DIRECT at open but refuses the write (which wrote nothing):
            # this file goes through the page cache from here on
            _buffered(self._fd)
            _write_all(self._fd, view)
        finally:
            view.release()

    def _wait(self) -> mmap.mmap | None:
        """Wait for the block being written, if any: its buffer, free again. Raises what its write
        raised."""
        if self._in_flight is None:
            return None
        future, block = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except BaseException:
            _DIRECT_BUFFERS.append(block)
            raise
        return block

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
                free = self._wait()
                if free is not None:
                    _DIRECT_BUFFERS.append(free)
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

    def __enter__(self) -> DirectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "bcachefs", "jfs", "reiserfs", "zfs", "tmpfs"}
)
"""File systems on a local disk (or in RAM) where direct writes are the cheap path. On network file
systems (NFS, CIFS) each direct write would wait for the server, and FUSE file systems often refuse
it, so files there go through the page cache."""


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, file system type) from a ``/proc/self/mounts`` text, longest mount point first.
    The kernel writes a space, tab, newline or backslash in a mount point as an octal escape."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            found.append((point, fields[2]))
    return sorted(found, key=lambda m: len(m[0]), reverse=True)


def _mounts() -> list[tuple[str, str]]:
    try:
        return parse_mounts(Path("/proc/self/mounts").read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return []


def file_system(path: Path) -> str | None:
    """The type of the file system holding ``path`` (e.g. ``ext4``, ``nfs4``), None when unknown."""
    where = os.path.realpath(path)
    for point, kind in _mounts():
        if where == point or where.startswith(point.rstrip("/") + "/"):
            return kind
    return None


def _open_direct(path: Path) -> int | None:
    """``path`` created for direct writes, or None where the platform or file system has no ``O_DIRECT``
    (or is not a local disk, see ``LOCAL_FILE_SYSTEMS``)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or os.environ.get("HEADWATER_DIRECT_IO", "1") == "0":
        return None
    if file_system(path.parent) not in LOCAL_FILE_SYSTEMS:
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
