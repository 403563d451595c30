"""Capture the Goodreads API into the local spool: rate limited, retried, exactly once across restarts.

:func:`capture` runs one thread per entity. Each asks for the next page after its checkpointed cursor,
turns the JSON records into CSV rows (vectorised, in the generator's encoding) and appends them to its
spool file at once (written and flushed within milliseconds of receipt); the main thread commits them
(fsync, then the checkpoint; see :mod:`headwater.goodreads.spool`) every ``sync_seconds``. All threads share one
:class:`~headwater.goodreads.ratelimit.TokenBucket`; a ``429`` pauses the whole bucket for ``Retry-After``.
Transient failures (5xx, 408, timeouts, refused or reset connections) are retried with exponential backoff
and jitter (tenacity); other 4xx and malformed records stop the capture with one line naming the page.
A pusher thread runs :func:`~headwater.goodreads.capture_push.push_spool` every ``push_every`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from headwater.config import Settings
from headwater.errors import HeadwaterError, SourceError
from headwater.goodreads.capture_client import (
    RETRY_TASK,
    THROTTLED_TASK,
    ApiClient,
    CaptureStatus,
    Counters,
    Stopped,
    parse_retry_after,
)
from headwater.goodreads.capture_push import PushReport, push_spool
from headwater.goodreads.capture_schema import Entity, encode_rows, parse_entities, records_to_table
from headwater.goodreads.ratelimit import TokenBucket
from headwater.goodreads.spool import EntitySpool, Recovery, SpoolLayout
from headwater.progress import Progress, no_progress

log = logging.getLogger(__name__)

__all__ = ["CaptureOptions", "CaptureReport", "CaptureStatus", "EntityReport", "capture", "parse_retry_after"]


@dataclass(frozen=True)
class CaptureOptions:
    """Knobs of one capture run; None means "from the project's ``goodreads:`` settings".

    ``attempts`` bounds tries per request for transient failures (None = keep trying, the default with
    ``follow``); ``sync_seconds`` bounds how long written records wait for their fsync and checkpoint (0 =
    after every page); ``push_every`` 0 disables pushing; ``status_every`` is how often ``on_status`` is
    called."""

    rate: float | None = None
    page_size: int | None = None
    timeout: float = 10.0
    attempts: int | None = 8
    backoff_initial: float = 0.2
    backoff_max: float = 30.0
    poll_seconds: float = 2.0
    sync_seconds: float = 0.5
    push_every: float | None = None
    push_workers: int = 4
    status_every: float = 10.0


@dataclass
class EntityReport:
    """One entity's run: rows and pages committed, files closed, where its cursor stands."""

    entity: str
    rows: int = 0
    pages: int = 0
    files_closed: int = 0
    rows_total: int = 0
    caught_up: bool = False
    visible: int | None = None
    cursor: str | None = None
    recovery: Recovery = field(default_factory=Recovery)


@dataclass
class CaptureReport:
    """What :func:`capture` did."""

    api_url: str
    spool_dir: str
    source: str
    entities: dict[str, EntityReport]
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped: bool = False
    pushes: list[PushReport] = field(default_factory=list)
    push_errors: list[str] = field(default_factory=list)
    final_push_error: str | None = None

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entities.values())


def _run_entity(
    entity: Entity,
    spool: EntitySpool,
    client: ApiClient,
    *,
    page_size: int,
    follow: bool,
    poll_seconds: float,
    halt: threading.Event,
    counters: Counters,
    progress: Progress,
    report: EntityReport,
) -> None:
    task = f"{entity} rows"
    cursor = spool.cursor
    try:
        while not halt.is_set():
            page = client.page(entity, cursor, page_size)
            n = len(page.records)
            if n:
                where = f"{client.base_url}/{entity.endpoint}?cursor={cursor or ''}"
                table = records_to_table(entity, page.records, where)
                spool.append(encode_rows(table), n, page.next_cursor)
                cursor = page.next_cursor
                report.rows += n
                report.pages += 1
                counters.add_rows(entity, n)
                progress(task, n, page.visible)
            report.visible = page.visible
            if page.has_more:
                continue
            report.caught_up = True
            if not follow:
                break
            if not spool.rotate_if_old():
                spool.sync()
            halt.wait(poll_seconds)
    except Stopped:
        pass
    finally:
        spool.close()
        report.files_closed = spool.files_closed
        report.cursor = spool.cursor
        report.rows_total = spool.checkpoint.rows


