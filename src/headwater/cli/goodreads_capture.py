"""Goodreads capture commands, added to the ``headwater goodreads`` group: serve, capture, push."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, err_console, print_json
from headwater.errors import StorageError, UsageError
from headwater.storage import VerifyMode

if TYPE_CHECKING:
    from headwater.goodreads.capture import CaptureReport, CaptureStatus

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(text: str, what: str) -> float:
    """``60s``, ``5m``, ``500ms``, ``1h`` or a plain number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not a duration; use e.g. 60s, 5m, 500ms or 0")
    return float(m.group(1)) * _UNIT[(m.group(2) or "s").lower()]


def parse_rate(text: str, what: str = "--rate") -> float:
    """``20``, ``20/s`` or ``1200/m`` requests, as requests per second."""
    number, _, per = text.strip().partition("/")
    try:
        value = float(number)
    except ValueError as exc:
        raise UsageError(f"{what}: {text!r} is not a rate; use e.g. 20/s, 1200/m or 20") from exc
    divisor = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}.get(per.strip().lower())
    if divisor is None or value <= 0:
        raise UsageError(f"{what}: {text!r} is not a positive rate; use e.g. 20/s, 1200/m or 20")
    return value / divisor


SERVE_HELP = """Serve the built-in goodreads dataset as a paginated, rate-limited HTTP API.

Endpoints: /authors, /books, /users and /reviews (?cursor=...&limit=...), /health, /stats and /docs (FastAPI + uvicorn). The data is generated at start-up at --scale times the dataset's declared rows, or read from --data (the output of 'headwater generate goodreads'). Over --rate the API answers 429 with Retry-After; --error-rate and --slow-rate inject 5xx and slow answers, seeded so a run repeats; --initial with --reveal-per-second makes new records keep appearing.

Examples:

  headwater goodreads serve                                  # http://127.0.0.1:8765, 20 requests/s
  headwater goodreads serve --scale 0.1 --rate 5/s --error-rate 0.05 --slow-rate 0.01
  headwater goodreads serve --initial 0.2 --reveal-per-second 50   # new records keep appearing
  headwater goodreads serve --data gr/ --rate 100/s --burst 20
"""


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8765,
    scale: Annotated[float, typer.Option(help="Rows as a multiple of the dataset's declared rows.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the data and of failure injection.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Serve a folder from 'headwater generate goodreads' instead.")
    ] = None,
    rate: Annotated[
        str, typer.Option(help="Requests allowed per second (e.g. 20/s, 600/m); 0 = unlimited.")
    ] = "20/s",
    burst: Annotated[float, typer.Option(help="Requests allowed at once above the rate.")] = 5.0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 500/503.")] = 0.0,
    slow_rate: Annotated[float, typer.Option(help="Share of requests answered after --slow-seconds.")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="Delay of a slow answer.")] = 2.0,
    initial: Annotated[
        float, typer.Option(help="Share of each table visible at start (incremental mode).")
    ] = 1.0,
    reveal_per_second: Annotated[
        float, typer.Option(help="Rows per entity that become visible each second after start.")
    ] = 0.0,
) -> None:
    import uvicorn

    from headwater.goodreads.api import ServeOptions, create_app, load_tables, read_tables, source_id

    settings = State.settings()
    seed = settings.generate.seed if seed is None else seed
    limit = None if rate.strip() in {"0", "0/s", "off", "none"} else parse_rate(rate)
    options = ServeOptions(
        rate=limit,
        burst=burst,
        error_rate=error_rate,
        slow_rate=slow_rate,
        slow_seconds=slow_seconds,
        seed=seed,
        initial=initial,
        reveal_per_second=reveal_per_second,
    )
    with console.status(f"generating goodreads at scale {scale:g}, seed {seed}"):
        tables = read_tables(data) if data else load_tables(scale, seed, workers=1)
    rows = ", ".join(f"{t.num_rows:,} {e.endpoint}" for e, t in tables.items())
    limit_text = f"{limit:g} requests/s, burst {burst:g}" if limit else "no rate limit"
    err_console.print(
        f"serving {rows} ({source_id(tables)}) on [bold]http://{host}:{port}[/] with {limit_text}; "
        "Ctrl-C stops",
        highlight=False,
    )
    uvicorn.run(create_app(tables, options), host=host, port=port, log_level="warning")


