"""The ETL's view of the zones: find landing batches, read a batch's files locally, write a working or
processed batch (files, then ``manifest.json``, then published in one step), and delete one.

On a local storage root the engines read and write the zone folders directly: a batch is written into a
hidden temp folder beside its final place and renamed into place once its manifest is written, so a
reader sees the whole batch or none of it. On ``s3://``/``gs://`` roots the batch is written to a local
staging folder and sent with the storage layer's verified push (manifest last); inputs are pulled into
a local cache, checked against their manifest, first.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from headwater.config import Settings
from headwater.errors import StorageError
from headwater.goodreads.etl_schema import DATASET
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, publish_folder, sha256_file
from headwater.storage import (
    Location,
    Scheme,
    Store,
    StoreOptions,
    VerifyMode,
    Zone,
    build_batch_prefix,
    open_store,
    parse_location,
    pull_batch,
    push_batch,
)

_BATCH_KEY = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/([^/]+)$")


@dataclass(frozen=True, order=True)
class BatchRef:
    """A batch of the dataset: the day in its key and its id. ``key`` is ``yyyy/mm/dd/<batch_id>``."""

    day: date
    batch_id: str

    @property
    def key(self) -> str:
        return f"{self.day:%Y/%m/%d}/{self.batch_id}"

    def prefix(self, zone: Zone) -> str:
        return str(build_batch_prefix(zone, DATASET, self.day, self.batch_id))

    @classmethod
    def parse(cls, key: str) -> BatchRef:
        """``yyyy/mm/dd/<batch_id>`` (as listed by ``new_landing_batches``)."""
        m = _BATCH_KEY.match(key.strip("/"))
        if not m:
            raise StorageError(f"{key}: not a batch key; expected yyyy/mm/dd/<batch_id>")
        y, mo, d, batch = m.groups()
        try:
            day = date(int(y), int(mo), int(d))
        except ValueError as exc:
            raise StorageError(f"{key}: {exc}") from exc
        build_batch_prefix(Zone.LANDING, DATASET, day, batch)  # checks the id
        return cls(day, batch)


def store_options(settings: Settings) -> StoreOptions:
    cfg = settings.storage
    return StoreOptions(
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=cfg.allow_insecure_http,
        ca_bundle=cfg.ca_bundle,
    )


def describe_files(folder: Path, tables: dict[str, str] | None = None) -> Manifest:
    """A manifest of every file under ``folder`` (sha256, bytes, Parquet rows, table = first folder)."""
    records = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        rel = path.relative_to(folder).as_posix()
        rows = pq.read_metadata(path).num_rows if path.suffix == ".parquet" else None
        table = (tables or {}).get(rel) or (rel.split("/")[0] if "/" in rel else None)
        records.append(FileRecord(rel, path.stat().st_size, sha256_file(path), rows, table))
    return Manifest(files=records)


class Zones:
    """The project's zones for the goodreads dataset."""

    def __init__(self, settings: Settings) -> None:
        self.location = parse_location(settings.storage_root)
        self.options = store_options(settings)
        self.store: Store = open_store(self.location, self.options)
        self.staging = settings.resolve(settings.goodreads.state_dir) / "staging"

    @property
    def is_local(self) -> bool:
        return self.location.scheme is Scheme.FILE

    @property
    def root_path(self) -> Path | None:
        return self.location.path if self.is_local else None

    def _batch_store(self, prefix: str) -> Store:
        if self.location.path is not None:
            return open_store(Location(Scheme.FILE, path=self.location.path / prefix))
        loc = Location(self.location.scheme, bucket=self.location.bucket, prefix=self.location.child(prefix))
        return open_store(loc, self.options)

    def url(self, zone: Zone, ref: BatchRef) -> str:
        prefix = ref.prefix(zone)
        if self.location.path is not None:
            return str(self.location.path / prefix)
        return f"{self.location.scheme}://{self.location.bucket}/{self.location.child(prefix)}"

    # ------------------------------------------------------------------------------------------ reading
    def batches(self, zone: Zone) -> Iterator[BatchRef]:
        """Every complete batch (one with a manifest) of the dataset in ``zone``."""
        base = f"{zone}/{DATASET}/"
        for info in self.store.list_keys(base):
            rel = info.key[len(base) :]
            if not rel.endswith("/" + MANIFEST_NAME):
                continue
            batch_key = rel[: -len(MANIFEST_NAME) - 1]
            if _BATCH_KEY.match(batch_key):
                try:
                    yield BatchRef.parse(batch_key)
                except StorageError:
                    continue

    def manifest(self, zone: Zone, ref: BatchRef) -> tuple[Manifest, bytes] | None:
        """A batch's manifest and its raw bytes (their sha256 identifies the batch), or None."""
        key = f"{ref.prefix(zone)}/{MANIFEST_NAME}"
        if self.store.head(key) is None:
            return None
        data = self.store.get_bytes(key)
        try:
            return Manifest.from_json(data.decode()), data
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise StorageError(f"{self.url(zone, ref)}/{MANIFEST_NAME}: not a valid manifest: {exc}") from exc

    def local_input(self, zone: Zone, ref: BatchRef) -> Path:
        """A local folder holding the batch's files: the zone folder itself on a local root, else a
        verified copy pulled into the staging cache."""
        if self.location.path is not None:
            return self.location.path / ref.prefix(zone)
        cache = self.staging / "cache" / ref.prefix(zone)
        pull_batch(self._batch_store(ref.prefix(zone)), cache)
        return cache

    def release_input(self, zone: Zone, ref: BatchRef) -> None:
        """Drop a pulled copy (remote roots only)."""
        if self.location.path is None:
            shutil.rmtree(self.staging / "cache" / ref.prefix(zone), ignore_errors=True)

    # ------------------------------------------------------------------------------------------ writing
    def begin_output(self, zone: Zone, ref: BatchRef) -> Path:
        """An empty local folder to write the batch into (hidden, beside its final place when local)."""
        final = self._final_local(zone, ref)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        return tmp

    def _final_local(self, zone: Zone, ref: BatchRef) -> Path:
        if self.location.path is not None:
            return self.location.path / ref.prefix(zone)
        return self.staging / "out" / ref.prefix(zone)

    def commit_output(self, zone: Zone, ref: BatchRef, folder: Path, meta: dict[str, object]) -> Manifest:
        """Write the manifest, then publish the batch: rename into place locally, verified push remotely.
        Replaces an earlier (unfinished or superseded) copy of the same batch."""
        manifest = describe_files(folder)
        manifest.meta = {"dataset": DATASET, "zone": zone.value, "batch": ref.key, **meta}
        manifest.write(folder / MANIFEST_NAME)
        final = self._final_local(zone, ref)
        if self.location.path is not None:
            self.abandon(final)
            publish_folder(folder, final)  # durable: the files synced before the rename
            return manifest
        try:
            push_batch(
                folder, self._batch_store(ref.prefix(zone)), write_once=False, verify=VerifyMode.CHECKSUM
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return manifest

    @staticmethod
    def abandon(folder: Path) -> None:
        """Remove a local output folder (an unfinished temp folder, or the copy being replaced)."""
        if folder.exists():
            shutil.rmtree(folder)

    def delete(self, zone: Zone, ref: BatchRef) -> int:
        """Remove a batch from ``zone`` (never used on landing); the number of files removed."""
        if zone.write_once:
            raise StorageError(f"{self.url(zone, ref)}: {zone} is write-once; the ETL never deletes there")
        if self.location.path is not None:
            folder = self.location.path / ref.prefix(zone)
            count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
            self.abandon(folder)
            _remove_empty_parents(folder.parent, self.location.path / zone.value)
            return count
        keys = [info.key for info in self.store.list_keys(ref.prefix(zone) + "/")]
        manifest_key = f"{ref.prefix(zone)}/{MANIFEST_NAME}"
        for key in sorted(keys, key=lambda k: k != manifest_key):  # the manifest first: no longer complete
            self.store.delete(key)
        return len(keys)

    def clear_temp(self) -> None:
        """Remove hidden temp folders a killed run left in the working and processed zones."""
        if self.location.path is None:
            shutil.rmtree(self.staging / "out", ignore_errors=True)
            return
        for zone in (Zone.WORKING, Zone.PROCESSED):
            base = self.location.path / zone.value / DATASET
            if base.is_dir():
                for tmp in base.glob("*/*/*/.*.tmp"):
                    shutil.rmtree(tmp, ignore_errors=True)


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
