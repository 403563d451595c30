"""A store on the local file system: exclusive temp files, fsync, atomic link or rename, read-only raw files."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from headwater.errors import StorageError, WriteOnceError
from headwater.manifest import fsync_dir
from headwater.progress import Progress
from headwater.storage.base import Digests, ObjectInfo, PutResult, temp_path
from headwater.storage.hashing import READ_BLOCK, StreamHasher

TEMP_SUFFIX = ".hwtmp"


class LocalStore:
    """Objects are files under ``root``; keys are paths relative to it."""

    server_digest = False
    part_size = None

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"{key}: key escapes the store root {self.root}")
        return path

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{self._path(key)}: cannot stat: {exc.strerror}") from exc
        return ObjectInfo(key=key, size=st.st_size)

    def _open_temp(self, target: Path) -> tuple[int, Path]:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return fd, tmp

    def _publish(self, tmp: Path, target: Path, key: str, write_once: bool) -> None:
        """Move a complete, fsynced temp file to ``target``: link without replace when write-once."""
        try:
            if write_once:
                try:
                    os.link(tmp, target)
                except FileExistsError as exc:
                    raise WriteOnceError(
                        f"{key}: already exists in a write-once zone; the original was kept unchanged"
                    ) from exc
                tmp.unlink()
                os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            else:
                os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)

    def put_file(
        self, key: str, source: Path, *, write_once: bool, progress: Progress, task: str
    ) -> PutResult:
        target = self._path(key)
        if write_once and target.exists():
            raise WriteOnceError(
                f"{key}: already exists in a write-once zone; the original was kept unchanged"
            )
        hasher = StreamHasher(md5=False)
        try:
            fd, tmp = self._open_temp(target)
        except OSError as exc:
            raise StorageError(f"{target}: cannot create a temp file: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                _copy_hashed(src, out, hasher, progress, task)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{source} -> {target}: write failed: {exc.strerror}") from exc
        self._publish(tmp, target, key, write_once)
        return PutResult(key=key, digests=hasher.digests())

    def put_bytes(self, key: str, data: bytes, *, write_once: bool) -> None:
        target = self._path(key)
        if write_once and target.exists():
            raise WriteOnceError(
                f"{key}: already exists in a write-once zone; the original was kept unchanged"
            )
        fd, tmp = self._open_temp(target)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        self._publish(tmp, target, key, write_once)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"{self._path(key)}: not found") from exc

    def get_file(self, key: str, target: Path, *, progress: Progress, task: str) -> Digests:
        hasher = StreamHasher(md5=False)
        tmp = temp_path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._path(key).open("rb") as src, tmp.open("wb") as out:
                _copy_hashed(src, out, hasher, progress, task)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{self._path(key)}: read failed: {exc.strerror}") from exc
        return hasher.digests()

    def read_sha256(self, key: str) -> str:
        hasher = StreamHasher(md5=False)
        try:
            with self._path(key).open("rb") as src:
                while block := src.read(READ_BLOCK):
                    hasher.update(block)
        except OSError as exc:
            raise StorageError(f"{self._path(key)}: read failed: {exc.strerror}") from exc
        return hasher.digests().sha256

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(TEMP_SUFFIX):
                yield ObjectInfo(key=path.relative_to(self.root).as_posix(), size=path.stat().st_size)

    def find_temp_files(self, prefix: str = "") -> list[Path]:
        """Temp files a killed run left behind (removed by the janitor)."""
        base = self._path(prefix) if prefix else self.root
        return sorted(base.rglob(f"*{TEMP_SUFFIX}")) if base.is_dir() else []


def _copy_hashed(src: BinaryIO, out: BinaryIO, hasher: StreamHasher, progress: Progress, task: str) -> None:
    """Copy ``src`` to ``out`` in one pass, hashing and reporting each block, then fsync ``out``."""
    while block := src.read(READ_BLOCK):
        hasher.update(block)
        out.write(block)
        progress(task, len(block))
    out.flush()
    os.fsync(out.fileno())