def capture(
    settings: Settings,
    api_url: str | None = None,
    *,
    entities: list[Entity] | list[str] | None = None,
    follow: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    options: CaptureOptions | None = None,
    on_status: Callable[[CaptureStatus], None] | None = None,
) -> CaptureReport:
    """Capture ``entities`` (default: all four) from the API at ``api_url`` (default ``goodreads.api_url``)
    into ``goodreads.spool_dir``. Without ``follow`` it returns once every entity has caught up with what the
    API shows; with ``follow`` it keeps polling for new records until ``stop`` is set. Open files are closed
    at the end and, unless ``push_every`` is 0, pushed to landing (also every ``push_every`` seconds during
    the run). Restarting after a crash or kill -9 resumes from the checkpoints without loss or duplicates.
    Raises :class:`SourceError` (API failed after retries), :class:`DataError` (malformed records) or
    :class:`UsageError` (spool in use, or captured from another source); what was committed stays."""
    cfg = settings.goodreads
    opts = options or CaptureOptions(attempts=None if follow else CaptureOptions.attempts)
    progress = progress or no_progress
    wanted = parse_entities([e.value if isinstance(e, Entity) else e for e in entities or []])
    url = (api_url or cfg.api_url).rstrip("/")
    push_every = cfg.push_every_seconds if opts.push_every is None else opts.push_every
    layout = SpoolLayout(settings.resolve(cfg.spool_dir)).create()
    started = time.monotonic()
    halt = threading.Event()  # set by ``stop``, by a failed thread, or at the end
    counters = Counters(wanted)
    bridge = threading.Thread(target=_bridge, args=(stop, halt), name="capture-stop", daemon=True)
    bridge.start()
    report = CaptureReport(url, str(layout.root), "", {e.value: EntityReport(e.value) for e in wanted})
    errors: list[BaseException] = []
    try:
        with layout.lock("capture", wait=False, what="capture"):
            bucket = TokenBucket(opts.rate or cfg.rate_per_second, burst=1.0)
            client = ApiClient(url, bucket, counters, halt, progress, timeout=opts.timeout,
                               attempts=opts.attempts, backoff_initial=opts.backoff_initial,
                               backoff_max=opts.backoff_max)  # fmt: skip
            try:
                report.source = str(client.health()["source"])
                _run_threads(settings, layout, client, wanted, follow, opts, push_every, halt, counters,
                             progress, on_status, report, errors)  # fmt: skip
            except Stopped:
                pass  # stopped while still waiting for the API's first answer
            finally:
                client.close()
    finally:
        halt.set()
        bridge.join()
    report.stopped = stop is not None and stop.is_set()
    report.requests, report.throttled, report.retries = (
        counters.requests,
        counters.throttled,
        counters.retries,
    )
    report.seconds = time.monotonic() - started
    if on_status is not None:
        on_status(counters.status())
    if errors:
        first = errors[0]
        if isinstance(first, HeadwaterError):
            raise first
        raise SourceError(f"{url}: capture failed: {type(first).__name__}: {first}") from first
    if report.push_errors:
        log.warning("capture: %d pushes failed; files wait in %s", len(report.push_errors), layout.root)
    return report


def _bridge(stop: threading.Event | None, halt: threading.Event) -> None:
    """Turn the caller's ``stop`` into ``halt`` (which the run also sets itself) until the run ends."""
    while not halt.wait(0.05):
        if stop is not None and stop.is_set():
            halt.set()


def _run_threads(
    settings: Settings,
    layout: SpoolLayout,
    client: ApiClient,
    wanted: list[Entity],
    follow: bool,
    opts: CaptureOptions,
    push_every: float,
    halt: threading.Event,
    counters: Counters,
    progress: Progress,
    on_status: Callable[[CaptureStatus], None] | None,
    report: CaptureReport,
    errors: list[BaseException],
) -> None:
    """Recover the spools, run one thread per entity and the pusher; the calling thread is the syncer (and
    calls ``on_status``). Failures of any thread land in ``errors``; a last push follows the threads."""
    cfg = settings.goodreads
    spools = {
        e: EntitySpool(
            layout,
            e,
            rotate_bytes=cfg.rotate_bytes,
            rotate_seconds=cfg.rotate_seconds,
            sync_seconds=opts.sync_seconds,
        )
        for e in wanted
    }
    try:
        for e, spool in spools.items():
            report.entities[e.value].recovery = spool.recover(report.source)
    except BaseException:
        for spool in spools.values():
            spool.release()
        raise

    def run(e: Entity) -> None:
        try:
            _run_entity(e, spools[e], client, page_size=opts.page_size or cfg.page_size, follow=follow,
                        poll_seconds=opts.poll_seconds, halt=halt, counters=counters, progress=progress,
                        report=report.entities[e.value])  # fmt: skip
        except BaseException as exc:
            errors.append(exc)
            halt.set()

    for task in (THROTTLED_TASK, RETRY_TASK):
        progress(task, 0)  # created here, not by two threads at once
    threads = [threading.Thread(target=run, args=(e,), name=f"capture-{e}") for e in wanted]
    pusher = _Pusher(settings, push_every, opts.push_workers, halt, counters, progress, report)
    for t in threads:
        t.start()
    pusher.start()
    next_status = time.monotonic() + opts.status_every
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        try:  # the syncer: written records become durable within sync_seconds
            for spool in spools.values():
                spool.sync_if_due()
        except OSError as exc:
            errors.append(exc)
            halt.set()
        if on_status is not None and time.monotonic() >= next_status:
            on_status(counters.status())
            next_status = time.monotonic() + opts.status_every
    for t in threads:
        t.join()
    halt.set()
    pusher.join()
    if push_every > 0:
        report.final_push_error = pusher.push_now()


class _Pusher(threading.Thread):
    """Runs :func:`push_spool` every ``every`` seconds until ``halt``; failures are kept, not raised (the
    files wait in the spool for the next push)."""

    def __init__(
        self,
        settings: Settings,
        every: float,
        workers: int,
        halt: threading.Event,
        counters: Counters,
        progress: Progress,
        report: CaptureReport,
    ) -> None:
        super().__init__(name="capture-push", daemon=True)
        self.settings = settings
        self.every = every
        self.workers = workers
        self.halt = halt
        self.counters = counters
        self.progress = progress
        self.report = report

    def run(self) -> None:
        if self.every <= 0:
            return
        while not self.halt.wait(self.every):
            self.push_now()

    def push_now(self) -> str | None:
        """One push; the error message when it failed."""
        try:
            pushed = push_spool(self.settings, workers=self.workers)
        except HeadwaterError as exc:
            self.report.push_errors.append(str(exc))
            log.warning("capture: push failed, files wait in the spool: %s", exc)
            return str(exc)
        self.report.pushes.append(pushed)
        if pushed.files:
            self.counters.add("pushed_files", pushed.files)
            self.progress("pushed files", pushed.files)
        return None
