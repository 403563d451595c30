"""Push closed spool files to the landing zone: ``landing/goodreads/<yyyy>/<mm>/<dd>/<batch_id>/<file>.csv``.

A push is three named moves, each one atomic, so a kill -9 anywhere leaves every file in exactly one place
and a re-run finishes the job without sending any file twice:

1. **claim**: create ``outbox/<batch_id>/`` and rename the closed files into it (each rename is atomic; a
   batch interrupted here is simply a smaller batch), then write its local ``manifest.json`` (rows and
   entity per file, which the landing manifest carries on);
2. **send**: :func:`headwater.storage.push_batch` into the batch's landing prefix, write-once, each file
   verified, the landing manifest last. A re-run pushes the same folder to the same prefix (the batch id
   and its day are fixed at claim time): files already verified are skipped, never duplicated;
3. **done**: rename ``outbox/<batch_id>`` to ``pushed/<batch_id>``, kept for ``pushed_retention_hours``.

Batches left in ``outbox/`` are finished first, as they are; new files always go into a new batch.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from headwater.config import Settings
from headwater.errors import StorageError
from headwater.goodreads.capture_schema import DATASET, count_csv_rows
from headwater.goodreads.spool import SpoolLayout, entity_of
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, fsync_dir, sha256_file
from headwater.progress import Progress, no_progress
from headwater.storage import (
    FileStatus,
    Location,
    StoreOptions,
    VerifyMode,
    Zone,
    build_batch_prefix,
    open_store,
    parse_location,
    push_batch,
)

log = logging.getLogger(__name__)

_BATCH_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class PushedBatch:
    """One batch sent: its id, landing URL, files, rows and bytes; ``resumed`` when an earlier push had
    claimed it and stopped; ``skipped`` files were already in landing, verified."""

    batch_id: str
    url: str
    files: tuple[str, ...]
    rows: int
    bytes: int
    skipped: int = 0
    resumed: bool = False


@dataclass
class PushReport:
    """What :func:`push_spool` did."""

    spool_dir: str
    landing: str
    batches: list[PushedBatch] = field(default_factory=list)
    pruned: int = 0
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return sum(len(b.files) for b in self.batches)

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self.batches)


def new_batch_id(now: datetime | None = None) -> str:
    """``<UTC yyyymmddTHHMMSSZ>-<6 hex>``: sortable, unique across spools, and carrying its landing day."""
    return f"{(now or datetime.now(UTC)):{_BATCH_TIME}}-{secrets.token_hex(3)}"


def batch_time(batch_id: str) -> datetime | None:
    try:
        return datetime.strptime(batch_id.split("-", 1)[0], _BATCH_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def store_options(settings: Settings) -> StoreOptions:
    """How to reach the zones' store, from ``storage:`` in the project file."""
    cfg = settings.storage
    return StoreOptions(
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=cfg.allow_insecure_http,
        ca_bundle=cfg.ca_bundle,
    )


def landing_location(root: str, day: date, batch_id: str) -> Location:
    """``<root>/landing/goodreads/<yyyy>/<mm>/<dd>/<batch_id>`` as a store location."""
    prefix = str(build_batch_prefix(Zone.LANDING, DATASET, day, batch_id))
    base = parse_location(root)
    if base.path is not None:
        return Location(base.scheme, path=base.path / prefix)
    return Location(base.scheme, bucket=base.bucket, prefix=base.child(prefix))


def claim_closed_files(layout: SpoolLayout, batch_id: str) -> Path | None:
    """Step 1: move every closed file into ``outbox/<batch_id>/``; None when there was nothing to claim."""
    files = layout.closed_files()
    if not files:
        return None
    folder = layout.outbox / batch_id
    folder.mkdir(parents=True)
    fsync_dir(layout.outbox)
    for path in files:
        path.rename(folder / path.name)
    fsync_dir(folder)
    fsync_dir(layout.closed)
    return folder


