"""Bucket housekeeping: report versioning and object lock, abort leftover multipart uploads, remove temp files."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from headwater.errors import StorageError
from headwater.storage.base import Store
from headwater.storage.local import LocalStore
from headwater.storage.s3client import make_s3_client

__all__ = ["BucketReport", "JanitorReport", "check_bucket", "make_s3_client", "run_janitor"]
from headwater.storage.location import Location, Scheme, StoreOptions


def _translate(what: str, exc: Exception) -> StorageError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageError(f"{what}: {text[:300]}")


@dataclass
class BucketReport:
    """What protects the raw zone from being erased by mistake."""

    url: str
    versioning: str = "unknown"
    object_lock: str = "unknown"
    warnings: list[str] = field(default_factory=list)


def check_bucket(location: Location, options: StoreOptions) -> BucketReport:
    """Report versioning and object lock of ``location``'s bucket, with a warning for each missing guard."""
    report = BucketReport(str(location))
    if location.scheme is Scheme.FILE:
        report.versioning = report.object_lock = "not available"
        report.warnings.append(
            "local folder: landing files are made read-only, but anyone with write access to the folder can "
            "delete them; keep backups"
        )
        return report
    if location.scheme is Scheme.GS:
        report.warnings.append("gs://: versioning and retention checks are not implemented; check the bucket")
        return report
    client = make_s3_client(options)
    try:
        report.versioning = client.get_bucket_versioning(Bucket=location.bucket).get("Status", "Disabled")
    except Exception as exc:
        raise _translate(f"{location}: cannot read versioning", exc) from exc
    try:
        lock = client.get_object_lock_configuration(Bucket=location.bucket)["ObjectLockConfiguration"]
        rule = lock.get("Rule", {}).get("DefaultRetention")
        report.object_lock = f"{lock.get('ObjectLockEnabled', 'Enabled')}" + (
            f" ({rule.get('Mode')}, {rule.get('Days') or rule.get('Years')} {'days' if rule.get('Days') else 'years'})"
            if rule
            else " (no default retention)"
        )
    except Exception as exc:
        if "ObjectLockConfigurationNotFound" not in str(exc):
            raise _translate(f"{location}: cannot read object lock", exc) from exc
        report.object_lock = "Disabled"
    if report.versioning != "Enabled":
        report.warnings.append(
            f"versioning is {report.versioning}: a delete or overwrite of a raw object in landing/ cannot be undone"
        )
    if not report.object_lock.startswith("Enabled"):
        report.warnings.append(
            "object lock is off: anyone with delete rights can erase raw objects in landing/"
        )
    return report


@dataclass
class JanitorReport:
    url: str
    found: list[str] = field(default_factory=list)
    removed: int = 0
    dry_run: bool = False


def run_janitor(
    location: Location, store: Store, options: StoreOptions, *, older_than: timedelta, dry_run: bool = False
) -> JanitorReport:
    """Abort multipart uploads (S3) or remove temp files (local) left by killed runs under ``location``
    that are older than ``older_than``, so a running transfer is not disturbed."""
    report = JanitorReport(str(location), dry_run=dry_run)
    if isinstance(store, LocalStore):
        cutoff = time.time() - older_than.total_seconds()
        for path in store.find_temp_files():
            if path.stat().st_mtime <= cutoff:
                report.found.append(str(path))
                if not dry_run:
                    path.unlink(missing_ok=True)
                    report.removed += 1
        return report
    if location.scheme is not Scheme.S3:
        raise StorageError(f"{location}: the janitor handles local folders and s3:// only")
    client = make_s3_client(options)
    cutoff_dt = datetime.now(UTC) - older_than
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=location.bucket, Prefix=location.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] > cutoff_dt:
                    continue
                report.found.append(
                    f"s3://{location.bucket}/{upload['Key']} (upload {upload['UploadId'][:12]}...)"
                )
                if not dry_run:
                    client.abort_multipart_upload(
                        Bucket=location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    report.removed += 1
    except Exception as exc:
        raise _translate(f"{location}: janitor failed", exc) from exc
    return report
