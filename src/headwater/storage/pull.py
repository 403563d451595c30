"""``pull`` a batch to a local folder and ``verify`` a batch against its manifest."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from headwater.errors import IntegrityError, StorageError
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, fsync_dir
from headwater.progress import Progress, no_progress
from headwater.storage.base import Digests, FileStatus, Store, VerifyMode, temp_path
from headwater.storage.retry import RetryPolicy, call_with_retries
from headwater.storage.transfer import FileOutcome, TransferReport, hash_file
from headwater.storage.verify import check_object


def read_manifest(store: Store) -> Manifest | None:
    """The batch manifest at the store's root, or None when the batch has none (yet)."""
    if store.head(MANIFEST_NAME) is None:
        return None
    try:
        return Manifest.from_json(store.get_bytes(MANIFEST_NAME).decode())
    except (ValueError, TypeError, KeyError) as exc:
        raise StorageError(f"{store.url}/{MANIFEST_NAME}: not a valid manifest: {exc}") from exc


def _pull_one(
    store: Store, outcome: FileOutcome, target: Path, expected: str | None, progress: Progress
) -> None:
    outcome.attempts += 1
    digests = store.get_file(outcome.path, target, progress=progress, task=outcome.task)
    tmp = temp_path(target)
    if expected is not None and digests.sha256 != expected:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(
            f"{outcome.key}: expected sha256 {expected[:16]}..., received {digests.sha256[:16]}...; "
            "the download was discarded"
        )
    os.replace(tmp, target)
    fsync_dir(target.parent)
    outcome.sha256 = digests.sha256
    outcome.status = FileStatus.VERIFIED if expected is not None else FileStatus.UNCHECKED


def pull_batch(
    store: Store,
    dest: Path,
    *,
    workers: int = 4,
    dry_run: bool = False,
    retry: RetryPolicy = RetryPolicy(),
    progress: Progress = no_progress,
) -> TransferReport:
    """Download every file of the batch at ``store``'s root into ``dest``, each checked against the manifest's
    sha256 (or the object's sha256 metadata) before it is renamed into place; files already present with the
    right sha256 are skipped. The manifest is copied last."""
    started = time.monotonic()
    manifest = read_manifest(store)
    expected: dict[str, str | None] = {}
    outcomes: list[FileOutcome] = []
    if manifest is not None:
        for rec in manifest.files:
            expected[rec.path] = rec.sha256
            outcomes.append(FileOutcome(rec.path, f"{store.url}/{rec.path}", rec.bytes))
    else:
        for info in store.list_keys(""):
            outcomes.append(FileOutcome(info.key, f"{store.url}/{info.key}", info.size))
            fresh = store.head(info.key)
            expected[info.key] = fresh.sha256 if fresh else None
        if not outcomes:  # a mistyped batch must not "succeed" with nothing
            raise StorageError(f"{store.url}: nothing to pull, no {MANIFEST_NAME} and no files")
    report = TransferReport(store.url, str(dest), outcomes, dry_run=dry_run, manifest=manifest)
    for o in outcomes:
        target = dest / o.path
        want = expected.get(o.path)
        if target.is_file() and want is not None and hash_file(target, None).sha256 == want:
            o.status, o.sha256 = FileStatus.SKIPPED, want
    if dry_run:
        report.seconds = time.monotonic() - started
        return report

    def run(o: FileOutcome) -> None:
        if o.status is FileStatus.SKIPPED:
            progress(o.task, o.bytes, o.bytes)
            return
        progress(o.task, 0, o.bytes)
        try:
            call_with_retries(
                o.key,
                lambda: _pull_one(store, o, dest / o.path, expected.get(o.path), progress),
                retry,
                on_retry=lambda exc: o.errors.append(f"{type(exc).__name__}: {exc}"),
            )
        except StorageError as exc:
            o.status = FileStatus.FAILED
            o.errors.append(str(exc))
            o.error = exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(run, outcomes))
    failed = [o for o in outcomes if o.status is FileStatus.FAILED]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        first = failed[0].error or StorageError(failed[0].errors[-1])
        raise type(first)(f"{first}{more}") from first
    if manifest is not None:
        manifest.write(dest / MANIFEST_NAME)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class VerifyReport:
    """The result of re-checking a batch against its manifest."""

    url: str
    mode: VerifyMode
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_batch(store: Store, *, mode: VerifyMode = VerifyMode.FULL, workers: int = 4) -> VerifyReport:
    """Re-check every file listed in the batch manifest at ``store``'s root by ``mode``."""
    manifest = read_manifest(store)
    if manifest is None:
        raise StorageError(
            f"{store.url}/{MANIFEST_NAME}: no manifest; the batch is incomplete or not a batch"
        )
    report = VerifyReport(store.url, mode)

    def check(rec: FileRecord) -> str | None:
        digests = Digests(sha256=rec.sha256, md5="", size=rec.bytes)
        try:
            info = store.head(rec.path)
            if mode is VerifyMode.CHECKSUM and info is not None and info.sha256 is not None:
                # proven by read-back at push time; now: same length and the sha256 it was stored with
                if info.size != rec.bytes or info.sha256 != rec.sha256:
                    return f"{store.url}/{rec.path}: size or sha256 differ from the manifest"
                return None
            effective = VerifyMode.SIZE if mode is VerifyMode.SIZE else VerifyMode.FULL
            check_object(store, rec.path, digests, effective, info)
        except StorageError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for problem in pool.map(check, manifest.files):
            report.checked += 1
            if problem:
                report.problems.append(problem)
    return report
