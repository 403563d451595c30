"""Sanity checks on a session folder before anything is sent, and the local quarantine for folders that fail.

Every problem is one line naming the session and the file or field: ``20210301_161221/metadata.txt: line 4:
field fatigue_level: expected an integer, got 'high'``. A folder with any problem is moved (never deleted)
to the quarantine folder with ``REASON.txt`` and ``REASON.json`` beside its files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.config import SessionsSettings
from headwater.errors import DataError
from headwater.manifest import MANIFEST_NAME, fsync_dir, write_atomic
from headwater.sessions.model import (
    FIELD_NAME,
    RESERVED_NAMES,
    FieldType,
    coerce_value,
    infer_value,
    normalise_key,
    parse_session_name,
)

MAX_METADATA_BYTES = 1 << 20
REASON_FILES = ("REASON.txt", "REASON.json")
"""Written into a quarantined folder; to be deleted when the repaired folder goes back for upload."""


@dataclass(frozen=True)
class Rules:
    """What a session folder must satisfy."""

    metadata_file: str = "metadata.txt"
    required: Mapping[str, FieldType] = field(default_factory=dict)
    typed: Mapping[str, FieldType] = field(default_factory=dict)
    max_file_bytes: int = 4 * 1024**3
    completion_marker: str = "_COMPLETE"

    @classmethod
    def from_settings(cls, settings: SessionsSettings, typed: Mapping[str, FieldType]) -> Rules:
        return cls(
            metadata_file=settings.metadata_file,
            required=dict(settings.required_fields),
            typed=dict(typed),
            max_file_bytes=settings.max_file_bytes,
            completion_marker=settings.completion_marker,
        )


@dataclass(frozen=True)
class ValidSession:
    """A folder that passed every check: its start time, parsed metadata and the files to upload."""

    session_id: str
    folder: Path
    recorded_at: dt.datetime
    metadata: dict[str, Any]
    data_files: tuple[str, ...]
    files: tuple[str, ...]
    total_bytes: int


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`check_session`: a valid session, or the problems found (one line each)."""

    folder: Path
    session: ValidSession | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.session is not None


def check_session(folder: Path, rules: Rules) -> CheckResult:
    """Check one session folder; never raises for bad content (the problems are in the result)."""
    name = folder.name
    problems: list[str] = []

    def bad(where: str | None, message: str) -> None:
        problems.append(f"{name}/{where}: {message}" if where else f"{name}: {message}")

    recorded_at: dt.datetime | None = None
    try:
        recorded_at = parse_session_name(name)
    except DataError as exc:
        problems.append(str(exc))
    if folder.is_symlink():
        bad(None, f"is a symlink to {os.readlink(folder)}; a session must be a real folder")
        return CheckResult(folder, None, tuple(problems))
    if not folder.is_dir():
        bad(None, "not a folder")
        return CheckResult(folder, None, tuple(problems))

    entries = _walk(folder, bad)
    ignored = {rules.metadata_file, rules.completion_marker}
    data_files: list[str] = []
    uploads: list[str] = []
    total = 0
    for rel, st in entries:
        if rel == MANIFEST_NAME:
            bad(rel, "reserved name (the storage layer writes the batch manifest); rename or remove it")
            continue
        if rel in REASON_FILES:
            bad(rel, "left by a quarantine; delete REASON.txt and REASON.json once the folder is repaired")
            continue
        uploads.append(rel)
        total += st.st_size
        if rel in ignored:
            continue
        data_files.append(rel)
        if st.st_size == 0:
            bad(rel, "empty file")
        elif st.st_size > rules.max_file_bytes:
            bad(
                rel,
                f"{st.st_size:,} bytes, above the limit of {rules.max_file_bytes:,} (sessions.max_file_bytes)",
            )
    if not data_files:
        bad(None, "no data files besides the metadata")

    metadata = _read_metadata(folder, rules, bad)
    if metadata is not None:
        declared = metadata.get("files")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared != len(data_files):
            bad(
                rules.metadata_file,
                f"field files: says {declared} data files, the folder holds {len(data_files)}",
            )
        if "session" in metadata:
            if str(metadata["session"]) != name:
                bad(
                    rules.metadata_file,
                    f"field session: {metadata['session']!r} differs from the folder name",
                )
            else:
                del metadata["session"]  # the folder name, kept as session_id
    if problems or recorded_at is None or metadata is None:
        return CheckResult(folder, None, tuple(problems))
    session = ValidSession(
        session_id=name,
        folder=folder,
        recorded_at=recorded_at,
        metadata=metadata,
        data_files=tuple(sorted(data_files)),
        files=tuple(sorted(uploads)),
        total_bytes=total,
    )
    return CheckResult(folder, session)


