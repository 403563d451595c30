"""The capture client against a real uvicorn server on loopback: exactly-once spooling, the rate limiter
measured at the server, Retry-After, retried failures, latency to disk, follow mode, and the push."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from headwater.errors import DataError, SourceError, UsageError
from headwater.goodreads.api import ServeOptions
from headwater.goodreads.capture import (
    CaptureOptions,
    CaptureReport,
    CaptureStatus,
    capture,
    parse_retry_after,
)
from headwater.goodreads.capture_schema import Entity, csv_header
from headwater.goodreads.ratelimit import TokenBucket
from headwater.goodreads.spool import SpoolLayout
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.storage import verify_batch
from headwater.storage.local import LocalStore
from tests.goodreads.capture_helpers import (
    api_server,
    assert_exactly_once,
    expected_lines,
    landing_batches,
    landing_file_names,
    make_settings,
    spool_files,
    spooled_lines,
    tables,
)

FAST = CaptureOptions(rate=500, page_size=200, backoff_initial=0.01, backoff_max=0.2, status_every=0.5)


def test_token_bucket_spacing_burst_and_pause() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.1)
    now[0] += 0.1
    assert bucket.try_acquire() == 0.0
    bucket.pause_until(now[0] + 3)
    assert bucket.try_acquire() == pytest.approx(3.0)
    now[0] += 3.0
    assert bucket.try_acquire() == pytest.approx(0.1)  # the bucket starts empty after a pause
    now[0] += 0.1
    assert bucket.try_acquire() == 0.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) == 1.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert parse_retry_after("soon") == 1.0


def test_capture_once_spools_every_record_exactly_once_and_pushes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rotate_bytes=40_000, push_every_seconds=0.3)
    statuses: list[CaptureStatus] = []
    with api_server() as server:
        report = capture(settings, server.url, options=FAST, on_status=statuses.append)
        again = capture(settings, server.url, options=FAST)
    assert report.rows == sum(t.num_rows for t in tables().values())
    assert all(e.caught_up for e in report.entities.values())
    assert again.rows == 0  # the checkpoints say everything is in
    spool = tmp_path / "spool"
    assert assert_exactly_once(spool) == report.rows
    layout = SpoolLayout(spool)
    assert not list(layout.open.iterdir())
    assert not layout.closed_files()
    assert statuses
    assert statuses[-1].rows == report.rows
    # every file landed once, in verified batches whose manifests carry entity and rows
    names = landing_file_names(tmp_path / "data")
    assert names == {p.name: 1 for p in spool_files(spool)}
    assert sum(len(p.batches) for p in report.pushes) == len(landing_batches(tmp_path / "data"))
    rows_by_table: dict[str, int] = {}
    for batch in landing_batches(tmp_path / "data"):
        assert verify_batch(LocalStore(batch)).ok
        for f in Manifest.read(batch / MANIFEST_NAME).files:
            assert f.table is not None
            assert f.path.startswith(f"{f.table}_")
            rows_by_table[f.table] = rows_by_table.get(f.table, 0) + (f.rows or 0)
        assert batch.relative_to(tmp_path / "data").parts[:2] == ("landing", "goodreads")
    assert rows_by_table == {e.value: tables()[e].num_rows for e in Entity}
    assert len(names) > 4  # rotated by size


def test_rate_limiter_keeps_under_the_server_limit(tmp_path: Path) -> None:
    """Client and server at 10 requests/s: the server never has to refuse, and no 1-second window at the
    server holds more than 10 requests plus the client's burst of one."""
    settings = make_settings(tmp_path)
    options = CaptureOptions(rate=10, page_size=4, status_every=60)
    with api_server(ServeOptions(rate=10, burst=2)) as server:
        report = capture(settings, server.url, entities=[Entity.AUTHOR, Entity.BOOK], options=options)
    log = [r for r in server.requests() if r.path != "/health"]
    times = sorted(r.arrived for r in log)
    assert len(times) >= 30
    assert report.throttled == 0
    assert all(r.status == 200 for r in log)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 11
    assert (len(times) - 1) / (times[-1] - times[0]) <= 10.5
    assert_exactly_once(tmp_path / "spool", [Entity.AUTHOR, Entity.BOOK])