def write_batch_manifest(folder: Path) -> Manifest:
    """The local manifest of a claimed batch (rows and entity of each file); kept if already written."""
    target = folder / MANIFEST_NAME
    if target.exists():
        return Manifest.read(target)
    records = []
    for path in sorted(folder.iterdir()):
        entity = entity_of(path.name)
        if entity is None or not path.is_file():
            continue
        records.append(
            FileRecord(
                path=path.name,
                bytes=path.stat().st_size,
                sha256=sha256_file(path),
                rows=count_csv_rows(path, entity),
                table=entity.value,
            )
        )
    manifest = Manifest(files=records, meta={"dataset": DATASET, "batch_id": folder.name})
    manifest.write(target)
    return manifest


def send_batch(
    settings: Settings,
    layout: SpoolLayout,
    folder: Path,
    *,
    workers: int,
    verify: VerifyMode,
    progress: Progress,
    resumed: bool,
) -> PushedBatch | None:
    """Steps 2 and 3 for one claimed batch; None for a batch a kill left empty (removed)."""
    batch_id = folder.name
    when = batch_time(batch_id)
    if when is None:
        raise StorageError(f"{folder}: not a batch folder of this spool (name is not <time>-<hex>)")
    manifest = write_batch_manifest(folder)
    if not manifest.files:
        shutil.rmtree(folder)
        fsync_dir(layout.outbox)
        return None
    location = landing_location(settings.storage_root, when.date(), batch_id)
    store = open_store(location, store_options(settings))
    report = push_batch(
        folder,
        store,
        write_once=True,
        verify=verify,
        workers=workers,
        progress=progress,
        meta={"dataset": DATASET, "batch_id": batch_id, "source": "headwater goodreads capture"},
    )
    target = layout.pushed / batch_id
    folder.rename(target)
    os.utime(target)  # the retention clock starts now, however long the batch waited in the outbox
    fsync_dir(layout.pushed)
    fsync_dir(layout.outbox)
    return PushedBatch(
        batch_id=batch_id,
        url=str(location),
        files=tuple(f.path for f in manifest.files),
        rows=manifest.total_rows,
        bytes=manifest.total_bytes,
        skipped=report.count(FileStatus.SKIPPED),
        resumed=resumed,
    )


def prune_pushed(layout: SpoolLayout, retention_hours: float) -> int:
    """Delete ``pushed/<batch_id>`` folders pushed more than ``retention_hours`` ago (by the folder's
    modification time, set when the push completed); how many went."""
    if not layout.pushed.is_dir():
        return 0
    cutoff = time.time() - retention_hours * 3600
    pruned = 0
    for folder in sorted(layout.pushed.iterdir()):
        if folder.is_dir() and batch_time(folder.name) is not None and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder)
            pruned += 1
    return pruned


def push_spool(
    settings: Settings,
    *,
    progress: Progress | None = None,
    workers: int = 4,
    verify: VerifyMode = VerifyMode.CHECKSUM,
) -> PushReport:
    """Push every closed spool file of ``settings.goodreads.spool_dir`` to the landing zone under
    ``settings.storage.root``, verified, then move it to ``pushed/``; finish batches an earlier push left in
    ``outbox/`` first; prune ``pushed/`` past its retention. One push per spool at a time (a second waits).
    Raises the first :class:`StorageError` once every batch was tried; what failed stays in ``outbox/``."""
    started = time.monotonic()
    progress = progress or no_progress
    layout = SpoolLayout(settings.resolve(settings.goodreads.spool_dir)).create()
    report = PushReport(str(layout.root), settings.storage_root)
    errors: list[StorageError] = []
    with layout.lock("push", wait=True, what="push"):
        pending = sorted(p for p in layout.outbox.iterdir() if p.is_dir() and not p.name.startswith("."))
        resumed = {p.name for p in pending}
        claimed = claim_closed_files(layout, new_batch_id())
        if claimed is not None:
            pending.append(claimed)
        for folder in pending:
            try:
                batch = send_batch(
                    settings,
                    layout,
                    folder,
                    workers=workers,
                    verify=verify,
                    progress=progress,
                    resumed=folder.name in resumed,
                )
            except StorageError as exc:
                log.warning("push: batch %s stays in outbox: %s", folder.name, exc)
                errors.append(exc)
                continue
            if batch is not None:
                report.batches.append(batch)
        report.pruned = prune_pushed(layout, settings.goodreads.pushed_retention_hours)
    report.seconds = time.monotonic() - started
    if errors:
        more = f" (and {len(errors) - 1} more batches)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}") from errors[0]
    return report
