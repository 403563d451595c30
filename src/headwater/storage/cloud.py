"""``s3://`` (AWS or any S3-compatible endpoint) and ``gs://`` stores through obstore.

Write-once keys use a conditional create (``If-None-Match: *``) in one PUT, so a key either holds a
complete object or nothing. Larger objects go as multipart uploads, visible only once completed.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import obstore
from obstore import exceptions as obx
from obstore.store import GCSStore, S3Store

from headwater.errors import StorageError, TransientStorageError, WriteOnceError
from headwater.progress import Progress
from headwater.storage.base import METADATA_SHA256, Digests, ObjectInfo, PutResult, temp_path
from headwater.storage.hashing import READ_BLOCK, StreamHasher, iter_hashed
from headwater.storage.location import Encryption, Location, Scheme, StoreOptions
from headwater.storage.s3client import make_s3_client, translate_boto_error

if TYPE_CHECKING:
    from obstore import PutResult as PutResultDict
    from obstore.store import ClientConfig


def translate_error(what: str, exc: Exception) -> StorageError:
    """One-line headwater error for an obstore failure on ``what`` (never echoes credentials)."""
    if isinstance(exc, obx.AlreadyExistsError | obx.PreconditionError):
        return WriteOnceError(f"{what}: already exists in a write-once zone; the original was kept unchanged")
    if isinstance(exc, obx.NotFoundError | FileNotFoundError):
        return StorageError(f"{what}: not found")
    if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError):
        return StorageError(f"{what}: access denied; check the credentials in the environment or profile")
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if "InvalidCertificate" in text or "certificate verify failed" in text:
        return StorageError(
            f"{what}: the endpoint's TLS certificate is not trusted ({_certificate_reason(text)}); "
            "pass --ca-bundle with the CA that signed it"
        )
    if "builder error" in text:  # the HTTP client refused the URL before any connection: not transient
        return StorageError(
            f"{what}: the request could not be built: a plain http:// URL (refused for gs://) "
            "or an invalid endpoint URL"
        )
    kind = TransientStorageError if isinstance(exc, obx.GenericError | OSError) else StorageError
    return kind(f"{what}: {type(exc).__name__}: {first[:300]}")


def _certificate_reason(text: str) -> str:
    """The reason rustls gives inside obstore's debug text, e.g. ``UnknownIssuer``."""
    tail = text.split("InvalidCertificate(", 1)[-1]
    reason = tail.split(")", 1)[0].strip().strip(",").strip()
    return reason if reason.isidentifier() else "verification failed"


def build_client_options(options: StoreOptions) -> ClientConfig:
    """HTTP client options: http only where allowed, a private CA where given."""
    client: dict[str, Any] = {"connect_timeout": timedelta(seconds=10), "timeout": timedelta(minutes=10)}
    if options.endpoint_url and options.endpoint_url.startswith("http://"):
        client["allow_http"] = True
    if options.ca_bundle:
        try:
            client["root_certificate"] = Path(options.ca_bundle).read_bytes()
        except OSError as exc:
            raise StorageError(f"{options.ca_bundle}: cannot read the CA bundle: {exc.strerror}") from exc
    return client  # type: ignore[return-value]