def test_retry_after_is_honoured_by_every_thread(tmp_path: Path) -> None:
    """The server allows 4 requests/s, the client asks for 50/s: after each 429 no request of any entity
    arrives before Retry-After has passed."""
    settings = make_settings(tmp_path)
    options = CaptureOptions(rate=50, page_size=35, status_every=60)
    with api_server(ServeOptions(rate=4, burst=1)) as server:
        report = capture(settings, server.url, entities=[Entity.AUTHOR, Entity.BOOK], options=options)
    log = sorted((r for r in server.requests() if r.path != "/health"), key=lambda r: r.arrived)
    refused = [r for r in log if r.status == 429]
    assert refused
    assert report.throttled == len(refused)
    for r in refused:
        assert r.retry_after is not None
        later = [x.arrived for x in log if x.arrived > r.answered]
        if later:
            assert min(later) >= r.answered + r.retry_after - 0.05, "a request came before Retry-After"
    assert_exactly_once(tmp_path / "spool", [Entity.AUTHOR, Entity.BOOK])


def test_transient_errors_and_timeouts_are_retried(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rotate_bytes=100_000)
    options = CaptureOptions(rate=500, page_size=150, timeout=0.3, backoff_initial=0.01, backoff_max=0.1,
                             attempts=30, status_every=60)  # fmt: skip
    faults = ServeOptions(error_rate=0.25, slow_rate=0.1, slow_seconds=0.6, seed=3)
    with api_server(faults) as server:
        report = capture(settings, server.url, options=options)
    log = server.requests()
    failed = sum(1 for r in log if r.status >= 500)
    assert failed >= 3
    assert report.retries >= failed
    assert_exactly_once(tmp_path / "spool")


def test_refused_connections_are_retried_until_the_api_comes_back(tmp_path: Path) -> None:
    with api_server() as probe:
        port = probe.port
    settings = make_settings(tmp_path)
    options = CaptureOptions(rate=200, page_size=500, backoff_initial=0.05, backoff_max=0.3, attempts=100)
    result: list[CaptureReport] = []
    worker = threading.Thread(target=lambda: result.append(capture(settings, f"http://127.0.0.1:{port}",
                                                                   options=options)))  # fmt: skip
    worker.start()
    time.sleep(1.0)  # the capture meets a closed port meanwhile
    assert worker.is_alive()
    with api_server(port=port):
        worker.join(timeout=30)
    assert result
    assert result[0].retries >= 2
    assert_exactly_once(tmp_path / "spool")


