"""Object storage: local folders, ``s3://`` and ``gs://`` behind one interface; zones; verified,
resumable transfer with manifests. The core API, re-exported here."""

from __future__ import annotations

from headwater.storage.admin import BucketReport, JanitorReport, check_bucket, run_janitor
from headwater.storage.base import FileStatus, ObjectInfo, Store, VerifyMode
from headwater.storage.location import Encryption, Location, Scheme, StoreOptions, open_store, parse_location
from headwater.storage.pull import VerifyReport, pull_batch, verify_batch
from headwater.storage.retry import RetryPolicy
from headwater.storage.transfer import FileOutcome, TransferReport, push_batch
from headwater.storage.zones import BatchPrefix, Zone, build_batch_prefix, zone_of

__all__ = [
    "BatchPrefix",
    "BucketReport",
    "Encryption",
    "FileOutcome",
    "FileStatus",
    "JanitorReport",
    "Location",
    "ObjectInfo",
    "RetryPolicy",
    "Scheme",
    "Store",
    "StoreOptions",
    "TransferReport",
    "VerifyMode",
    "VerifyReport",
    "Zone",
    "build_batch_prefix",
    "check_bucket",
    "open_store",
    "parse_location",
    "pull_batch",
    "push_batch",
    "run_janitor",
    "verify_batch",
    "zone_of",
]
