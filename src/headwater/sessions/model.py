"""The plain values the sessions package speaks in: states, field types, names and catalog rows.

A *session* is a folder named by its start time (``20210301_161221``) holding binary data files and a
metadata text file (``key: value`` lines). Its raw files live write-once under
``raw/sessions/YYYY/MM/DD/<session>/``, its preprocessed files under ``processed/sessions/YYYY/MM/DD/<session>/``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from headwater.errors import DataError
from headwater.storage.zones import Zone, build_batch_prefix

SESSION_NAME = re.compile(r"^\d{8}_\d{6}$")
SESSION_NAME_FORMAT = "%Y%m%d_%H%M%S"
DATASET = "sessions"
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

FieldType = Literal["int", "float", "str", "bool", "timestamp"]
FIELD_TYPES: tuple[FieldType, ...] = ("int", "float", "str", "bool", "timestamp")

BUILTIN_TYPED_FIELDS: dict[str, FieldType] = {
    "subject_id": "str",
    "fatigue_level": "int",
    "duration_s": "float",
    "sample_rate_hz": "int",
    "channels": "int",
    "files": "int",
    "hardware_model": "str",
    "operator": "str",
    "site": "str",
    "firmware": "str",
}
"""Metadata fields with a typed column from the start (the generator's fields). Others land in the JSON
column ``extra`` until promoted (``headwater sessions promote FIELD --type float``)."""


class SessionStatus(StrEnum):
    """Where a session is in its life: uploaded -> preprocessing -> ready | failed."""

    UPLOADED = "uploaded"  # every raw file verified and catalogued; waiting for preprocessing
    PREPROCESSING = "preprocessing"  # claimed by one worker
    READY = "ready"  # preprocessed files verified in the processed zone and catalogued
    FAILED = "failed"  # preprocessing raised; ``reason`` says why


class FileZone(StrEnum):
    """Which zone a catalogued file lies in."""

    RAW = "raw"
    PROCESSED = "processed"


BASE_COLUMNS: dict[str, FieldType | Literal["date"]] = {
    "session_id": "str",
    "recorded_at": "timestamp",
    "recorded_on": "date",
    "status": "str",
    "reason": "str",
    "raw_prefix": "str",
    "raw_bytes": "int",
    "raw_files": "int",
    "processed_prefix": "str",
    "preprocessor": "str",
    "attempts": "int",
    "uploaded_at": "timestamp",
    "claimed_at": "timestamp",
    "processed_at": "timestamp",
    "updated_at": "timestamp",
}
"""Columns every session row has, whatever its metadata (and what a filter can name besides metadata)."""

RESERVED_NAMES = frozenset({*BASE_COLUMNS, "extra", "claim_id"})
"""Column names metadata cannot take: a metadata key equal to one of them is stored as ``meta_<key>``."""


def parse_session_name(name: str) -> dt.datetime:
    """The start time a session folder's name encodes; DataError unless it is a real date and time."""
    if not SESSION_NAME.match(name):
        raise DataError(f"{name}: folder name is not a session start time YYYYMMDD_HHMMSS")
    try:
        return dt.datetime.strptime(name, SESSION_NAME_FORMAT)
    except ValueError as exc:
        raise DataError(f"{name}: folder name is not a real date and time ({exc})") from exc


def normalise_key(raw: str) -> str:
    """A metadata key as a field name: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_")


def infer_value(text: str) -> Any:
    """A metadata value of a field without a declared type: int, float, bool or the text itself."""
    value = text.strip()
    if re.fullmatch(r"[-+]?\d+", value):
        return int(value)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", value):
        number = float(value)
        return number if math.isfinite(number) else value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def coerce_value(value: Any, kind: FieldType) -> Any:
    """``value`` (metadata text or an inferred JSON value) as ``kind``; ValueError when it does not fit."""
    if isinstance(value, str):
        text = value.strip()
        if kind == "str":
            return text
        if kind == "int":
            if not re.fullmatch(r"[-+]?\d+", text):
                raise ValueError(f"expected an integer, got {text!r}")
            return int(text)
        if kind == "float":
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"expected a number, got {text!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"expected a finite number, got {text!r}")
            return number
        if kind == "bool":
            if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "yes", "1")
        try:
            return dt.datetime.fromisoformat(text).replace(tzinfo=None)
        except ValueError:
            raise ValueError(f"expected a timestamp YYYY-MM-DD[THH:MM:SS], got {text!r}") from None
    if isinstance(value, bool):
        if kind == "bool":
            return value
        if kind == "str":
            return "true" if value else "false"
        raise ValueError(f"expected {kind}, got {value!r}")
    if isinstance(value, int):
        if kind in ("int", "float"):
            return value if kind == "int" else float(value)
        if kind == "str":
            return str(value)
        raise ValueError(f"expected {kind}, got {value!r}")
    if isinstance(value, float):
        if kind == "float":
            return value
        if kind == "int" and value.is_integer():
            return int(value)
        if kind == "str":
            return repr(value)
        raise ValueError(f"expected {kind}, got {value!r}")
    if isinstance(value, dt.datetime) and kind == "timestamp":
        return value
    raise ValueError(f"expected {kind}, got {value!r}")


@dataclass(frozen=True)
class FileRef:
    """One catalogued file: its key under the storage root, size, sha256 and full URI."""

    zone: FileZone
    key: str
    bytes: int
    sha256: str
    uri: str = ""

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SessionRecord:
    """A session as the catalog holds it: columns, metadata (typed and JSON merged) and files."""

    session_id: str
    recorded_at: dt.datetime
    status: SessionStatus
    reason: str | None
    raw_prefix: str
    raw_bytes: int
    raw_files: int
    processed_prefix: str | None
    attempts: int
    uploaded_at: dt.datetime
    updated_at: dt.datetime
    processed_at: dt.datetime | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[FileRef, ...] = ()

    def files_in(self, zone: FileZone) -> list[FileRef]:
        return [f for f in self.files if f.zone is zone]

    @property
    def processed_uris(self) -> list[str]:
        return [f.uri for f in self.files_in(FileZone.PROCESSED)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (timestamps as ISO text)."""

        def plain(v: Any) -> Any:
            return v.isoformat() if isinstance(v, dt.datetime | dt.date) else v

        return {
            "session_id": self.session_id,
            "recorded_at": plain(self.recorded_at),
            "status": self.status.value,
            "reason": self.reason,
            "raw_prefix": self.raw_prefix,
            "raw_bytes": self.raw_bytes,
            "raw_files": self.raw_files,
            "processed_prefix": self.processed_prefix,
            "attempts": self.attempts,
            "uploaded_at": plain(self.uploaded_at),
            "updated_at": plain(self.updated_at),
            "processed_at": plain(self.processed_at),
            "metadata": {k: plain(v) for k, v in self.metadata.items()},
            "files": [
                {"zone": f.zone.value, "key": f.key, "uri": f.uri, "bytes": f.bytes, "sha256": f.sha256}
                for f in self.files
            ],
        }


def raw_prefix(session_id: str) -> str:
    """``raw/sessions/YYYY/MM/DD/<session>`` for a session name."""
    return zone_prefix(Zone.RAW, session_id)


def processed_prefix(session_id: str) -> str:
    """``processed/sessions/YYYY/MM/DD/<session>`` for a session name."""
    return zone_prefix(Zone.PROCESSED, session_id)


def zone_prefix(zone: Zone, session_id: str) -> str:
    """``<zone>/sessions/YYYY/MM/DD/<session>``: the storage layer's batch layout, dated by the start time."""
    return str(build_batch_prefix(zone, DATASET, parse_session_name(session_id).date(), session_id))