def test_records_are_on_disk_within_a_second_of_receipt(tmp_path: Path) -> None:
    """A watcher polls the spool every 10 ms: the size of the review files (open and closed) and the rows the
    checkpoint commits. Each page the server answered is written within 0.5 s and committed (fsynced, in the
    checkpoint) within one second."""
    settings = make_settings(tmp_path, rotate_bytes=60_000)
    spool = tmp_path / "spool"
    header = len(csv_header(Entity.REVIEWS))
    checkpoint = SpoolLayout(spool).checkpoint_path(Entity.REVIEWS)
    seen: list[tuple[float, int, int]] = []  # (when, data bytes of reviews in the spool, committed rows)
    done = threading.Event()

    def size(paths: list[Path]) -> int:
        total = 0
        for path in paths:
            with contextlib.suppress(FileNotFoundError):  # renamed between listing and stat
                total += path.stat().st_size - header
        return total

    def committed() -> int:
        try:
            return int(json.loads(checkpoint.read_text())["rows"])
        except (FileNotFoundError, ValueError):
            return 0

    def watch() -> None:
        while not done.is_set():
            files = [p for p in spool_files(spool, include_open=True) if p.name.startswith("reviews_")]
            seen.append((time.monotonic(), size(files), committed()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with api_server() as server:
            capture(settings, server.url, entities=[Entity.REVIEWS],
                    options=CaptureOptions(rate=8, page_size=150, status_every=60))  # fmt: skip
    finally:
        done.set()
        watcher.join()
    pages = [r for r in server.requests("/reviews") if r.status == 200 and r.rows]
    assert len(pages) >= 10
    ends = list(itertools.accumulate(len(line) for line in expected_lines(Entity.REVIEWS)))
    written, durable = [], []
    for page in pages:
        assert page.offset is not None
        rows = page.offset + page.rows
        after = [s for s in seen if s[0] >= page.answered - 0.01]
        written.append(next(t for t, size_, _ in after if size_ >= ends[rows - 1]) - page.answered)
        durable.append(next(t for t, _, done_ in after if done_ >= rows) - page.answered)
    assert max(written) < 0.5, f"slowest page written after {max(written):.3f} s"
    assert max(durable) < 1.0, f"slowest page committed after {max(durable):.3f} s"


def test_follow_mode_keeps_capturing_new_records_until_stopped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rotate_seconds=0.5)
    stop = threading.Event()
    result: list[CaptureReport] = []
    options = CaptureOptions(rate=200, page_size=300, poll_seconds=0.1, status_every=60)
    want = len(expected_lines(Entity.REVIEWS))
    with api_server(ServeOptions(initial=0.3, reveal_per_second=1500)) as server:
        worker = threading.Thread(target=lambda: result.append(
            capture(settings, server.url, entities=["reviews"], follow=True, stop=stop, options=options)))  # fmt: skip
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(spooled_lines(tmp_path / "spool", Entity.REVIEWS)) < want:
            time.sleep(0.1)  # closed files only: the time rotation closes the last one while idle
        stop.set()
        worker.join(timeout=20)
    assert result
    assert result[0].stopped
    assert result[0].entities["reviews"].files_closed >= 2
    assert_exactly_once(tmp_path / "spool", [Entity.REVIEWS])


def _serve_app(app: FastAPI, tmp_path: Path, **kwargs: object) -> Exception:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with pytest.raises((DataError, SourceError)) as info:
            capture(make_settings(tmp_path), f"http://127.0.0.1:{port}", entities=["authors"], **kwargs)  # type: ignore[arg-type]
        return info.value
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_malformed_records_stop_the_capture_with_one_line_and_commit_nothing(tmp_path: Path) -> None:
    good = tables()[Entity.AUTHOR].slice(0, 3).to_pylist()
    bad = [dict(good[0]), dict(good[1]) | {"rating_count": "many"}]
    app = FastAPI()
    app.get("/health")(lambda: {"source": "bad-api"})
    app.get("/authors")(lambda cursor=None, limit=10: {"records": good if cursor is None else bad,
                                                        "next_cursor": "c2", "has_more": True})  # fmt: skip
    error = _serve_app(app, tmp_path)
    assert isinstance(error, DataError)
    message = str(error)
    assert "\n" not in message
    assert "/authors?cursor=c2" in message
    assert "record 1" in message
    assert "'rating_count'" in message
    # the first page is committed, the bad one is not
    assert len(spooled_lines(tmp_path / "spool", Entity.AUTHOR)) == 3


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    app = FastAPI()
    app.get("/health")(lambda: {"source": "x"})
    started = time.monotonic()
    error = _serve_app(app, tmp_path)
    assert isinstance(error, SourceError)
    assert "HTTP 404" in str(error)
    assert "not retried" in str(error)
    assert time.monotonic() - started < 5


def test_a_second_capture_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    held = SpoolLayout(tmp_path / "spool").lock("capture", wait=False, what="capture")
    with api_server() as server, held, pytest.raises(UsageError, match="another capture is running"):
        capture(settings, server.url, options=FAST)


def test_a_spool_refuses_another_source(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with api_server() as server:
        capture(settings, server.url, entities=["authors"], options=FAST)
    other = {e: t.slice(0, t.num_rows - 1) for e, t in tables().items()}
    with api_server(data=other) as server, pytest.raises(UsageError, match="captured from source"):
        capture(settings, server.url, entities=["authors"], options=FAST)


def test_a_follow_capture_waiting_for_a_down_api_stops_when_asked(tmp_path: Path) -> None:
    with api_server() as probe:
        port = probe.port  # closed again: every request is refused
    stop = threading.Event()
    result: list[CaptureReport] = []
    options = CaptureOptions(backoff_initial=0.05, backoff_max=0.2, attempts=None, status_every=60)
    worker = threading.Thread(target=lambda: result.append(
        capture(make_settings(tmp_path), f"http://127.0.0.1:{port}", follow=True, stop=stop, options=options)))  # fmt: skip
    worker.start()
    time.sleep(0.8)
    assert worker.is_alive()  # retrying, not giving up
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert result[0].stopped
    assert result[0].rows == 0
    assert result[0].retries >= 2
