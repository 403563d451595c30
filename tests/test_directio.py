"""Direct-I/O files (``headwater.directio``): direct writes and their fallbacks give the same bytes and hash."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from headwater import directio
from headwater.directio import DIRECT_BLOCK, DirectFile
from headwater.generate.sinks import _HashingFile

# piece sizes that end below, exactly on and past the direct block, and an empty piece
SIZES = [0, 1, 4095, 4096, DIRECT_BLOCK - 4097, 1, DIRECT_BLOCK, 3 * DIRECT_BLOCK + 17, 12_345]


def _pieces() -> list[bytes]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in SIZES]


def _write(path: Path) -> _HashingFile:
    f = _HashingFile(path)
    for piece in _pieces():
        assert f.write(piece) == len(piece)
    assert f.tell() == sum(SIZES)
    f.close()
    return f


@pytest.mark.parametrize("direct", ["1", "0"])
def test_file_holds_every_byte_and_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    monkeypatch.setenv("HEADWATER_DIRECT_IO", direct)
    path = tmp_path / "out.csv"
    f = _write(path)
    expected = b"".join(_pieces())
    assert path.read_bytes() == expected
    assert f.hasher.hexdigest() == hashlib.sha256(expected).hexdigest()
    assert f.bytes == len(expected)


def test_direct_io_is_used_where_the_file_system_has_it(tmp_path: Path) -> None:
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    f = DirectFile(tmp_path / "a.csv")
    assert f.direct  # ext4 and tmpfs both take it
    f.write(b"x" * (DIRECT_BLOCK + 1))
    f.close()
    # the closed file's buffer is kept for the next file instead of mapping fresh memory
    kept = len(directio._DIRECT_BUFFERS)
    assert kept >= 1
    g = DirectFile(tmp_path / "b.csv")
    assert len(directio._DIRECT_BUFFERS) == kept - 1
    g.close()
    assert (tmp_path / "a.csv").stat().st_size == DIRECT_BLOCK + 1


def test_a_refused_direct_write_goes_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems accept O_DIRECT at open and refuse the writes (EINVAL): the file is then
    written the ordinary way, whole and with the right hash."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    real_write = os.write
    refused: list[int] = []

    def write(fd: int, data: bytes | memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    path = tmp_path / "out.csv"
    f = _write(path)
    monkeypatch.undo()
    expected = b"".join(_pieces())
    assert refused, "the direct write was never tried"
    assert path.read_bytes() == expected
    assert f.hasher.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_other_write_errors_are_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    f = DirectFile(tmp_path / "out.csv")
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        f.write(b"x" * (2 * DIRECT_BLOCK))
    monkeypatch.undo()
    os.close(f._fd)


def test_full_blocks_are_written_while_the_caller_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct write waits for the disk: the writing thread does it, and the caller fills the next
    block meanwhile. ``close`` waits for it, and the file is whole."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    real_write = os.write
    disk = threading.Event()
    started = threading.Event()

    def slow_disk(fd: int, data: bytes | memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            started.set()
            assert disk.wait(10)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", slow_disk)
    path = tmp_path / "out.bin"
    f = DirectFile(path)
    data = np.random.default_rng(3).integers(0, 256, DIRECT_BLOCK + 5000, dtype=np.uint8).tobytes()
    f.write(data)  # returns with the first block still on its way to the disk
    assert started.wait(10)
    assert f.tell() == len(data)
    disk.set()
    f.close()
    assert path.read_bytes() == data


def test_an_error_of_a_background_write_is_raised_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    f = DirectFile(tmp_path / "out.csv")
    monkeypatch.setattr(os, "write", full)
    f.write(b"x" * DIRECT_BLOCK)  # one block: handed to the writing thread
    with pytest.raises(OSError, match="No space left"):
        f.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_writes_with_its_own_writing_thread(tmp_path: Path) -> None:
    """A child forked after the parent wrote blocks has no writing thread of the parent's: it starts its
    own instead of waiting forever for one that does not exist."""
    with DirectFile(tmp_path / "parent.bin") as f:
        f.write(b"p" * (2 * DIRECT_BLOCK))
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its file is whole; killed by the alarm if it hangs
        signal.alarm(30)
        code = 1
        try:
            with DirectFile(tmp_path / "child.bin") as g:
                g.write(b"c" * (2 * DIRECT_BLOCK + 10))
            code = 0 if (tmp_path / "child.bin").stat().st_size == 2 * DIRECT_BLOCK + 10 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_parquet_writer_over_a_direct_file(tmp_path: Path) -> None:
    """The events pass hands a DirectFile to PyArrow's ParquetWriter: the file reads back whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": pa.array(range(300_000)), "s": pa.array([f"v{i % 977}" for i in range(300_000)])})
    path = tmp_path / "t.parquet"
    sink = DirectFile(path)
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table, row_group_size=100_000)
    sink.close()
    assert pq.read_table(path).equals(table)
    assert path.stat().st_size == sink.bytes


def test_mount_table_parsing() -> None:
    text = "srv:/export /mnt/lab\\040data nfs4 rw 0 0\n/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n"
    assert directio.parse_mounts(text) == [("/mnt/lab data", "nfs4"), ("/dev/shm", "tmpfs"), ("/", "ext4")]


def test_network_and_unknown_file_systems_are_written_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct write on NFS would wait for the server each time, and FUSE file systems often refuse
    it: only local disk (and RAM) file systems get direct I/O."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    assert directio.file_system(tmp_path) in directio.LOCAL_FILE_SYSTEMS  # this machine's disk
    for kind in ("nfs4", "fuse.s3fs", "cifs"):
        monkeypatch.setattr(directio, "_mounts", lambda kind=kind: [("/", kind)])
        f = DirectFile(tmp_path / f"{kind}.csv")
        assert not f.direct
        f.write(b"abc" * 5000)
        f.close()
        assert (tmp_path / f"{kind}.csv").read_bytes() == b"abc" * 5000
    monkeypatch.setattr(directio, "_mounts", lambda: [])  # no mount table: play safe
    g = DirectFile(tmp_path / "unknown.csv")
    assert not g.direct
    g.close()
