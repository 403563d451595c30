"""The capture's HTTP side: httpx behind the shared token bucket, ``Retry-After`` honoured, transient
failures retried with exponential backoff and full jitter (tenacity), pages parsed, counters kept."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
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

from headwater.errors import SourceError
from headwater.goodreads.capture_schema import Entity
from headwater.goodreads.ratelimit import TokenBucket
from headwater.progress import Progress

log = logging.getLogger(__name__)

THROTTLED_TASK = "429 responses"
RETRY_TASK = "retries"


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


class Stopped(Exception):
    """The run was asked to stop while a request waited."""


class Transient(Exception):
    """A failure worth retrying."""


class Counters:
    """Thread-safe run counters behind the status lines."""

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
    """One answer of a data endpoint."""

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
        counters: Counters,
        stop: threading.Event,
        progress: Progress,
        *,
        timeout: float,
        attempts: int | None,
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bucket = bucket
        self.counters = counters
        self.stop = stop
        self.progress = progress
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _sleep(self, seconds: float) -> None:
        """Backoff that a stop cuts short (the next attempt then sees the stop)."""
        self.stop.wait(seconds)

    def _attempt(self, path: str, params: dict[str, Any]) -> httpx.Response:
        while True:
            if self.stop.is_set() or not self.bucket.acquire(self.stop):
                raise Stopped
            try:
                response = self.http.get(path, params=params)
            except httpx.TransportError as exc:  # timeouts, refused and reset connections
                raise Transient(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
            self.counters.add("requests")
            if response.status_code == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                self.counters.add("throttled")
                self.progress(THROTTLED_TASK, 1)
                log.info("capture: 429 on %s, waiting %.1f s (Retry-After)", path, wait)
                self.bucket.pause_until(self.bucket.now() + wait)
                continue
            if response.status_code >= 500 or response.status_code == 408:
                raise Transient(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise SourceError(
                    f"{self.base_url}{path}: HTTP {response.status_code}: {_detail(response)}; not retried"
                )
            return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path``; 429s wait out ``Retry-After``, transient failures are retried with backoff."""
        attempts = self.attempts

        def note_retry(state: RetryCallState) -> None:
            self.counters.add("retries")
            self.progress(RETRY_TASK, 1)
            exc = state.outcome.exception() if state.outcome else None
            log.info("capture: %s%s failed (%s), retrying", self.base_url, path, exc)

        retrying = Retrying(
            stop=stop_after_attempt(attempts) if attempts else stop_never,
            wait=wait_random_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
            retry=retry_if_exception_type(Transient),
            sleep=self._sleep,
            before_sleep=note_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, path, dict(params or {}))
        except Transient as exc:
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
