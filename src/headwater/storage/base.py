"""The one storage interface every store implements, and the plain values it speaks in.

A store addresses objects by *key*: a ``/``-separated path relative to the store's root (a local folder,
or a bucket plus prefix). Implementations: :class:`~headwater.storage.local.LocalStore` and
:class:`~headwater.storage.cloud.CloudStore` (``s3://`` and ``gs://`` through obstore).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from headwater.progress import Progress

METADATA_SHA256 = "sha256"
"""User metadata key under which every upload carries the sha256 of its bytes (``x-amz-meta-sha256``)."""


class VerifyMode(StrEnum):
    """How an upload is proven: ``size`` compares lengths; ``checksum`` compares the server's own digest
    of the bytes it received (S3 ETag = MD5, single or multipart) with ours, reading back where the server
    offers none; ``full`` reads every object back and compares sha256."""

    SIZE = "size"
    CHECKSUM = "checksum"
    FULL = "full"


class FileStatus(StrEnum):
    """What happened to one file of a transfer."""

    VERIFIED = "verified"  # sent (or found) and proven by the chosen verify mode
    SKIPPED = "skipped"  # already present and verified; nothing sent
    UNCHECKED = "unchecked"  # pulled, but neither a manifest nor object metadata recorded a sha256
    PLANNED = "planned"  # --dry-run: would be sent
    FAILED = "failed"


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    etag: str | None = None
    sha256: str | None = None  # from the object's metadata, when it carries one


@dataclass(frozen=True)
class Digests:
    """Digests of bytes as they were read: sha256, MD5, and the MD5 of each multipart part."""

    sha256: str
    md5: str
    size: int
    part_md5s: tuple[bytes, ...] = ()

    def expected_etag(self) -> str:
        """The ETag an S3-compatible server computes for these bytes uploaded the same way."""
        if not self.part_md5s:
            return self.md5
        import hashlib

        joined = hashlib.md5(b"".join(self.part_md5s), usedforsecurity=False).hexdigest()
        return f"{joined}-{len(self.part_md5s)}"


@dataclass(frozen=True)
class PutResult:
    """The outcome of one upload: our digests and the server's answer."""

    key: str
    digests: Digests
    etag: str | None = None


class Store(Protocol):
    """An object store rooted at a local folder or a bucket prefix."""

    @property
    def url(self) -> str:
        """The root as a URL or absolute path, without credentials."""
        ...

    @property
    def server_digest(self) -> bool:
        """True when the server's ETag is an MD5 of the stored bytes (checksum mode can trust it)."""
        ...

    @property
    def part_size(self) -> int | None:
        """Multipart part size, so an existing object's multipart ETag can be predicted; None locally."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size, ETag and metadata sha256 of ``key``; None when absent."""
        ...

    def put_file(
        self, key: str, source: Path, *, write_once: bool, progress: Progress, task: str
    ) -> PutResult:
        """Upload ``source`` to ``key``, hashing while reading. ``write_once`` refuses an existing key
        (:class:`~headwater.errors.WriteOnceError`); no partial object ever appears under ``key``."""
        ...

    def put_bytes(self, key: str, data: bytes, *, write_once: bool) -> None:
        """Store a small object (a manifest) atomically."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""
        ...

    def get_file(self, key: str, target: Path, *, progress: Progress, task: str) -> Digests:
        """Download ``key`` into a temp file beside ``target``, hashing while writing; the caller renames
        it into place once the digest is checked. Returns the digests; the temp file is ``temp_path(target)``."""
        ...

    def read_sha256(self, key: str) -> str:
        """Read ``key`` back in full and return its sha256."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (used only for an object this run just wrote and proved corrupt)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``."""
        ...


def temp_path(target: Path) -> Path:
    """The temp file a download writes before it is proven and renamed to ``target``."""
    return target.with_name(f".{target.name}.hwpart")
