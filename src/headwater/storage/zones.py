"""Zones and the object key layout: ``<zone>/<dataset>/<yyyy>/<mm>/<dd>/<batch_id>/<file>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from headwater.errors import UsageError


class Zone(StrEnum):
    """The zones under a project root. ``landing`` and ``raw`` (recording sessions) are write-once."""

    LANDING = "landing"
    RAW = "raw"
    WORKING = "working"
    PROCESSED = "processed"
    QUARANTINE = "quarantine"

    @property
    def write_once(self) -> bool:
        return self in (Zone.LANDING, Zone.RAW)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*$")


@dataclass(frozen=True)
class BatchPrefix:
    """Where one batch lives inside a store."""

    zone: Zone
    dataset: str
    day: date
    batch_id: str

    def __str__(self) -> str:
        d = self.day
        return f"{self.zone}/{self.dataset}/{d:%Y}/{d:%m}/{d:%d}/{self.batch_id}"

    def key(self, file: str) -> str:
        """The object key of ``file`` (a path relative to the batch, forward slashes)."""
        return f"{self}/{file}"


def build_batch_prefix(zone: Zone | str, dataset: str, day: date, batch_id: str) -> BatchPrefix:
    """A checked :class:`BatchPrefix`; dataset and batch id must be plain names (no ``/`` or ``..``)."""
    for what, value in (("dataset", dataset), ("batch id", batch_id)):
        if not _NAME.match(value) or ".." in value:
            raise UsageError(f"{what} {value!r}: use letters, digits, '.', '_', '=' or '-' only")
    try:
        zone = Zone(zone)
    except ValueError as exc:
        raise UsageError(f"zone {zone!r}: expected one of {', '.join(z.value for z in Zone)}") from exc
    return BatchPrefix(zone, dataset, day, batch_id)


def zone_of(prefix: str) -> Zone | None:
    """The zone a key or prefix lies in: the last path segment named after a zone, so a parent folder
    that happens to be called ``working`` does not hide the ``landing/`` below it."""
    for part in reversed(prefix.strip("/").split("/")):
        if part in {z.value for z in Zone}:
            return Zone(part)
    return None
