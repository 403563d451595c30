"""Progress reporting: the core accepts a callback, only the CLI renders it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called by long-running core functions. ``total`` may be None when unknown."""

    def __call__(self, task: str, advance: int, total: int | None = None) -> None: ...


def no_progress(task: str, advance: int, total: int | None = None) -> None:
    """The default callback: report nothing."""
