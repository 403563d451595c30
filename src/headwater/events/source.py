"""Where monthly event files come from: ``<source>/YYYY/MM/events.csv`` in a local folder or any store URL.

A remote month is downloaded once into the project's work folder (hashed while it streams, so the
fingerprint costs no second read); a local month is read in place.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from headwater.config import Settings
from headwater.errors import DataError, StorageError, UsageError
from headwater.progress import Progress, no_progress
from headwater.storage import Scheme, Store, StoreOptions, open_store, parse_location
from headwater.storage.base import temp_path

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_KEY = re.compile(r"(?:^|/)(\d{4})/(\d{2})/events\.csv$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, written ``2021-01``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        m = _MONTH.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise UsageError(f"month {text!r}: expected YYYY-MM, e.g. 2021-01")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def key(self) -> str:
        """The month's object key under a source: ``2021/01/events.csv``."""
        return f"{self.year:04d}/{self.month:02d}/events.csv"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)


def month_range(start: str | Month, end: str | Month) -> list[Month]:
    """Every month from ``start`` to ``end`` inclusive."""
    first = start if isinstance(start, Month) else Month.parse(start)
    last = end if isinstance(end, Month) else Month.parse(end)
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    out = [first]
    while out[-1] < last:
        out.append(out[-1].next())
    return out


def store_options(settings: Settings) -> StoreOptions:
    cfg = settings.storage
    return StoreOptions(
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=cfg.allow_insecure_http,
        ca_bundle=cfg.ca_bundle,
    )


@dataclass(frozen=True)
class MonthFile:
    """One month's file as found in the source, before it is read."""

    month: Month
    source: str
    uri: str
    size: int
    fingerprint: str  # sha256 when known (manifest or object metadata), else derived from size + mtime/etag


def _source_store(settings: Settings, source: str) -> Store:
    return open_store(parse_location(source), store_options(settings))


def _local_manifest_sha(root: Path, key: str, size: int) -> str | None:
    """The sha256 a generator manifest recorded for ``key``, if the manifest agrees on the size."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError):
        return None
    for entry in files:
        if entry.get("path") == key and int(entry.get("bytes", -1)) == size:
            sha = entry.get("sha256")
            return str(sha) if sha else None
    return None


def find_month(settings: Settings, source: str, month: Month) -> MonthFile:
    """Locate ``month`` in ``source``; a clear error naming the expected key when it is absent."""
    location = parse_location(source)
    if location.scheme is Scheme.FILE:
        assert location.path is not None
        path = location.path / month.key
        if not path.is_file():
            raise DataError(
                f"{path}: no events file for {month} (expected {month.key} under {location.path})"
            )
        st = path.stat()
        sha = _local_manifest_sha(location.path, month.key, st.st_size)
        fp = sha or hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        return MonthFile(month, source, str(path), st.st_size, fp)
    store = _source_store(settings, source)
    info = store.head(month.key)
    if info is None:
        raise DataError(f"{location}/{month.key}: no events file for {month}")
    fp = info.sha256 or hashlib.sha256(f"{location}|{info.size}|{info.etag}".encode()).hexdigest()
    return MonthFile(month, source, f"{location!s}/{month.key}", info.size, fp)


def discover_months(settings: Settings, source: str) -> list[MonthFile]:
    """Every ``YYYY/MM/events.csv`` under ``source``, oldest first (what the sensor watches)."""
    location = parse_location(source)
    found: list[Month] = []
    if location.scheme is Scheme.FILE:
        assert location.path is not None
        if not location.path.is_dir():
            return []
        for path in location.path.glob("*/*/events.csv"):
            m = _KEY.search(path.relative_to(location.path).as_posix())
            if m and 1 <= int(m.group(2)) <= 12:
                found.append(Month(int(m.group(1)), int(m.group(2))))
    else:
        for info in _source_store(settings, source).list_keys(""):
            m = _KEY.search(info.key)
            if m and 1 <= int(m.group(2)) <= 12:
                found.append(Month(int(m.group(1)), int(m.group(2))))
    return [find_month(settings, source, month) for month in sorted(set(found))]


def fetch_local(
    settings: Settings, found: MonthFile, work_dir: Path, progress: Progress = no_progress
) -> tuple[Path, bool]:
    """A local path to read ``found`` from: the file itself when local, else a verified download into
    ``work_dir`` (reused when a previous download has the same fingerprint). Returns (path, downloaded)."""
    location = parse_location(found.source)
    if location.scheme is Scheme.FILE:
        return Path(found.uri), False
    target = work_dir / "download" / f"{found.month}-{found.fingerprint[:16]}.csv"
    if target.is_file() and target.stat().st_size == found.size:
        return target, False
    store = _source_store(settings, found.source)
    digests = store.get_file(found.month.key, target, progress=progress, task="download bytes")
    tmp = temp_path(target)
    size = tmp.stat().st_size
    if size != found.size:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{found.uri}: downloaded {size} bytes, the store lists {found.size}")
    if len(found.fingerprint) == 64 and store.head(found.month.key) is not None:
        info = store.head(found.month.key)
        if info is not None and info.sha256 and info.sha256 != digests.sha256:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"{found.uri}: sha256 {digests.sha256[:12]}… differs from the recorded {info.sha256[:12]}…"
            )
    tmp.replace(target)
    return target, True
