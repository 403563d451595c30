"""Preprocessors used by the tests through ``sessions.preprocessor: tests.sessions.plugins:<name>``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from headwater.sessions.preprocess import SessionData, summarise_session

FAIL_SESSIONS: set[str] = set()
"""Session ids for which :func:`fail_some` raises (set by a test, read in the same process)."""


def fail_some(session: SessionData, out_dir: Path) -> Sequence[Path]:
    """The default preprocessor, except that it raises for the sessions in FAIL_SESSIONS."""
    if session.session_id in FAIL_SESSIONS:
        raise ValueError(f"cannot summarise {session.session_id}: amplifier saturated")
    return summarise_session(session, out_dir)


def escape_out(session: SessionData, out_dir: Path) -> Sequence[Path]:
    """Writes outside its output folder."""
    target = out_dir.parent / "elsewhere.txt"
    target.write_text("x")
    return [target]


def forget_one(session: SessionData, out_dir: Path) -> Sequence[Path]:
    """Writes two files and returns one."""
    (out_dir / "a.txt").write_text("a")
    (out_dir / "b.txt").write_text("b")
    return [out_dir / "a.txt"]


def metadata_echo(session: SessionData, out_dir: Path) -> Sequence[Path]:
    """A tiny custom preprocessor: one text file listing the metadata and the data files' sizes."""
    lines = [f"{k}={v}" for k, v in sorted(session.metadata.items())]
    lines += [f"{name}:{session.path(name).stat().st_size}" for name in session.data_files]
    out = out_dir / "echo.txt"
    out.write_text("\n".join(lines) + "\n")
    return [out]