def _walk(folder: Path, bad: Any) -> list[tuple[str, os.stat_result]]:
    """Every regular file under ``folder`` (not following symlinks out), as (relative name, stat).
    Hidden entries are skipped, as the storage layer skips them; anything escaping the folder is a problem."""
    root = folder.resolve()
    found: list[tuple[str, os.stat_result]] = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        here = Path(current)
        for dirname in list(dirs):
            path = here / dirname
            rel = path.relative_to(folder).as_posix()
            if not _safe_name(dirname):
                dirs.remove(dirname)
                bad(repr(rel), "folder name with a path separator, '..' or control characters")
            elif dirname.startswith("."):
                dirs.remove(dirname)
            elif path.is_symlink():
                dirs.remove(dirname)
                bad(rel, f"symlinked folder (to {os.readlink(path)}); copy the files in instead")
        for filename in sorted(files):
            path = here / filename
            rel = path.relative_to(folder).as_posix()
            if not _safe_name(filename):
                bad(repr(rel), "file name with a path separator, '..' or control characters")
                continue
            if filename.startswith("."):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    bad(rel, f"symlink to {os.readlink(path)} points outside the session folder")
                    continue
            try:
                st = path.stat()
            except OSError as exc:
                bad(rel, f"cannot read: {exc.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                bad(rel, "not a regular file")
                continue
            found.append((rel, st))
    return sorted(found)


def _safe_name(name: str) -> bool:
    """A single path segment that cannot climb out or hide: no ``..``, separators or control characters."""
    return (
        name not in ("", ".", "..")
        and not name.startswith("..")
        and "/" not in name
        and "\\" not in name
        and not any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


def safe_relative(path: str) -> bool:
    """True for a relative ``/``-separated path whose every segment is safe (used for keys from plug-ins)."""
    return bool(path) and not path.startswith("/") and all(_safe_name(part) for part in path.split("/"))


def _read_metadata(folder: Path, rules: Rules, bad: Any) -> dict[str, Any] | None:
    meta_name = rules.metadata_file
    path = folder / meta_name
    if path.is_symlink() or not path.is_file():
        bad(meta_name, "missing metadata file" if not path.exists() else "not a regular file")
        return None
    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        bad(meta_name, f"{size:,} bytes; a metadata file is at most {MAX_METADATA_BYTES:,}")
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad(meta_name, f"not UTF-8 text (byte {exc.start})")
        return None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        sep = ":" if ":" in line else "=" if "=" in line else None
        if sep is None:
            bad(meta_name, f"line {number}: expected 'key: value', got {line[:60]!r}")
            continue
        raw_key, _, value = line.partition(sep)
        key = normalise_key(raw_key)
        if not FIELD_NAME.match(key):
            bad(meta_name, f"line {number}: key {raw_key.strip()!r} must start with a letter")
            continue
        if key in RESERVED_NAMES:
            key = f"meta_{key}"
        if key in values:
            bad(meta_name, f"line {number}: field {key} repeats line {lines[key]}")
            continue
        value = value.strip()
        if value == "":
            continue  # an empty value is an absent one
        lines[key] = number
        kind = rules.typed.get(key) or rules.required.get(key)
        if kind is None:
            values[key] = infer_value(value)
            continue
        try:
            values[key] = coerce_value(value, kind)
        except ValueError as exc:
            bad(meta_name, f"line {number}: field {key}: {exc}")
            values[key] = None
    missing = [k for k in rules.required if k not in values]
    for key in missing:
        bad(meta_name, f"field {key}: required ({rules.required[key]}) but missing")
    if any(v is None for v in values.values()):
        return None
    return values if not missing else None


@dataclass(frozen=True)
class Quarantined:
    """Where a rejected folder went and why."""

    session: str
    source: Path
    moved_to: Path
    problems: tuple[str, ...]


def quarantine_session(result: CheckResult, quarantine_dir: Path) -> Quarantined:
    """Move the rejected folder into ``quarantine_dir`` (never deleting it) and write REASON.txt/.json in it.
    A name already quarantined gets a numbered suffix, so nothing in quarantine is replaced."""
    folder = result.folder
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / folder.name
    n = 1
    while target.exists() or target.is_symlink():
        target = quarantine_dir / f"{folder.name}.{n}"
        n += 1
    try:
        shutil.move(os.fspath(folder), os.fspath(target))
    except OSError as exc:
        raise DataError(
            f"{folder}: rejected ({result.problems[0]}) but could not be moved to {target}: {exc.strerror}"
        ) from exc
    fsync_dir(quarantine_dir)
    reason = {
        "session": folder.name,
        "source": str(folder),
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "problems": list(result.problems),
    }
    if target.is_dir() and not target.is_symlink():
        write_atomic(target / "REASON.json", (json.dumps(reason, indent=2) + "\n").encode())
        write_atomic(target / "REASON.txt", ("\n".join(result.problems) + "\n").encode())
    else:
        write_atomic(target.with_name(target.name + ".REASON.json"), json.dumps(reason, indent=2).encode())
    return Quarantined(folder.name, folder, target, result.problems)
