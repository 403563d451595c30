"""Proving that an object holds the bytes we meant: by size, by the server's digest, or by reading back."""

from __future__ import annotations

from headwater.errors import IntegrityError
from headwater.storage.base import Digests, ObjectInfo, Store, VerifyMode


def etag_matches(etag: str | None, digests: Digests) -> bool:
    """True when an S3 ETag (single-part MD5 or multipart ``md5-N``) equals the one our digests predict."""
    if not etag:
        return False
    etag = etag.strip('"')
    if "-" in etag:
        return bool(digests.part_md5s) and etag == digests.expected_etag()
    return etag == digests.md5


def check_object(
    store: Store, key: str, digests: Digests, mode: VerifyMode, info: ObjectInfo | None = None
) -> None:
    """Raise :class:`IntegrityError` unless ``key`` holds the bytes ``digests`` describes, proven by ``mode``.
    ``info`` is a fresh head of the object when the caller has one (else the store is asked)."""
    name = f"{store.url}/{key}"
    info = info if info is not None else store.head(key)
    if info is None:
        raise IntegrityError(f"{name}: missing after upload")
    if info.size != digests.size:
        raise IntegrityError(f"{name}: expected {digests.size} bytes, the store holds {info.size}")
    if mode is VerifyMode.SIZE:
        return
    if mode is VerifyMode.CHECKSUM and store.server_digest and info.etag and _etag_is_md5(info.etag):
        if not etag_matches(info.etag, digests):
            raise IntegrityError(
                f"{name}: the server's digest {info.etag} differs from the bytes read ({digests.md5}); "
                "the object is not marked verified"
            )
        return
    actual = store.read_sha256(key)
    if actual != digests.sha256:
        raise IntegrityError(
            f"{name}: expected sha256 {digests.sha256[:16]}..., read back {actual[:16]}...; "
            "the object is not marked verified"
        )


def _etag_is_md5(etag: str) -> bool:
    head = etag.strip('"').split("-", 1)[0]
    return len(head) == 32 and all(c in "0123456789abcdef" for c in head)