class CloudStore:
    """An S3 or GCS bucket prefix. Retries are headwater's own (tenacity, in transfer): obstore's are off."""

    @property
    def part_size(self) -> int:
        return self.options.part_size

    def __init__(self, location: Location, options: StoreOptions) -> None:
        self.location = location
        self.options = options
        self._client: Any = None
        retry: Any = {"max_retries": 0, "retry_timeout": timedelta(minutes=10)}
        prefix = location.prefix or None
        try:
            if location.scheme is Scheme.S3:
                config: dict[str, Any] = {"virtual_hosted_style_request": not options.path_style}
                if options.endpoint_url:
                    config["endpoint"] = options.endpoint_url
                if options.region:
                    config["region"] = options.region
                if options.encryption:
                    config["server_side_encryption"] = str(options.encryption)
                if options.kms_key_id:
                    config["sse_kms_key_id"] = options.kms_key_id
                self._store: S3Store | GCSStore = S3Store(
                    location.bucket,
                    prefix=prefix,
                    config=config,  # type: ignore[arg-type]
                    client_options=build_client_options(options),
                    retry_config=retry,
                )
            else:
                self._store = GCSStore(
                    location.bucket,
                    prefix=prefix,
                    client_options=build_client_options(options),
                    retry_config=retry,
                )
        except obx.BaseError as exc:
            raise translate_error(str(location), exc) from exc

    @property
    def url(self) -> str:
        return str(self.location)

    @property
    def server_digest(self) -> bool:
        """S3 ETags are MD5s of the stored bytes unless SSE-KMS is used; GCS ETags are not."""
        return self.location.scheme is Scheme.S3 and self.options.encryption is not Encryption.KMS

    def _name(self, key: str) -> str:
        return f"{self.location}/{key}"

    def head(self, key: str) -> ObjectInfo | None:
        try:
            got = obstore.get(self._store, key, options={"head": True})
        except (obx.NotFoundError, FileNotFoundError):
            return None
        except Exception as exc:
            raise translate_error(self._name(key), exc) from exc
        meta = got.meta
        etag = meta["e_tag"]
        return ObjectInfo(
            key=key,
            size=meta["size"],
            etag=etag.strip('"') if etag else None,
            sha256=got.attributes.get(METADATA_SHA256),
        )

    def put_file(
        self, key: str, source: Path, *, write_once: bool, progress: Progress, task: str
    ) -> PutResult:
        """Small files (and write-once files up to ``max_single_put``) go in one PUT, read and hashed into
        memory first so their sha256 travels as metadata; larger ones stream as a multipart upload."""
        size = source.stat().st_size
        single = size <= self.options.max_single_put if write_once else size <= self.options.part_size
        if single:
            hasher = StreamHasher()
            body = bytearray()
            try:
                with source.open("rb") as fh:
                    for block in iter_hashed(fh, hasher):
                        body += block
            except OSError as exc:
                raise StorageError(f"{source}: read failed: {exc.strerror}") from exc
            digests = hasher.digests()
            try:
                result = obstore.put(
                    self._store,
                    key,
                    body,
                    attributes={METADATA_SHA256: digests.sha256},
                    mode="create" if write_once else "overwrite",
                    use_multipart=False,
                )
            except Exception as exc:
                raise translate_error(self._name(key), exc) from exc
            progress(task, size)
        elif write_once and self.location.scheme is Scheme.S3:
            digests, result = self._put_multipart_create(key, source, progress, task)
        else:
            if write_once and self.head(key) is not None:  # GCS: no conditional multipart here, check first
                raise WriteOnceError(
                    f"{self._name(key)}: already exists in a write-once zone; the original was kept unchanged"
                )
            hasher = StreamHasher(part_size=self.options.part_size)
            try:
                with source.open("rb") as fh:
                    result = obstore.put(
                        self._store,
                        key,
                        _read_reporting(fh, source, hasher, progress, task),
                        use_multipart=True,
                        chunk_size=self.options.part_size,
                        max_concurrency=4,  # per file; files also run in parallel
                    )
            except StorageError:
                raise
            except Exception as exc:
                raise translate_error(self._name(key), exc) from exc
            digests = hasher.digests()
        etag = result["e_tag"]
        return PutResult(key=key, digests=digests, etag=etag.strip('"') if etag else None)

    def _put_multipart_create(
        self, key: str, source: Path, progress: Progress, task: str
    ) -> tuple[Digests, PutResultDict]:
        """A multipart upload completed with ``If-None-Match: *`` (boto3: obstore cannot set it), so a large
        write-once object appears whole or not at all and never replaces another. Parts are read, hashed and
        sent with at most four in flight; on any failure the upload is aborted."""
        client = self._boto_client()
        bucket, full_key = self.location.bucket, self.location.child(key)
        extra: dict[str, str] = {}
        if self.options.encryption:
            extra["ServerSideEncryption"] = str(self.options.encryption)
        if self.options.kms_key_id:
            extra["SSEKMSKeyId"] = self.options.kms_key_id
        try:
            upload_id = client.create_multipart_upload(Bucket=bucket, Key=full_key, **extra)["UploadId"]
        except Exception as exc:
            raise translate_boto_error(self._name(key), exc) from exc

        def send(number: int, block: bytes) -> dict[str, Any]:
            answer = client.upload_part(
                Bucket=bucket, Key=full_key, UploadId=upload_id, PartNumber=number, Body=block
            )
            progress(task, len(block))
            return {"ETag": answer["ETag"], "PartNumber": number}

        hasher = StreamHasher(part_size=self.options.part_size)
        try:
            parts: list[dict[str, Any]] = []
            pending: deque[Future[dict[str, Any]]] = deque()
            with source.open("rb") as fh, ThreadPoolExecutor(max_workers=4) as pool:
                number = 0
                while block := fh.read(self.options.part_size):
                    hasher.update(block)
                    number += 1
                    pending.append(pool.submit(send, number, block))
                    if len(pending) >= 4:
                        parts.append(pending.popleft().result())
                parts.extend(f.result() for f in pending)
            answer = client.complete_multipart_upload(
                Bucket=bucket,
                Key=full_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=full_key, UploadId=upload_id)
            if isinstance(exc, OSError) and not type(exc).__module__.startswith("botocore"):
                raise StorageError(f"{source}: read failed: {exc.strerror}") from exc
            if isinstance(exc, Exception):
                raise translate_boto_error(self._name(key), exc) from exc
            raise
        return hasher.digests(), {"e_tag": answer.get("ETag"), "version": answer.get("VersionId")}

    def _boto_client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client(self.options)
        return self._client

    def put_bytes(self, key: str, data: bytes, *, write_once: bool) -> None:
        try:
            obstore.put(
                self._store, key, data, mode="create" if write_once else "overwrite", use_multipart=False
            )
        except Exception as exc:
            raise translate_error(self._name(key), exc) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return obstore.get(self._store, key).bytes().to_bytes()
        except Exception as exc:
            raise translate_error(self._name(key), exc) from exc

    def get_file(self, key: str, target: Path, *, progress: Progress, task: str) -> Digests:
        hasher = StreamHasher()
        tmp = temp_path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tmp.open("wb") as out:
                for chunk in obstore.get(self._store, key).stream(min_chunk_size=READ_BLOCK):
                    view = memoryview(chunk)
                    hasher.update(view)
                    out.write(view)
                    progress(task, len(view))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{target}: write failed: {exc.strerror}") from exc
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise translate_error(self._name(key), exc) from exc
        return hasher.digests()

    def read_sha256(self, key: str) -> str:
        hasher = StreamHasher()
        try:
            for chunk in obstore.get(self._store, key).stream(min_chunk_size=READ_BLOCK):
                hasher.update(memoryview(chunk))
        except Exception as exc:
            raise translate_error(self._name(key), exc) from exc
        return hasher.digests().sha256

    def delete(self, key: str) -> None:
        try:
            obstore.delete(self._store, key)
        except Exception as exc:
            raise translate_error(self._name(key), exc) from exc

    def list_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for page in obstore.list(self._store, prefix=prefix or None):
                for meta in page:
                    etag = meta["e_tag"]
                    yield ObjectInfo(
                        key=meta["path"], size=meta["size"], etag=etag.strip('"') if etag else None
                    )
        except Exception as exc:
            raise translate_error(self._name(prefix), exc) from exc


def _read_reporting(
    fh: BinaryIO, source: Path, hasher: StreamHasher, progress: Progress, task: str
) -> Iterator[bytes]:
    try:
        for block in iter_hashed(fh, hasher):
            progress(task, len(block))
            yield block
    except OSError as exc:
        raise StorageError(f"{source}: read failed: {exc.strerror}") from exc