CAPTURE_HELP = """Capture the API into the local spool (goodreads.spool_dir), exactly once across restarts.

Each page is written to its entity's open spool file and flushed at once; every 0.5 s the file is fsynced and the entity's checkpoint (next cursor, committed length) replaced atomically. A kill -9 at any point loses nothing and stores nothing twice: the restart cuts uncommitted bytes and asks again from the checkpoint. Files rotate at goodreads.rotate_bytes / rotate_seconds into the spool's closed/, and a push every --push-every sends them to landing/goodreads/YYYY/MM/DD/BATCH/ (verified, write-once).

Requests share a token bucket at --rate (default goodreads.rate_per_second); a 429 pauses it for Retry-After; 5xx, timeouts and reset connections are retried with backoff (--retries times with --once, forever with --follow). Ctrl-C or SIGTERM stops cleanly: open files are closed and pushed.

Examples:

  headwater goodreads capture --api http://127.0.0.1:8765 --once
  headwater goodreads capture --follow --push-every 60s      # keep polling for new records
  headwater goodreads capture --entities reviews,books --rate 5/s --once --json
"""


def _status_line(status: CaptureStatus) -> None:
    per = ", ".join(f"{k} {v:,}" for k, v in status.per_entity.items())
    err_console.print(
        f"capture {status.seconds:,.0f} s: {status.rows:,} rows ({status.rows_per_second:,.0f} rows/s; {per}), "
        f"{status.requests:,} requests, {status.throttled:,} x 429, {status.retries:,} retries, "
        f"{status.pushed_files:,} files pushed",
        highlight=False,
        soft_wrap=True,
    )


