"""Manifests: what a batch of files holds (path, rows, bytes, sha256), written last and atomically.

A manifest is the proof a batch is complete: readers trust a batch only once its manifest exists,
and every later step (push, verify, load) checks files against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileRecord:
    """One file of a batch. ``path`` is relative to the batch root, with forward slashes."""

    path: str
    bytes: int
    sha256: str
    rows: int | None = None
    table: str | None = None
    key: str | None = None
    status: str | None = None


@dataclass
class Manifest:
    """A batch's file list plus free-form facts about how it was made (schema hash, seed, ...)."""

    files: list[FileRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def total_rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)

    def to_json(self) -> str:
        body = {
            "version": self.version,
            "meta": self.meta,
            "files": [{k: v for k, v in asdict(f).items() if v is not None} for f in self.files],
        }
        return json.dumps(body, indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            files=[FileRecord(**f) for f in data.get("files", [])],
            meta=data.get("meta", {}),
            version=int(data.get("version", MANIFEST_VERSION)),
        )

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_json(path.read_text(encoding="utf-8"))

    def write(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, fsync, rename, fsync the folder."""
        write_atomic(path, self.to_json().encode())


def write_atomic(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new bytes, never a mix.
    ``durable``: the bytes and the rename reach the disk before this returns (a cache that is checked
    when read may skip that). ``mode``: the file's permissions (default: the temp file's, 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """Make everything under ``folder`` durable before it is published by a rename: each file's bytes,
    then each folder's entries, deepest first. Without it a crash right after the rename can leave a
    published batch whose files have their names but not (all) their bytes."""
    folders: list[Path] = []
    for root, _dirs, files in os.walk(folder):
        folders.append(Path(root))
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for each in reversed(folders):
        fsync_dir(each)


def publish_folder(folder: Path, final: Path) -> None:
    """Rename the finished ``folder`` to ``final`` (which must not exist) durably: its contents synced
    first, the parent folders' entries after."""
    sync_tree(folder)
    folder.rename(final)
    fsync_dir(final.parent)
    if folder.parent != final.parent:
        fsync_dir(folder.parent)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
