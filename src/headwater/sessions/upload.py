"""Upload session folders: check, quarantine the bad ones, push the rest write-once into the raw zone, and
catalog each session only after every one of its files verified.

Order per session (a kill at any point leaves nothing the catalog points to that is not fully stored):

1. already catalogued? compare names and sizes with the catalog and skip;
2. :func:`~headwater.sessions.validate.check_session`; a bad folder is moved to quarantine with its reasons;
3. :func:`~headwater.storage.push_batch` into ``raw/sessions/YYYY/MM/DD/<session>/`` (write-once, each file
   verified, skipped on a re-run when already stored and proven, manifest last);
4. one catalog transaction: the session row (status ``uploaded``) and its file rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from headwater.config import Settings
from headwater.errors import HeadwaterError, UsageError
from headwater.progress import Progress, no_progress
from headwater.sessions.backends import SqliteBackend
from headwater.sessions.catalog import Catalog, open_catalog
from headwater.sessions.model import SESSION_NAME, FileRef, FileZone, SessionRecord, raw_prefix
from headwater.sessions.stores import prefix_store
from headwater.sessions.validate import (
    REASON_FILES,
    CheckResult,
    Rules,
    ValidSession,
    check_session,
    quarantine_session,
)
from headwater.storage import Scheme, VerifyMode, parse_location, push_batch

log = logging.getLogger(__name__)
PROGRESS_TASK = "upload bytes"


class UploadOutcome(StrEnum):
    UPLOADED = "uploaded"  # sent (or found complete), verified and catalogued by this run
    ALREADY = "already"  # catalogued before; nothing sent
    QUARANTINED = "quarantined"  # failed a check; moved to the quarantine folder
    FAILED = "failed"  # transfer or catalog failure; nothing catalogued, re-run to resume
    WAITING = "waiting"  # watch: not complete yet (no marker, not quiet long enough)
    SKIPPED = "skipped"  # not a session and not moved: holds the project's own places, or session folders


@dataclass
class SessionUpload:
    """What happened to one session folder."""

    session_id: str
    folder: Path
    outcome: UploadOutcome
    bytes: int = 0
    sent_bytes: int = 0
    files: int = 0
    seconds: float = 0.0
    message: str | None = None
    problems: tuple[str, ...] = ()
    moved_to: Path | None = None


@dataclass
class UploadReport:
    """Every session an upload or a watch pass looked at."""

    source: Path
    sessions: list[SessionUpload] = field(default_factory=list)
    seconds: float = 0.0

    def of(self, outcome: UploadOutcome) -> list[SessionUpload]:
        return [s for s in self.sessions if s.outcome is outcome]

    @property
    def ok(self) -> bool:
        return not self.of(UploadOutcome.QUARANTINED) and not self.of(UploadOutcome.FAILED)

    @property
    def sent_bytes(self) -> int:
        return sum(s.sent_bytes for s in self.sessions)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.sessions if s.outcome is UploadOutcome.UPLOADED)


def find_session_folders(
    source: Path, metadata_file: str, *, recursive: bool = False, skip: Collection[Path] = ()
) -> list[Path]:
    """The session folders in ``source``: ``source`` itself when it is one (its name is a start time and
    it holds the metadata file), else every non-hidden folder inside it, sorted by name. Files at the top
    (e.g. a generator's manifest.json) are not sessions and are left alone.

    ``recursive``: the session folders anywhere below ``source`` (a lab that files sessions by month,
    ``lab/2021-02/20210228_161221/``), sorted by name, then path. A folder is a session when its name is
    a start time or it holds the metadata file (a misnamed session is then checked, and quarantined);
    any other folder is looked into. Hidden folders, symbolic links to folders and the folders in
    ``skip`` (the project's own places) are not looked into."""
    if not source.is_dir():
        raise UsageError(f"{source}: no such folder")
    if SESSION_NAME.match(source.name) and (source / metadata_file).exists():
        return [source]
    if not recursive:
        return sorted(
            p for p in source.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.is_symlink())
        )
    avoid = {q.resolve() for q in skip}
    found: list[Path] = []
    pending = [source]
    while pending:
        folder = pending.pop()
        for p in folder.iterdir():
            if p.name.startswith(".") or not (p.is_dir() or p.is_symlink()):
                continue
            if p.is_symlink() or SESSION_NAME.match(p.name) or (p / metadata_file).exists():
                found.append(p)  # a link is checked (and refused) as a session, never followed
            elif p.resolve() not in avoid:
                pending.append(p)
    return sorted(found, key=lambda p: (p.name, str(p)))


def _local_files(folder: Path) -> dict[str, int]:
    """Names and sizes of the files a push of ``folder`` would send (regular, not hidden)."""
    out: dict[str, int] = {}
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(current) / name
            if not name.startswith(".") and path.is_file():
                out[path.relative_to(folder).as_posix()] = path.stat().st_size
    out.pop("manifest.json", None)
    return out


def _compare_with_catalog(folder: Path, record: SessionRecord) -> str | None:
    """None when the folder holds what the catalog recorded for the session, else the first difference."""
    stored = {f.key.removeprefix(record.raw_prefix + "/"): f.bytes for f in record.files_in(FileZone.RAW)}
    local = {k: v for k, v in _local_files(folder).items() if k not in REASON_FILES}
    for name in sorted(set(stored) | set(local)):
        here, there = local.get(name), stored.get(name)
        if here != there:
            what = (
                "is not in the uploaded session"
                if there is None
                else "is missing here"
                if here is None
                else f"has {here:,} bytes here, {there:,} uploaded"
            )
            return (
                f"{record.session_id}/{name}: {what}; the raw zone is write-once, so the uploaded session "
                "was kept (rename the folder if it is another session)"
            )
    return None


def _not_a_session(folder: Path, own: dict[str, Path]) -> SessionUpload | None:
    """A SKIPPED outcome for a folder that is plainly not one session and must not be moved to quarantine:
    one holding the project's own places (the source is the project folder or above it), or one holding
    session folders (the source is one level too high). None for every other folder (checked as a session)."""
    resolved = folder.resolve()
    holds = [what for what, path in own.items() if path.is_relative_to(resolved)]
    if holds:
        message = f"{folder.name}: holds this project's {' and '.join(holds)}; left in place, not a session"
    elif not SESSION_NAME.match(folder.name) and _holds_sessions(folder):
        message = (
            f"{folder.name}: holds session folders; left in place, not quarantined "
            f"(give {folder} itself as the source, or use --recursive)"
        )
    else:
        return None
    return SessionUpload(folder.name, folder, UploadOutcome.SKIPPED, message=message)


HOLDS_DEPTH = 4  # how deep a folder is searched for session folders before it is taken for one


def _holds_sessions(folder: Path, depth: int = HOLDS_DEPTH) -> bool:
    """True when ``folder`` (a real folder) has a folder named like a session in it, or in its non-hidden
    sub-folders down to ``depth`` levels (a lab filing sessions by month, or by rig and month)."""
    if folder.is_symlink() or not folder.is_dir() or depth < 1:
        return False
    try:
        children = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return False  # unreadable: the checks report it
    if any(SESSION_NAME.match(p.name) for p in children):
        return True
    return any(_holds_sessions(p, depth - 1) for p in children if not p.name.startswith("."))


def _overall(progress: Progress, grand_total: int) -> Progress:
    """Fold the storage layer's per-file progress into one bar over every session's bytes."""

    def report(task: str, advance: int, total: int | None = None) -> None:
        if advance:
            progress(PROGRESS_TASK, advance, grand_total)

    return report


class Uploader:
    """Uploads session folders for one project; reuses one catalog connection setup and rule set."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        verify: VerifyMode = VerifyMode.CHECKSUM,
        workers: int | None = None,
        marker: str | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or open_catalog(settings)
        self.verify = verify
        self.workers = workers or settings.sessions.workers
        rules = Rules.from_settings(settings.sessions, self.catalog.typed_fields())
        self.rules = replace(rules, completion_marker=marker) if marker else rules
        self.quarantine_dir = settings.resolve(settings.sessions.quarantine_dir)

    def triage(self, folder: Path) -> SessionUpload | CheckResult:
        """A finished outcome (already catalogued, differs from the catalog, quarantined) or the checked
        session, ready to push."""
        name = folder.name
        record = self.catalog.get(name) if SESSION_NAME.match(name) else None
        if record is not None:
            difference = _compare_with_catalog(folder, record)
            if difference is None:
                return SessionUpload(
                    name, folder, UploadOutcome.ALREADY, record.raw_bytes, files=record.raw_files
                )
            log.error("session %s: %s", name, difference)
            return SessionUpload(name, folder, UploadOutcome.FAILED, message=difference)
        checked = check_session(folder, self.rules)
        if checked.session is None:
            moved = quarantine_session(checked, self.quarantine_dir)
            for problem in checked.problems:
                log.error("session %s quarantined: %s", name, problem)
            return SessionUpload(
                name,
                folder,
                UploadOutcome.QUARANTINED,
                message=checked.problems[0],
                problems=checked.problems,
                moved_to=moved.moved_to,
            )
        return checked

    def push(self, session: ValidSession, progress: Progress = no_progress) -> SessionUpload:
        """Send one checked session to the raw zone and catalog it; never raises for a per-session failure."""
        started = time.monotonic()
        name = session.session_id
        prefix = raw_prefix(name)
        try:
            report = push_batch(
                session.folder,
                prefix_store(self.settings, prefix),
                write_once=True,
                verify=self.verify,
                workers=self.workers,
                progress=progress,
                meta={"dataset": "sessions", "session": name},
            )
            sent = {o.path for o in report.files}
            if sent != set(session.files):
                changed = sorted(sent ^ set(session.files))[0]
                raise UsageError(
                    f"{name}/{changed}: the folder changed between the checks and the upload; re-run when the "
                    "session is complete"
                )
            files = []
            for o in report.files:
                assert o.sha256 is not None
                files.append(FileRef(FileZone.RAW, f"{prefix}/{o.path}", o.bytes, o.sha256))
            added = self.catalog.record_upload(session, files, prefix)
        except HeadwaterError as exc:
            log.error("session %s: upload failed: %s", name, exc)
            return SessionUpload(
                name, session.folder, UploadOutcome.FAILED, session.total_bytes, message=str(exc),
                seconds=time.monotonic() - started,
            )  # fmt: skip
        outcome = UploadOutcome.UPLOADED if added else UploadOutcome.ALREADY
        log.info("session %s: %s, %d files, %d bytes", name, outcome.value, len(files), report.total_bytes)
        return SessionUpload(
            name,
            session.folder,
            outcome,
            report.total_bytes,
            sent_bytes=report.sent_bytes,
            files=len(files),
            seconds=time.monotonic() - started,
        )

    def own_paths(self) -> dict[str, Path]:
        """The project's own places a source folder may hold (a project folder given as the source): the
        project folder, the quarantine, a local storage root, the SQLite catalog. Never checked or moved."""
        own = {"project folder": self.settings.project_dir, "quarantine": self.quarantine_dir}
        root = parse_location(self.settings.storage_root)
        if root.scheme is Scheme.FILE and root.path is not None:
            own["storage root"] = root.path
        if isinstance(self.catalog.backend, SqliteBackend):
            own["session catalog"] = self.catalog.backend.path
        return {what: path.resolve() for what, path in own.items()}

    def run(self, folders: list[Path], source: Path, progress: Progress = no_progress) -> UploadReport:
        """Triage every folder, then push the valid ones one after another (files of a session in parallel)."""
        started = time.monotonic()
        report = UploadReport(source)
        ready: list[ValidSession] = []
        own = self.own_paths()
        for folder in folders:
            skipped = _not_a_session(folder, own)
            if skipped is not None:
                log.warning("%s", skipped.message)
                report.sessions.append(skipped)
                continue
            triaged = self.triage(folder)
            if isinstance(triaged, SessionUpload):
                report.sessions.append(triaged)
            else:
                assert triaged.session is not None
                ready.append(triaged.session)
        bar = _overall(progress, sum(s.total_bytes for s in ready))
        for session in ready:
            report.sessions.append(self.push(session, bar))
        report.sessions.sort(key=lambda s: s.session_id)
        report.seconds = time.monotonic() - started
        return report


def upload_sessions(
    settings: Settings,
    source: Path,
    *,
    verify: VerifyMode = VerifyMode.CHECKSUM,
    workers: int | None = None,
    progress: Progress = no_progress,
    recursive: bool = False,
) -> UploadReport:
    """Upload every session folder in ``source`` (or ``source`` itself when it is one; with ``recursive``,
    every one anywhere below it, see :func:`find_session_folders`). Bad folders are quarantined, good ones
    pushed and catalogued; see :class:`UploadReport` (``ok`` is False when any session was quarantined or
    failed). A re-run sends only what is missing."""
    uploader = Uploader(settings, verify=verify, workers=workers)
    folders = find_session_folders(
        source, settings.sessions.metadata_file, recursive=recursive, skip=uploader.own_paths().values()
    )
    return uploader.run(folders, source, progress)


def is_complete(folder: Path, marker: str | None, quiet_seconds: float, now: float | None = None) -> bool:
    """True when ``marker`` exists in the folder, or (``quiet_seconds`` > 0) nothing in it changed for that
    long. A rig that can write a completion marker should: a long pause mid-recording looks quiet."""
    if marker and (folder / marker).exists():
        return True
    if quiet_seconds <= 0:
        return False
    newest = folder.lstat().st_mtime
    for current, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, (Path(current) / name).lstat().st_mtime)
            except FileNotFoundError:
                return False  # changing under us: not quiet
    return (now if now is not None else time.time()) - newest >= quiet_seconds


def watch_sessions(
    settings: Settings,
    source: Path,
    *,
    marker: str | None = None,
    quiet_seconds: float | None = None,
    interval: float = 5.0,
    once: bool = False,
    retry_after: float = 300.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_pass: Callable[[UploadReport], None] = lambda report: None,
    progress: Progress = no_progress,
    recursive: bool = False,
) -> UploadReport:
    """Upload sessions from ``source`` as they complete (marker or quiet time, :func:`is_complete`).
    With ``once``, one pass and return; else poll every ``interval`` s until ``should_stop()``. Sessions that
    failed are retried after ``retry_after`` s. Returns everything handled (waiting ones from the last pass).
    ``recursive``: sessions anywhere below ``source`` (see :func:`find_session_folders`)."""
    cfg = settings.sessions
    marker = cfg.completion_marker if marker is None else marker
    quiet = cfg.quiet_seconds if quiet_seconds is None else quiet_seconds
    uploader = Uploader(settings, marker=marker)
    own = uploader.own_paths().values()
    total = UploadReport(source)
    done: set[str] = set()
    retry_at: dict[str, float] = {}
    first = time.monotonic()
    while True:
        started = time.monotonic()
        now = time.time()
        waiting: list[SessionUpload] = []
        batch: list[Path] = []
        for folder in find_session_folders(source, cfg.metadata_file, recursive=recursive, skip=own):
            name = folder.name
            if name in done or retry_at.get(name, 0.0) > started:
                continue
            if is_complete(folder, marker, quiet, now):
                batch.append(folder)
            else:
                waiting.append(SessionUpload(name, folder, UploadOutcome.WAITING))
        report = uploader.run(batch, source, progress) if batch else UploadReport(source)
        for item in report.sessions:
            if item.outcome is UploadOutcome.FAILED:
                retry_at[item.session_id] = time.monotonic() + retry_after
            else:
                done.add(item.session_id)
        report.sessions.extend(waiting)
        report.seconds = time.monotonic() - started
        on_pass(report)
        total.sessions = [
            s for s in total.sessions if s.outcome is not UploadOutcome.WAITING
        ] + report.sessions
        if once or should_stop():
            break
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.2, interval))
        if should_stop():
            break
    total.seconds = time.monotonic() - first
    return total
