"""Preprocessing of new sessions only: claim, run the pluggable function, store its output, record it.

The functions the orchestrator calls (a Dagster sensor + op, or the CLI)::

    pending_sessions(settings) -> list[str]                 # status uploaded (or an abandoned claim)
    preprocess_session(settings, session_id, *, force=False, alert=True) -> PreprocessResult
    preprocess_pending(settings, *, workers=1, alert=True) -> list[PreprocessResult]

``preprocess_session`` claims the session in one conditional UPDATE (uploaded/failed -> preprocessing), so it
runs exactly once however many callers race; a ready session is a no-op unless ``force``. The raw files are
checked against the catalog's sha256, the preprocessor writes into a scratch folder, its files are pushed
(verified) to ``processed/sessions/YYYY/MM/DD/<session>/`` and the catalog records them and moves the session
to ready in one transaction. On any exception the session is marked failed with the reason, ONE alert is sent
when ``alert`` (deduplicated on ``session:<id>:failed``), and a HeadwaterError is raised. An orchestrator that
retries passes ``alert=False`` except on the last attempt.

The preprocessor is ``sessions.preprocessor``: an entry point name in group ``headwater.preprocessors``
(``default`` = :func:`summarise_session`) or a dotted path ``package.module:function``. It is called as
``fn(session: SessionData, out_dir: Path) -> Sequence[Path]`` and returns the files it wrote in ``out_dir``.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from headwater.config import Settings
from headwater.errors import ConfigError, HeadwaterError, IntegrityError, PreprocessError, UsageError
from headwater.observe.alerts import Alert, send_alert
from headwater.progress import Progress, no_progress
from headwater.sessions.catalog import Catalog, Claim, open_catalog
from headwater.sessions.model import FileRef, FileZone, SessionRecord, SessionStatus, processed_prefix
from headwater.sessions.stores import prefix_location, prefix_store
from headwater.sessions.summary import summarise_session
from headwater.sessions.validate import safe_relative
from headwater.storage import FileStatus, Scheme, VerifyMode, pull_batch, push_batch
from headwater.storage.transfer import hash_file

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "headwater.preprocessors"
ALERT_STATE_DIR = ".headwater"

__all__ = [
    "PreprocessResult",
    "Preprocessor",
    "SessionData",
    "load_preprocessor",
    "pending_sessions",
    "preprocess_pending",
    "preprocess_session",
    "summarise_session",
]


@dataclass(frozen=True)
class SessionData:
    """What a preprocessor gets: the session's identity, metadata and its raw files on local disk
    (read-only; the raw zone itself when it is a local folder, else a verified scratch copy)."""

    session_id: str
    recorded_at: Any
    metadata: Mapping[str, Any]
    folder: Path
    data_files: tuple[str, ...]
    metadata_file: str

    def path(self, name: str) -> Path:
        """The local path of one of the session's files."""
        return self.folder / name


Preprocessor = Callable[[SessionData, Path], Sequence[Path]]


@dataclass(frozen=True)
class PreprocessResult:
    """What one call did. ``ran`` is False for a no-op (already ready, claimed by another worker)."""

    session_id: str
    status: SessionStatus | None
    ran: bool
    files: tuple[FileRef, ...] = ()
    seconds: float = 0.0
    message: str | None = None
    alerted: bool = False
    raw_bytes: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)  # raw (check/fetch), compute, store seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status.value if self.status else None,
            "ran": self.ran,
            "seconds": round(self.seconds, 3),
            "message": self.message,
            "alerted": self.alerted,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "files": [{"key": f.key, "uri": f.uri, "bytes": f.bytes, "sha256": f.sha256} for f in self.files],
        }


def load_preprocessor(spec: str) -> tuple[str, Preprocessor]:
    """(name, function) for ``sessions.preprocessor``: an entry point in ``headwater.preprocessors`` or a
    dotted path ``pkg.mod:func``. ConfigError naming the setting when neither resolves to a callable."""
    where = f"sessions.preprocessor {spec!r}"
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{where}: cannot import {module_name}: {exc}") from exc
        func = getattr(module, attr, None)
        if not callable(func):
            raise ConfigError(f"{where}: {module_name} has no function {attr}")
        return spec, func
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
    if found:
        try:
            func = found[0].load()
        except Exception as exc:
            raise ConfigError(f"{where}: entry point {found[0].value} does not load: {exc}") from exc
        if not callable(func):
            raise ConfigError(f"{where}: entry point {found[0].value} is not a function")
        return spec, func
    if spec == "default":  # an install without entry-point metadata still has the built-in
        return spec, summarise_session
    names = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | {"default"})
    raise ConfigError(
        f"{where}: no entry point of that name in group {ENTRY_POINT_GROUP} ({', '.join(names)}) "
        "and not a dotted path pkg.module:function"
    )


