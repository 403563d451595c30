"""boto3 for the S3 calls obstore does not offer: bucket settings, multipart listing, conditional completion."""

from __future__ import annotations

from typing import Any

from headwater.errors import StorageError, TransientStorageError, WriteOnceError
from headwater.storage.location import StoreOptions, check_endpoint

_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}
_TRANSIENT = {"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable", "503", "500"}


def make_s3_client(options: StoreOptions) -> Any:
    """A boto3 S3 client for the endpoint, region, path style and CA bundle in ``options``; credentials come
    from boto3's own chain (environment, profiles, instance roles)."""
    check_endpoint(options.endpoint_url, options.allow_insecure_http)
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path" if options.path_style else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region,
        verify=options.ca_bundle if options.ca_bundle else True,
        config=config,
    )


def translate_boto_error(what: str, exc: Exception) -> StorageError:
    """One-line headwater error for a boto3/botocore failure on ``what``."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _PRECONDITION:
            return WriteOnceError(
                f"{what}: already exists in a write-once zone; the original was kept unchanged"
            )
        kind = TransientStorageError if code in _TRANSIENT else StorageError
        return kind(f"{what}: {code}: {exc.response.get('Error', {}).get('Message', '')}"[:400])
    if isinstance(exc, BotoCoreError):
        return TransientStorageError(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    return StorageError(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
