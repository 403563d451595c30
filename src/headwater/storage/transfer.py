"""``push``: send a folder of files to a store as one batch, verified, resumable, manifest last."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import headwater
from headwater.errors import IntegrityError, StorageError, UsageError, WriteOnceError
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest
from headwater.progress import Progress, no_progress
from headwater.storage.base import Digests, FileStatus, ObjectInfo, Store, VerifyMode
from headwater.storage.hashing import READ_BLOCK, StreamHasher
from headwater.storage.retry import RetryPolicy, call_with_retries
from headwater.storage.verify import check_object


@dataclass
class FileOutcome:
    """One file of a transfer: where it went, what it holds, and how it went."""

    path: str
    key: str
    bytes: int
    sha256: str | None = None
    status: FileStatus = FileStatus.PLANNED
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    error: StorageError | None = None

    @property
    def task(self) -> str:
        """The progress task name: the CLI's bar counts bytes for names ending in ``" bytes"``."""
        return f"{self.path} bytes"


@dataclass
class TransferReport:
    """What a push or pull did; ``manifest`` is the batch manifest written (None on a dry run)."""

    source: str
    destination: str
    files: list[FileOutcome]
    seconds: float = 0.0
    dry_run: bool = False
    manifest: Manifest | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def sent_bytes(self) -> int:
        return sum(f.bytes for f in self.files if f.status is FileStatus.VERIFIED)

    def count(self, status: FileStatus) -> int:
        return sum(1 for f in self.files if f.status is status)


