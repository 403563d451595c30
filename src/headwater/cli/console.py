"""All screen output goes through these consoles; the core never prints."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from headwater.units import format_bytes

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


class ByteProgress:
    """A Rich progress bar driven by the core's ``Progress`` callback. A task named ``"<what> bytes"``
    counts bytes, ``"<what> rows"`` rows, anything else items; each shows its rate and ETA. Only on a
    terminal: where standard error is a file or a pipe (CI, cron, ``2> log``) Rich would print the bar's
    last frame, half-done, into it."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}"),
            TextColumn("{task.fields[rate]}", style="cyan"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not (enabled and err_console.is_terminal),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ByteProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def __call__(self, task: str, advance: int, total: int | None = None) -> None:
        what, _, unit = task.rpartition(" ")
        if unit not in ("bytes", "rows"):
            what, unit = task, "items"
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(what, total=total, done="", rate="")
        tid = self._tasks[task]
        self._progress.update(tid, advance=advance, total=total)
        t = self._progress.tasks[self._tasks_index(tid)]
        speed = t.speed or 0.0
        if unit == "bytes":
            done = format_bytes(t.completed) + (f" / {format_bytes(t.total)}" if t.total else "")
            rate = f"{format_bytes(speed)}/s"
        else:
            done = f"{t.completed:,.0f}" + (f" / {t.total:,.0f}" if t.total else "") + f" {unit}"
            rate = f"{speed:,.0f} {unit}/s"
        self._progress.update(tid, done=done, rate=rate)

    def _tasks_index(self, tid: TaskID) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == tid)
