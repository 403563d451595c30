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
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)

from headwater.config import Settings
from headwater.errors import HeadwaterError, SourceError
from headwater.goodreads.capture_push import PushReport, push_spool
from headwater.goodreads.capture_schema import Entity, encode_rows, parse_entities, records_to_table
from headwater.goodreads.ratelimit import TokenBucket
from headwater.goodreads.spool import EntitySpool, Recovery, SpoolLayout
from headwater.progress import Progress, no_progress

log = logging.getLogger(__name__)

THROTTLED_TASK = "429 responses"
RETRY_TASK = "retries"


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


@dataclass(frozen=True)
class CaptureStatus:
    """A snapshot for status lines: seconds since start, rows this run (and per second), requests, 429s,
    retries, files pushed."""

    seconds: float
    rows: int
    rows_per_second: float
    requests: int
    throttled: int
    retries: int
    pushed_files: int
    per_entity: dict[str, int]


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


class _Stopped(Exception):
    """The run was asked to stop while a request waited."""


class _Transient(Exception):
    """A failure worth retrying."""


class _Counters:
    def __init__(self, entities: list[Entity]) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.requests = 0
        self.throttled = 0
        self.retries = 0
        self.pushed_files = 0
        self.rows = dict.fromkeys((e.value for e in entities), 0)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def add_rows(self, entity: Entity, n: int) -> None:
        with self.lock:
            self.rows[entity.value] += n

    def status(self) -> CaptureStatus:
        with self.lock:
            seconds = time.monotonic() - self.started
            rows = sum(self.rows.values())
            return CaptureStatus(
                seconds,
                rows,
                rows / seconds if seconds > 0 else 0.0,
                self.requests,
                self.throttled,
                self.retries,
                self.pushed_files,
                dict(self.rows),
            )


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (fractions accepted) or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str
    has_more: bool
    visible: int | None
    total: int | None


class ApiClient:
    """httpx over the API, behind the shared token bucket, with retries for transient failures."""

    def __init__(
        self,
        base_url: str,
        bucket: TokenBucket,
        options: CaptureOptions,
        counters: _Counters,
        stop: threading.Event,
        progress: Progress,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bucket = bucket
        self.options = options
        self.counters = counters
        self.stop = stop
        self.progress = progress
        self.http = httpx.Client(base_url=self.base_url, timeout=options.timeout)

    def close(self) -> None:
        self.http.close()

    def _sleep(self, seconds: float) -> None:
        """Backoff that a stop cuts short (the next attempt then sees the stop)."""
        self.stop.wait(seconds)

    def _attempt(self, path: str, params: dict[str, Any]) -> httpx.Response:
        while True:
            if self.stop.is_set() or not self.bucket.acquire(self.stop):
                raise _Stopped
            try:
                response = self.http.get(path, params=params)
            except httpx.TransportError as exc:  # timeouts, refused and reset connections
                raise _Transient(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
            self.counters.add("requests")
            if response.status_code == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                self.counters.add("throttled")
                self.progress(THROTTLED_TASK, 1)
                log.info("capture: 429 on %s, waiting %.1f s (Retry-After)", path, wait)
                self.bucket.pause_until(self.bucket.now() + wait)
                continue
            if response.status_code >= 500 or response.status_code == 408:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise SourceError(
                    f"{self.base_url}{path}: HTTP {response.status_code}: {_detail(response)}; not retried"
                )
            return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path``; 429s wait out ``Retry-After``, transient failures are retried with backoff."""
        attempts = self.options.attempts

        def note_retry(state: RetryCallState) -> None:
            self.counters.add("retries")
            self.progress(RETRY_TASK, 1)
            exc = state.outcome.exception() if state.outcome else None
            log.info("capture: %s%s failed (%s), retrying", self.base_url, path, exc)

        retrying = Retrying(
            stop=stop_after_attempt(attempts) if attempts else stop_never,
            wait=wait_random_exponential(
                multiplier=self.options.backoff_initial, max=self.options.backoff_max
            ),
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=note_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, path, dict(params or {}))
        except _Transient as exc:
            raise SourceError(
                f"{self.base_url}{path}: {exc} (gave up after {attempts} attempts); is the API up?"
            ) from exc

    def health(self) -> dict[str, Any]:
        body = self.get("/health").json()
        if not isinstance(body, dict) or "source" not in body:
            raise SourceError(f"{self.base_url}/health: not a headwater goodreads API (no 'source' field)")
        return body

    def page(self, entity: Entity, cursor: str | None, limit: int) -> Page:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = self.get(f"/{entity.endpoint}", params)
        where = f"{self.base_url}/{entity.endpoint}?cursor={cursor or ''}"
        try:
            body = response.json()
            return Page(
                records=body["records"],
                next_cursor=str(body["next_cursor"]),
                has_more=bool(body["has_more"]),
                visible=body.get("visible"),
                total=body.get("total"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"{where}: not a page (expected records, next_cursor, has_more): {exc}"
            ) from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:200]


def _run_entity(
    entity: Entity,
    spool: EntitySpool,
    client: ApiClient,
    *,
    page_size: int,
    follow: bool,
    poll_seconds: float,
    halt: threading.Event,
    counters: _Counters,
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
    except _Stopped:
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
    halt = threading.Event()
    counters = _Counters(wanted)
    with layout.lock("capture", wait=False, what="capture"):
        bucket = TokenBucket(opts.rate or cfg.rate_per_second, burst=1.0)
        client = ApiClient(url, bucket, opts, counters, halt, progress)
        try:
            source = str(client.health()["source"])
            report = CaptureReport(
                url, str(layout.root), source, {e.value: EntityReport(e.value) for e in wanted}
            )
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
                    report.entities[e.value].recovery = spool.recover(source)
            except BaseException:
                for spool in spools.values():
                    spool.release()
                raise
            errors: list[BaseException] = []

            def run(e: Entity) -> None:
                try:
                    _run_entity(
                        e,
                        spools[e],
                        client,
                        page_size=opts.page_size or cfg.page_size,
                        follow=follow,
                        poll_seconds=opts.poll_seconds,
                        halt=halt,
                        counters=counters,
                        progress=progress,
                        report=report.entities[e.value],
                    )
                except BaseException as exc:
                    errors.append(exc)
                    halt.set()

            threads = [threading.Thread(target=run, args=(e,), name=f"capture-{e}") for e in wanted]
            pusher = _Pusher(settings, push_every, opts.push_workers, halt, counters, progress, report)
            for t in threads:
                t.start()
            pusher.start()
            next_status = time.monotonic() + opts.status_every
            while any(t.is_alive() for t in threads):
                if stop is not None and stop.is_set():
                    halt.set()
                    report.stopped = True
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
        finally:
            client.close()
        if push_every > 0:
            report.final_push_error = pusher.push_now()
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
        raise (
            first
            if isinstance(first, HeadwaterError)
            else SourceError(f"{url}: capture failed: {type(first).__name__}: {first}")
        ) from first
    if report.push_errors:
        log.warning("capture: %d pushes failed; files wait in %s", len(report.push_errors), layout.root)
    return report


class _Pusher(threading.Thread):
    """Runs :func:`push_spool` every ``every`` seconds until ``halt``; failures are kept, not raised (the
    files wait in the spool for the next push)."""

    def __init__(
        self,
        settings: Settings,
        every: float,
        workers: int,
        halt: threading.Event,
        counters: _Counters,
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
