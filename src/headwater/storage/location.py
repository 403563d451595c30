"""Parse storage URLs and build the store for them, refusing insecure endpoints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from headwater.errors import UsageError
from headwater.storage.base import Store


class Scheme(StrEnum):
    FILE = "file"
    S3 = "s3"
    GS = "gs"


class Encryption(StrEnum):
    """Server-side encryption requested on upload."""

    AES256 = "AES256"
    KMS = "aws:kms"


@dataclass(frozen=True)
class Location:
    """A parsed storage URL: a local folder, or a bucket and a key prefix."""

    scheme: Scheme
    bucket: str = ""
    prefix: str = ""
    path: Path | None = None

    def __str__(self) -> str:
        if self.scheme is Scheme.FILE:
            return str(self.path)
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def child(self, key: str) -> str:
        """The key of ``key`` below this location's prefix."""
        return f"{self.prefix}/{key}" if self.prefix else key


@dataclass(frozen=True)
class StoreOptions:
    """How to reach an object store. Credentials are never here: they come from the environment or the
    SDK's own chain (AWS_* / GOOGLE_* variables, profiles, instance roles)."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    allow_insecure_http: bool = False
    ca_bundle: str | None = None
    encryption: Encryption | None = None
    kms_key_id: str | None = None
    part_size: int = 8 << 20
    max_single_put: int = 512 << 20  # write-once files up to this go in one conditional PUT (held in memory)


def parse_location(url: str | Path) -> Location:
    """``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///path`` or a plain local path."""
    text = str(url)
    if "://" not in text:
        return Location(Scheme.FILE, path=Path(text).expanduser().resolve())
    parts = urlsplit(text)
    try:
        scheme = Scheme(parts.scheme.lower())
    except ValueError as exc:
        raise UsageError(
            f"{text}: unsupported scheme {parts.scheme!r}; use s3://, gs:// or a local path"
        ) from exc
    if scheme is Scheme.FILE:
        return Location(Scheme.FILE, path=Path(parts.path).resolve())
    if not parts.netloc or "@" in parts.netloc:
        raise UsageError(f"{text}: expected {scheme}://BUCKET/PREFIX without credentials in the URL")
    return Location(scheme, bucket=parts.netloc, prefix=parts.path.strip("/"))


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint_url: str | None, allow_insecure_http: bool) -> None:
    """Refuse plain ``http://`` unless the host is loopback or insecure http was allowed explicitly."""
    if endpoint_url is None:
        return
    parts = urlsplit(endpoint_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(f"endpoint {endpoint_url!r}: expected http(s)://HOST[:PORT]")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise UsageError(
            f"endpoint {endpoint_url}: plain http to a non-loopback host is refused; "
            "use https, or pass --allow-insecure-http if you accept unencrypted transfer"
        )


def open_store(location: Location, options: StoreOptions | None = None) -> Store:
    """The store rooted at ``location``."""
    options = options or StoreOptions()
    if location.scheme is Scheme.FILE:
        from headwater.storage.local import LocalStore

        assert location.path is not None
        return LocalStore(location.path)
    check_endpoint(options.endpoint_url, options.allow_insecure_http)
    from headwater.storage.cloud import CloudStore

    return CloudStore(location, options)