def pending_sessions(settings: Settings, *, catalog: Catalog | None = None) -> list[str]:
    """Session ids waiting for preprocessing (status uploaded, or a claim older than
    ``sessions.claim_timeout``), oldest recording first: what a sensor turns into runs."""
    catalog = catalog or open_catalog(settings)
    return catalog.pending(settings.sessions.claim_timeout)


def pending_run_keys(settings: Settings, *, catalog: Catalog | None = None) -> list[tuple[str, str]]:
    """(session id, run key) for each pending session. The key is ``session:<id>`` the first time and
    ``session:<id>:reclaim:<claimed_at>`` when an abandoned claim is picked up again, so a scheduler that
    runs each key once still retries a session whose worker died."""
    catalog = catalog or open_catalog(settings)
    return [
        (sid, f"session:{sid}" if claimed is None else f"session:{sid}:reclaim:{claimed}")
        for sid, claimed in catalog.pending_claims(settings.sessions.claim_timeout)
    ]


def preprocess_session(
    settings: Settings,
    session_id: str,
    *,
    force: bool = False,
    alert: bool = True,
    catalog: Catalog | None = None,
    progress: Progress = no_progress,
    owner: str | None = None,
) -> PreprocessResult:
    """Preprocess one session exactly once (see the module docstring). Returns a no-op result when the
    session is ready (without ``force``) or claimed by a live worker; raises a HeadwaterError (the session
    marked failed, one alert sent when ``alert``) when the preprocessor or a step after it fails. A
    preprocessor setting that does not load raises ConfigError before any session is touched.
    ``owner`` (e.g. an orchestrator's run id) lets a later attempt of the same owner take back a claim an
    earlier attempt left behind when it died (see :meth:`Catalog.claim`)."""
    name, func = load_preprocessor(settings.sessions.preprocessor)
    catalog = catalog or open_catalog(settings)
    claim = catalog.claim(session_id, force=force, claim_timeout=settings.sessions.claim_timeout, owner=owner)
    if claim.status is None:
        raise UsageError(f"session {session_id}: not in the catalog {catalog.url}")
    if not claim.claimed:
        why = {
            SessionStatus.READY: "already preprocessed; pass force to run again",
            SessionStatus.PREPROCESSING: "being preprocessed by another worker",
        }.get(claim.status, f"status {claim.status}")
        return PreprocessResult(session_id, claim.status, ran=False, message=why)
    started = time.monotonic()
    try:
        record = catalog.get(session_id)
        assert record is not None
        timings: dict[str, float] = {}
        files = _run(settings, record, func, progress, timings)
        catalog.mark_ready(claim, files, processed_prefix(session_id), name)
    except Exception as exc:
        _fail(settings, catalog, claim, name, exc, alert, time.monotonic() - started)
    seconds = time.monotonic() - started
    log.info("session %s: preprocessed by %s in %.1f s, %d files", session_id, name, seconds, len(files))
    return PreprocessResult(
        session_id,
        SessionStatus.READY,
        True,
        tuple(files),
        seconds,
        raw_bytes=record.raw_bytes,
        timings=timings,
    )


def _run(
    settings: Settings,
    record: SessionRecord,
    func: Preprocessor,
    progress: Progress,
    timings: dict[str, float],
) -> list[FileRef]:
    meta_name = settings.sessions.metadata_file
    marker = settings.sessions.completion_marker
    raw_names = sorted(f.key.removeprefix(record.raw_prefix + "/") for f in record.files_in(FileZone.RAW))
    data_files = tuple(n for n in raw_names if n not in (meta_name, marker))
    with tempfile.TemporaryDirectory(prefix=f"hw-session-{record.session_id}-") as tmp:
        scratch = Path(tmp)
        started = time.monotonic()
        folder = _local_raw(settings, record, scratch / "raw", progress)
        timings["raw"] = time.monotonic() - started
        data = SessionData(
            record.session_id, record.recorded_at, record.metadata, folder, data_files, meta_name
        )
        out_dir = scratch / "out"
        out_dir.mkdir()
        started = time.monotonic()
        returned = func(data, out_dir)
        timings["compute"] = time.monotonic() - started
        _check_outputs(record.session_id, returned, out_dir)
        prefix = processed_prefix(record.session_id)
        started = time.monotonic()
        report = push_batch(
            out_dir,
            prefix_store(settings, prefix),
            write_once=False,
            verify=VerifyMode.CHECKSUM,
            workers=settings.sessions.workers,
            meta={"dataset": "sessions", "session": record.session_id},
        )
        timings["store"] = time.monotonic() - started
    files = []
    for o in report.files:
        assert o.sha256 is not None
        key = f"{prefix}/{o.path}"
        files.append(FileRef(FileZone.PROCESSED, key, o.bytes, o.sha256, f"{settings.storage_root}/{key}"))
    return files


