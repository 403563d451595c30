"""A recorder of the calls that make writes durable, for tests of publish-by-rename."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """From now on, record ``("fsync", inode)`` for each ``os.fsync`` and ``("rename" | "replace",
    inode of the source)`` for each ``os.rename`` / ``os.replace``, in call order (the calls still run)."""
    events: list[tuple[str, int]] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def rename(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", os.stat(src).st_ino))
        real_rename(src, dst)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events
