"""Digests computed while bytes flow through, so no file is ever read twice to be hashed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from headwater.storage.base import Digests

READ_BLOCK = 1 << 20


class StreamHasher:
    """Feeds sha256 and MD5 with every block; with ``part_size`` also keeps one MD5 per part, so the
    multipart ETag an S3 server will compute can be predicted exactly. ``md5=False`` skips MD5 where no
    server digest will be compared (local folders)."""

    def __init__(self, part_size: int | None = None, *, md5: bool = True) -> None:
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._part_size = part_size
        self._part = hashlib.md5(usedforsecurity=False)
        self._part_fill = 0
        self._parts: list[bytes] = []
        self.size = 0

    def update(self, block: bytes | bytearray | memoryview) -> None:
        """Add ``block``; part boundaries may fall inside it."""
        self._sha.update(block)
        if self._md5 is not None:
            self._md5.update(block)
        self.size += len(block)
        if self._part_size is None:
            return
        view = memoryview(block)
        while view:
            take = min(len(view), self._part_size - self._part_fill)
            self._part.update(view[:take])
            self._part_fill += take
            view = view[take:]
            if self._part_fill == self._part_size:
                self._close_part()

    def _close_part(self) -> None:
        self._parts.append(self._part.digest())
        self._part = hashlib.md5(usedforsecurity=False)
        self._part_fill = 0

    def digests(self) -> Digests:
        """The digests of everything fed so far."""
        parts: tuple[bytes, ...] = ()
        if self._part_size is not None:
            if self._part_fill or not self._parts:
                self._close_part()
            parts = tuple(self._parts)
        md5 = self._md5.hexdigest() if self._md5 is not None else ""
        return Digests(sha256=self._sha.hexdigest(), md5=md5, size=self.size, part_md5s=parts)


def iter_hashed(fh: BinaryIO, hasher: StreamHasher, block: int = READ_BLOCK) -> Iterator[bytes]:
    """Yield ``fh`` in blocks, feeding each to ``hasher`` first."""
    while chunk := fh.read(block):
        hasher.update(chunk)
        yield chunk