def _local_raw(settings: Settings, record: SessionRecord, scratch: Path, progress: Progress) -> Path:
    """A local folder with the session's raw files, each proven against the catalog's sha256: the raw zone
    itself when local (hashed in place), else a verified download into ``scratch``."""
    expected = {f.key.removeprefix(record.raw_prefix + "/"): f.sha256 for f in record.files_in(FileZone.RAW)}
    location = prefix_location(settings, record.raw_prefix)
    if location.scheme is Scheme.FILE:
        assert location.path is not None
        folder = location.path
        got = {name: hash_file(folder / name, None).sha256 for name in expected if (folder / name).is_file()}
    else:
        store = prefix_store(settings, record.raw_prefix)
        report = pull_batch(store, scratch, workers=settings.sessions.workers, progress=progress)
        folder = scratch
        got = {o.path: o.sha256 for o in report.files if o.status is not FileStatus.FAILED and o.sha256}
    for name, sha in expected.items():
        if name not in got:
            raise IntegrityError(f"{location}/{name}: a catalogued raw file is missing")
        if got[name] != sha:
            raise IntegrityError(
                f"{location}/{name}: sha256 {got[name][:16]}... differs from the catalog's {sha[:16]}...; "
                "the raw file changed after upload"
            )
    return folder


def _check_outputs(session_id: str, returned: Sequence[Path], out_dir: Path) -> None:
    """The preprocessor's files: inside ``out_dir``, regular, and exactly what it returned."""
    if isinstance(returned, str | Path) or not isinstance(returned, Sequence):
        raise PreprocessError(f"session {session_id}: the preprocessor must return a list of paths")
    root = out_dir.resolve()
    named: set[str] = set()
    for item in returned:
        path = Path(item)
        path = path if path.is_absolute() else out_dir / path
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise PreprocessError(f"session {session_id}: output {item} is outside the output folder")
        rel = path.resolve().relative_to(root).as_posix()
        if not safe_relative(rel) or any(part.startswith(".") for part in rel.split("/")):
            raise PreprocessError(f"session {session_id}: output name {rel!r} is not a plain file name")
        if not path.is_file():
            raise PreprocessError(f"session {session_id}: output {rel} was returned but not written")
        named.add(rel)
    if not named:
        raise PreprocessError(f"session {session_id}: the preprocessor wrote no files")
    present = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
    extra = sorted(present - named)
    if extra:
        raise PreprocessError(f"session {session_id}: output {extra[0]} was written but not returned")


def _fail(
    settings: Settings,
    catalog: Catalog,
    claim: Claim,
    name: str,
    exc: Exception,
    alert: bool,
    seconds: float,
) -> NoReturn:
    """Mark the session failed, alert once when asked, and raise a HeadwaterError naming the session."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {text}" if not isinstance(exc, HeadwaterError) else text
    log.error("session %s: preprocessing failed: %s", claim.session_id, reason)
    try:
        catalog.mark_failed(claim, reason)
    except HeadwaterError as mark_exc:
        log.error("session %s: could not mark failed: %s", claim.session_id, mark_exc)
    alerted = False
    if alert:
        receipt = send_alert(
            settings.alerts,
            Alert(
                title=f"Session {claim.session_id}: preprocessing failed",
                text=reason,
                pipeline="sessions",
                fields={"session": claim.session_id, "preprocessor": name, "attempt": str(claim.attempts)},
            ),
            dedupe_key=f"session:{claim.session_id}:failed",
            state_dir=settings.resolve(ALERT_STATE_DIR),
        )
        alerted = bool(receipt.delivered)
    message = f"session {claim.session_id}: preprocessing failed ({seconds:.1f} s): {reason}"
    error: HeadwaterError = (
        type(exc)(message) if isinstance(exc, HeadwaterError) else PreprocessError(message)
    )
    error.alerted = alerted  # type: ignore[attr-defined]
    raise error from exc


def preprocess_pending(
    settings: Settings,
    *,
    workers: int = 1,
    alert: bool = True,
    progress: Progress = no_progress,
) -> list[PreprocessResult]:
    """Preprocess every pending session (``workers`` at a time); a failing one is marked failed and
    reported in its result, the others go on. Never raises for a single session's failure."""
    load_preprocessor(settings.sessions.preprocessor)  # a bad setting fails here, not once per session
    catalog = open_catalog(settings)
    pending = catalog.pending(settings.sessions.claim_timeout)

    def one(session_id: str) -> PreprocessResult:
        started = time.monotonic()
        try:
            result = preprocess_session(settings, session_id, alert=alert, catalog=catalog)
        except HeadwaterError as exc:
            result = PreprocessResult(
                session_id,
                SessionStatus.FAILED,
                True,
                seconds=time.monotonic() - started,
                message=str(exc),
                alerted=bool(getattr(exc, "alerted", False)),
            )
        progress("preprocess sessions", 1, len(pending))
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, pending))