def capture(
    api: Annotated[str | None, typer.Option(help="API base URL (default: goodreads.api_url).")] = None,
    entities: Annotated[
        list[str], typer.Option("--entities", "-e", help="authors, books, users, reviews (repeat or comma).")
    ] = [],  # noqa: B006
    follow: Annotated[
        bool, typer.Option("--follow/--once", help="Keep polling for new records, or stop when caught up.")
    ] = False,
    push_every: Annotated[
        str | None,
        typer.Option(help="Push closed files this often, e.g. 60s or 5m; 0 = never (default: settings)."),
    ] = None,
    rate: Annotated[str | None, typer.Option(help="Requests per second (default: settings).")] = None,
    page_size: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Records per request (default: settings).")
    ] = None,
    timeout: Annotated[str, typer.Option(help="Per-request timeout.")] = "10s",
    retries: Annotated[
        int, typer.Option(min=0, help="Retries of a transient failure per request with --once.")
    ] = 7,
    poll: Annotated[str, typer.Option(help="With --follow, wait this long when caught up.")] = "2s",
    status_every: Annotated[str, typer.Option(help="Status line interval when not on a terminal.")] = "10s",
    as_json: JsonOpt = False,
) -> None:
    from headwater.goodreads.capture import CaptureOptions
    from headwater.goodreads.capture import capture as run_capture

    settings = State.settings()
    options = CaptureOptions(
        rate=parse_rate(rate) if rate else None,
        page_size=page_size,
        timeout=parse_seconds(timeout, "--timeout"),
        attempts=None if follow else retries + 1,
        poll_seconds=parse_seconds(poll, "--poll"),
        push_every=parse_seconds(push_every, "--push-every") if push_every is not None else None,
        status_every=max(0.5, parse_seconds(status_every, "--status-every")),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    interactive = err_console.is_terminal and not as_json
    try:
        with ByteProgress(enabled=interactive) as bar:
            report = run_capture(
                settings,
                api,
                entities=entities,
                follow=follow,
                stop=stop,
                progress=bar,
                options=options,
                on_status=None if interactive else _status_line,
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if as_json:
        print_json(_capture_json(report))
    else:
        _print_capture(report)
    if report.final_push_error:
        raise StorageError(
            f"captured, but the push failed (files wait in the spool): {report.final_push_error}"
        )


def _capture_json(report: CaptureReport) -> dict[str, Any]:
    return {
        "api_url": report.api_url,
        "spool_dir": report.spool_dir,
        "source": report.source,
        "rows": report.rows,
        "seconds": round(report.seconds, 3),
        "requests": report.requests,
        "throttled": report.throttled,
        "retries": report.retries,
        "stopped": report.stopped,
        "entities": {
            name: {
                "rows": e.rows,
                "pages": e.pages,
                "files_closed": e.files_closed,
                "rows_total": e.rows_total,
                "caught_up": e.caught_up,
                "visible": e.visible,
                "truncated_bytes": e.recovery.truncated_bytes,
                "discarded_files": e.recovery.discarded_files,
            }
            for name, e in report.entities.items()
        },
        "pushed": {
            "batches": sum(len(p.batches) for p in report.pushes),
            "files": sum(p.files for p in report.pushes),
            "rows": sum(p.rows for p in report.pushes),
            "bytes": sum(p.bytes for p in report.pushes),
        },
        "push_errors": report.push_errors,
    }


def _print_capture(report: CaptureReport) -> None:
    table = Table(title=f"captured from {report.api_url} into {report.spool_dir}", title_justify="left")
    for col in ("entity", "rows", "pages", "files", "spooled in all", "caught up", "recovered"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    for name, e in report.entities.items():
        fixed = e.recovery.truncated_bytes or e.recovery.discarded_files or e.recovery.closed_by_crash
        recovered = (
            f"{e.recovery.truncated_bytes:,} B cut, {e.recovery.discarded_files} files dropped"
            if fixed
            else "-"
        )
        visible = f" of {e.visible:,}" if e.visible is not None else ""
        table.add_row(
            name,
            f"{e.rows:,}",
            f"{e.pages:,}",
            f"{e.files_closed:,}",
            f"{e.rows_total:,}{visible}",
            "yes" if e.caught_up else "no",
            recovered,
        )
    console.print(table)
    rate = report.rows / report.seconds if report.seconds else 0.0
    pushed = sum(p.files for p in report.pushes)
    console.print(
        f"{report.rows:,} rows in {report.seconds:,.1f} s ({rate:,.0f} rows/s); {report.requests:,} requests, "
        f"{report.throttled:,} x 429, {report.retries:,} retries; {pushed:,} files pushed"
        + (" (stopped)" if report.stopped else ""),
        highlight=False,
    )
    for error in report.push_errors:
        err_console.print(f"[yellow]push failed:[/] {error}", highlight=False)


PUSH_HELP = """Push closed spool files to the landing zone, verified, then keep them in the spool's pushed/.

Files go to landing/goodreads/YYYY/MM/DD/BATCH/ under storage.root (a folder, s3:// or gs://), write-once, each verified, the batch manifest (rows and entity per file) last; then they move to pushed/ for goodreads.pushed_retention_hours. A push killed at any point is finished by the next one, into the same batch, without sending any file twice. 'headwater goodreads capture' runs this every --push-every on its own.

Examples:

  headwater goodreads push
  HEADWATER_STORAGE__ROOT=s3://my-bucket/headwater headwater goodreads push --json
"""


def push(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Files sent in parallel.")] = 4,
    verify: Annotated[VerifyMode, typer.Option(help="How each upload is proven.")] = VerifyMode.CHECKSUM,
    as_json: JsonOpt = False,
) -> None:
    from headwater.goodreads.capture_push import push_spool

    settings = State.settings()
    with ByteProgress(enabled=not as_json) as bar:
        report = push_spool(settings, progress=bar, workers=workers, verify=verify)
    if as_json:
        print_json(
            {
                "spool_dir": report.spool_dir,
                "landing": report.landing,
                "seconds": round(report.seconds, 3),
                "files": report.files,
                "rows": report.rows,
                "bytes": report.bytes,
                "pruned": report.pruned,
                "batches": [
                    {
                        "batch_id": b.batch_id,
                        "url": b.url,
                        "files": list(b.files),
                        "rows": b.rows,
                        "bytes": b.bytes,
                        "skipped": b.skipped,
                        "resumed": b.resumed,
                    }
                    for b in report.batches
                ],
            }
        )
        return
    if not report.batches:
        console.print(f"nothing to push in {report.spool_dir}")
        return
    table = Table(title=f"pushed {report.spool_dir} -> {report.landing}", title_justify="left")
    for col in ("batch", "files", "rows", "bytes", "note"):
        table.add_column(col, justify="left" if col in ("batch", "note") else "right")
    for b in report.batches:
        note = ("resumed" if b.resumed else "") + (f", {b.skipped} already there" if b.skipped else "")
        table.add_row(b.batch_id, f"{len(b.files):,}", f"{b.rows:,}", f"{b.bytes:,}", note.strip(", "))
    console.print(table)
    console.print(f"{report.files:,} files, {report.rows:,} rows in {report.seconds:.1f} s", highlight=False)


def add_commands(group: typer.Typer) -> None:
    """Add serve, capture and push to ``group``."""
    group.command("serve", help=SERVE_HELP)(serve)
    group.command("capture", help=CAPTURE_HELP)(capture)
    group.command("push", help=PUSH_HELP)(push)
