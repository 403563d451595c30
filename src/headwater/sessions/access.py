"""Query and fetch for researchers: the same functions the CLI calls, usable from a notebook.

``settings`` may be a :class:`~headwater.config.Settings`, a project folder (str or Path) holding
``headwater.yaml``, or None for the nearest project above the working folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import Settings, load_settings
from headwater.errors import IntegrityError
from headwater.progress import Progress, no_progress
from headwater.sessions.catalog import open_catalog
from headwater.sessions.model import FileZone, SessionRecord, SessionStatus
from headwater.sessions.stores import prefix_store
from headwater.storage import FileStatus, pull_batch

if TYPE_CHECKING:
    import pandas as pd

SettingsLike = Settings | str | Path | None
FETCH_TASK = "fetch bytes"


def resolve_settings(settings: SettingsLike) -> Settings:
    """Settings as given, or loaded from a project folder (None: the nearest one above the working folder)."""
    if isinstance(settings, Settings):
        return settings
    return load_settings(Path(settings) if settings is not None else None)


def query(settings: SettingsLike, text: str) -> list[SessionRecord]:
    """Sessions matching ``text`` (e.g. ``"fatigue_level >= 3 and hardware_model = 'X200'"``), oldest
    recording first, each with metadata, status and file URIs (``record.processed_uris``)."""
    return open_catalog(resolve_settings(settings)).query(text)


def query_frame(settings: SettingsLike, text: str) -> pd.DataFrame:
    """:func:`query` as a pandas DataFrame: one row per session, one column per metadata field, plus
    ``processed_uris`` (a list per row)."""
    import pandas as pd

    records = query(settings, text)
    rows: list[dict[str, Any]] = []
    for r in records:
        rows.append(
            {
                "session_id": r.session_id,
                "recorded_at": r.recorded_at,
                "status": r.status.value,
                **dict(r.metadata),
                "raw_bytes": r.raw_bytes,
                "processed_uris": r.processed_uris,
            }
        )
    columns = ["session_id", "recorded_at", "status"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*columns, "raw_bytes", "processed_uris"])
    return frame


@dataclass
class FetchedSession:
    session_id: str
    folder: Path
    files: int = 0
    fetched: int = 0
    skipped: int = 0
    bytes: int = 0


@dataclass
class FetchReport:
    """What :func:`fetch` did: sessions fetched, and matching sessions not ready (nothing to fetch)."""

    destination: Path
    sessions: list[FetchedSession] = field(default_factory=list)
    not_ready: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": str(self.destination),
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "sessions": [
                {
                    "session_id": s.session_id,
                    "folder": str(s.folder),
                    "files": s.files,
                    "fetched": s.fetched,
                    "skipped": s.skipped,
                    "bytes": s.bytes,
                }
                for s in self.sessions
            ],
            "not_ready": [{"session_id": sid, "status": status} for sid, status in self.not_ready],
        }


def fetch(
    settings: SettingsLike,
    text: str,
    to: str | Path,
    *,
    workers: int | None = None,
    progress: Progress = no_progress,
) -> FetchReport:
    """Download the preprocessed files of every ready session matching ``text`` into ``to/<session>/``.
    Each file is checked against its sha256 before it is put in place; files already present and matching
    are skipped. The catalog's sha256 must equal the batch manifest's, so a file that changed since it was
    catalogued is refused (IntegrityError), never silently fetched."""
    cfg = resolve_settings(settings)
    started = time.monotonic()
    dest = Path(to)
    report = FetchReport(dest)
    records = open_catalog(cfg).query(text)
    ready = [r for r in records if r.status is SessionStatus.READY and r.processed_prefix]
    report.not_ready = [(r.session_id, r.status.value) for r in records if r not in ready]
    grand_total = sum(f.bytes for r in ready for f in r.files_in(FileZone.PROCESSED))

    def bar(task: str, advance: int, total: int | None = None) -> None:
        if advance:
            progress(FETCH_TASK, advance, grand_total)

    for record in ready:
        assert record.processed_prefix is not None
        folder = dest / record.session_id
        pulled = pull_batch(
            prefix_store(cfg, record.processed_prefix),
            folder,
            workers=workers or cfg.sessions.workers,
            progress=bar,
        )
        expected = {
            f.key.removeprefix(record.processed_prefix + "/"): f.sha256
            for f in record.files_in(FileZone.PROCESSED)
        }
        got = {o.path: o.sha256 for o in pulled.files}
        for name, sha in expected.items():
            if got.get(name) != sha:
                raise IntegrityError(
                    f"{record.session_id}/{name}: the stored file differs from the catalog's sha256 (changed "
                    "since it was catalogued, or being re-processed); fetch again later"
                )
        report.sessions.append(
            FetchedSession(
                record.session_id,
                folder,
                files=len(pulled.files),
                fetched=pulled.count(FileStatus.VERIFIED),
                skipped=pulled.count(FileStatus.SKIPPED),
                bytes=pulled.total_bytes,
            )
        )
    report.seconds = time.monotonic() - started
    return report