def list_source_files(source: Path) -> list[Path]:
    """The files of a batch folder (or the one file given), sorted; hidden and temp files left out."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UsageError(f"{source}: no such file or folder")
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )


def hash_file(path: Path, part_size: int | None, *, store_digest: bool = False) -> Digests:
    """Digests of a local file in one pass: sha256, plus with ``store_digest`` the MD5 and the per-part MD5s
    for ``part_size`` that an S3 ETag is compared with."""
    hasher = StreamHasher(part_size=part_size, md5=store_digest)
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK):
            hasher.update(block)
    return hasher.digests()


def _accept_existing(
    store: Store, key: str, info: ObjectInfo, path: Path, mode: VerifyMode, write_once: bool
) -> Digests | None:
    """Decide about an object already under ``key``: the file's digests when the object holds these bytes
    (skip it), None when it must be sent (other bytes outside write-once zones, or our own corrupt leftover,
    which is deleted); WriteOnceError when it is other bytes in a write-once zone."""
    digests = hash_file(path, store.part_size, store_digest=store.server_digest)
    if (info.sha256 is not None and info.sha256 != digests.sha256) or (
        info.sha256 is None and info.size != digests.size
    ):
        if write_once:
            raise WriteOnceError(
                f"{store.url}/{key}: already exists with other bytes in a write-once zone; the original was kept"
            )
        return None
    try:
        check_object(store, key, digests, mode, info)
    except IntegrityError as exc:
        if info.sha256 is None:
            if write_once:
                raise WriteOnceError(
                    f"{store.url}/{key}: already exists with other bytes in a write-once zone; the original was kept"
                ) from exc
            return None
        store.delete(key)  # it carries our sha256 but not our bytes: a corrupted send of ours
        return None
    return digests


def _push_one(
    store: Store, path: Path, outcome: FileOutcome, mode: VerifyMode, write_once: bool, progress: Progress
) -> None:
    outcome.attempts += 1
    info = store.head(outcome.path)
    found = _accept_existing(store, outcome.path, info, path, mode, write_once) if info is not None else None
    if found is not None:
        outcome.sha256 = found.sha256
        outcome.status = FileStatus.SKIPPED
        progress(outcome.task, outcome.bytes, outcome.bytes)
        return
    result = store.put_file(outcome.path, path, write_once=write_once, progress=progress, task=outcome.task)
    try:
        check_object(store, outcome.path, result.digests, mode)
    except IntegrityError:
        store.delete(outcome.path)  # we just wrote it and proved it wrong: remove it so a re-send can land
        raise
    outcome.sha256 = result.digests.sha256
    outcome.status = FileStatus.VERIFIED


def _source_facts(source: Path) -> dict[str, FileRecord]:
    """Rows and table names from a manifest the source batch already carries (e.g. from ``generate``)."""
    found = source / MANIFEST_NAME if source.is_dir() else None
    if found is None or not found.is_file():
        return {}
    try:
        return {r.path: r for r in Manifest.read(found).files}
    except (ValueError, TypeError, KeyError):
        return {}


def push_batch(
    source: Path,
    store: Store,
    *,
    write_once: bool,
    verify: VerifyMode = VerifyMode.CHECKSUM,
    workers: int = 4,
    dry_run: bool = False,
    retry: RetryPolicy = RetryPolicy(),
    progress: Progress = no_progress,
    meta: dict[str, str] | None = None,
) -> TransferReport:
    """Send ``source`` (a file or a batch folder) into ``store``'s root, each file verified by ``verify``;
    files already present and verified are skipped, so re-running a killed push resumes it. The batch's
    ``manifest.json`` is written last and atomically. Raises the first failure once every file was tried."""
    started = time.monotonic()
    base = source if source.is_dir() else source.parent
    paths = [p for p in list_source_files(source) if p.relative_to(base).as_posix() != MANIFEST_NAME]
    outcomes = [FileOutcome(p.relative_to(base).as_posix(), "", p.stat().st_size) for p in paths]
    for o in outcomes:
        o.key = f"{store.url}/{o.path}"
    report = TransferReport(str(source), store.url, outcomes, dry_run=dry_run)
    if dry_run:
        for o in outcomes:
            o.status = FileStatus.SKIPPED if store.head(o.path) is not None else FileStatus.PLANNED
        report.seconds = time.monotonic() - started
        return report

    def run(path: Path, outcome: FileOutcome) -> None:
        progress(outcome.task, 0, outcome.bytes)
        try:
            call_with_retries(
                outcome.key,
                lambda: _push_one(store, path, outcome, verify, write_once, progress),
                retry,
                on_retry=lambda exc: outcome.errors.append(f"{type(exc).__name__}: {exc}"),
            )
        except StorageError as exc:
            outcome.status = FileStatus.FAILED
            outcome.errors.append(str(exc))
            outcome.error = exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(run, paths, outcomes))
    failed = [o for o in outcomes if o.status is FileStatus.FAILED]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        first = failed[0].error or StorageError(failed[0].errors[-1])
        hint = "" if isinstance(first, WriteOnceError) else "; no manifest written, re-run to resume"
        raise type(first)(f"{first}{more}{hint}") from first
    report.manifest = _write_manifest(store, source, outcomes, verify, write_once, meta or {})
    report.seconds = time.monotonic() - started
    return report


def _write_manifest(
    store: Store,
    source: Path,
    outcomes: list[FileOutcome],
    verify: VerifyMode,
    write_once: bool,
    meta: dict[str, str],
) -> Manifest:
    facts = _source_facts(source)
    records = []
    for o in outcomes:
        fact = facts.get(o.path)
        assert o.sha256 is not None
        records.append(
            FileRecord(
                path=o.path,
                bytes=o.bytes,
                sha256=o.sha256,
                rows=fact.rows if fact else None,
                table=fact.table if fact else None,
                key=o.key,
                status=FileStatus.VERIFIED.value,
            )
        )
    manifest = Manifest(
        files=records,
        meta={
            **meta,
            "destination": store.url,
            "verify": verify.value,
            "pushed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "headwater": headwater.__version__,
        },
    )
    existing = store.head(MANIFEST_NAME)
    if existing is not None:
        old = Manifest.from_json(store.get_bytes(MANIFEST_NAME).decode())
        if _same_files(old, manifest):
            return old
        if write_once:
            raise WriteOnceError(
                f"{store.url}/{MANIFEST_NAME}: a manifest with other files exists in a write-once zone; "
                "push to a new batch id"
            )
    store.put_bytes(MANIFEST_NAME, manifest.to_json().encode(), write_once=write_once and existing is None)
    return manifest


def _same_files(a: Manifest, b: Manifest) -> bool:
    def key(m: Manifest) -> str:
        return json.dumps(sorted((f.path, f.bytes, f.sha256) for f in m.files))

    return key(a) == key(b)
