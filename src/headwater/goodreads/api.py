"""A local stand-in for the Goodreads API (which stopped issuing keys in December 2020): FastAPI serving the
built-in ``goodreads`` dataset at ``/authors``, ``/books``, ``/users`` and ``/reviews``.

Pages are cut by an opaque cursor over a stable order (the order the generator wrote the rows), so a client
that resumes from a cursor it saved gets exactly the records after it. Knobs for testing a client:

* a token-bucket rate limit answering ``429`` with ``Retry-After`` (whole seconds, as HTTP says);
* injected ``5xx`` answers and slow answers, drawn from a seeded generator in arrival order;
* incremental mode: only a share of each table is visible at start and more rows appear every second, so a
  long-running capture always has something new to fetch (``visible`` grows, ``total`` is the end).

``create_app(tables, options)`` is the adapter; :func:`load_tables` makes the tables with the project's
generator. Request facts (time, path, status, rows) are kept in ``app.state.log`` for tests and ``/stats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import random
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi import FastAPI, Query, Response

from headwater.errors import UsageError
from headwater.goodreads.capture_schema import DATASET, Entity, read_csv_table
from headwater.goodreads.ratelimit import TokenBucket

MAX_LIMIT = 1000
LOG_SIZE = 200_000


@dataclass(frozen=True)
class ServeOptions:
    """How the API behaves. ``rate`` None = no limit; ``initial`` is the share of each table visible at start
    and ``reveal_per_second`` the rows per entity that appear each second after it (0 = all at once)."""

    rate: float | None = None
    burst: float = 5.0
    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    seed: int = 42
    initial: float = 1.0
    reveal_per_second: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "slow_rate", "initial"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')}: expected a share between 0 and 1, got {value}")
        if self.rate is not None and self.rate <= 0:
            raise UsageError(f"--rate: expected a positive number of requests per second, got {self.rate}")
        if self.burst < 1:
            raise UsageError(f"--burst: expected at least 1, got {self.burst}")
        if self.slow_seconds < 0 or self.reveal_per_second < 0:
            raise UsageError("--slow-seconds and --reveal-per-second must not be negative")


@dataclass(frozen=True)
class RequestRecord:
    """One answered request: monotonic time on arrival and when answered, path, status, rows served."""

    arrived: float
    answered: float
    path: str
    status: int
    rows: int = 0
    offset: int | None = None
    retry_after: int | None = None


def load_tables(scale: float = 1.0, seed: int = 42, *, workers: int = 1) -> dict[Entity, pa.Table]:
    """Generate the dataset at ``scale`` times its declared rows (at least one row per table) in a temp
    folder and read it back; the rows are exactly those ``headwater generate goodreads`` writes."""
    from headwater.generate import GenerateOptions, generate, load_dataset

    if scale <= 0:
        raise UsageError(f"--scale: expected a positive factor, got {scale}")
    schema = load_dataset(DATASET)
    rows = {name: max(1, round(spec.rows * scale)) for name, spec in schema.tables.items() if spec.rows}
    with tempfile.TemporaryDirectory(prefix="headwater-goodreads-") as tmp:
        generate(schema, Path(tmp), GenerateOptions(seed=seed, table_rows=rows, workers=workers))
        return read_tables(Path(tmp))


def read_tables(folder: Path) -> dict[Entity, pa.Table]:
    """The tables of a folder written by ``headwater generate goodreads`` (``author.csv``, ...)."""
    tables = {}
    for entity in Entity:
        path = folder / f"{entity}.csv"
        if not path.is_file():
            raise UsageError(f"{path}: missing; expected the output of 'headwater generate goodreads'")
        tables[entity] = read_csv_table(path, entity)
    return tables


def source_id(tables: Mapping[Entity, pa.Table]) -> str:
    """A short fingerprint of the served data: a saved cursor is only meaningful against the same source."""
    h = hashlib.sha256()
    for entity in Entity:
        table = tables[entity]
        h.update(f"{entity}:{table.num_rows}:".encode())
        for column in (table.column(0).slice(0, 5), table.column(0).slice(max(0, table.num_rows - 5))):
            h.update(json.dumps(column.to_pylist(), default=str).encode())
    return f"{DATASET}-{h.hexdigest()[:16]}"


def encode_cursor(entity: Entity, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{entity}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(entity: Entity, cursor: str) -> int | None:
    """The offset a cursor points at, or None when it is not a cursor of ``entity``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    name, _, number = text.partition(":")
    if name != entity.value or not number.isdigit():
        return None
    return int(number)


class _Server:
    """The mutable state behind one app: visibility clock, throttle, fault generator, request log."""

    def __init__(self, tables: Mapping[Entity, pa.Table], options: ServeOptions) -> None:
        self.tables = dict(tables)
        self.options = options
        self.started = time.monotonic()
        self.bucket = TokenBucket(options.rate, options.burst) if options.rate else None
        self.rng = random.Random(options.seed)
        self.lock = threading.Lock()
        self.log: deque[RequestRecord] = deque(maxlen=LOG_SIZE)
        self.source = source_id(tables)

    def visible(self, entity: Entity) -> int:
        total = int(self.tables[entity].num_rows)
        base = math.ceil(total * self.options.initial)
        if self.options.reveal_per_second <= 0:
            return total if self.options.initial >= 1.0 else base
        grown = int((time.monotonic() - self.started) * self.options.reveal_per_second)
        return min(total, base + grown)

    def draw_faults(self) -> tuple[int | None, bool]:
        """(an injected 5xx status or None, whether to answer slowly): three draws per request, in order."""
        with self.lock:
            fail, kind, slow = self.rng.random(), self.rng.random(), self.rng.random()
        status = (503 if kind < 0.5 else 500) if fail < self.options.error_rate else None
        return status, slow < self.options.slow_rate

    def record(self, rec: RequestRecord) -> None:
        with self.lock:
            self.log.append(rec)

    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.log)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def create_app(tables: Mapping[Entity, pa.Table] | Path, options: ServeOptions | None = None) -> FastAPI:
    """The API over ``tables`` (or a folder of generated CSV files). ``app.state.server`` holds the request
    log (``.requests()``) and the visibility clock."""
    options = options or ServeOptions()
    data = read_tables(tables) if isinstance(tables, Path) else tables
    server = _Server(data, options)
    app = FastAPI(
        title="headwater goodreads API",
        description="The built-in goodreads dataset, paginated by cursor, rate limited.",
        version="1",
    )
    app.state.server = server

    @app.get("/health")
    def health() -> Response:
        """Liveness, the source fingerprint and per entity the rows visible now and in all."""
        return _json(
            {
                "status": "ok",
                "dataset": DATASET,
                "source": server.source,
                "entities": {
                    e.endpoint: {"visible": server.visible(e), "total": server.tables[e].num_rows}
                    for e in Entity
                },
            }
        )

    @app.get("/stats")
    def stats() -> Response:
        """Requests answered so far, by status."""
        log = server.requests()
        return _json(
            {
                "requests": len(log),
                "by_status": dict(Counter(str(r.status) for r in log)),
                "rows": sum(r.rows for r in log),
            }
        )

    def add_endpoint(entity: Entity) -> None:
        async def page(
            cursor: str | None = Query(None, description="next_cursor of the previous page; none = start"),
            limit: int = Query(100, ge=1, le=MAX_LIMIT, description="records per page"),
        ) -> Response:
            return await _page(server, entity, cursor, limit)

        page.__doc__ = f"{entity.endpoint.capitalize()} in a stable order, {MAX_LIMIT} at most per page."
        app.add_api_route(f"/{entity.endpoint}", page, methods=["GET"], name=entity.endpoint)

    for entity in Entity:
        add_endpoint(entity)
    return app


async def _page(server: _Server, entity: Entity, cursor: str | None, limit: int) -> Response:
    arrived = time.monotonic()
    path = f"/{entity.endpoint}"
    if server.bucket is not None:
        wait = server.bucket.try_acquire()
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            server.record(RequestRecord(arrived, time.monotonic(), path, 429, retry_after=retry_after))
            return _json(
                {"detail": f"rate limit of {server.options.rate:g} requests/s exceeded"},
                429,
                {"Retry-After": str(retry_after)},
            )
    status, slow = server.draw_faults()
    if slow:
        await asyncio.sleep(server.options.slow_seconds)
    if status is not None:
        server.record(RequestRecord(arrived, time.monotonic(), path, status))
        return _json({"detail": "injected failure"}, status)
    offset = 0 if cursor is None else decode_cursor(entity, cursor)
    visible = server.visible(entity)
    if offset is None or offset > visible:
        server.record(RequestRecord(arrived, time.monotonic(), path, 400))
        return _json({"detail": f"cursor {cursor!r} is not a cursor of {path}"}, 400)
    table = server.tables[entity]
    rows = table.slice(offset, min(limit, visible - offset))
    end = offset + rows.num_rows
    body = {
        "entity": entity.value,
        "records": rows.to_pylist(),
        "next_cursor": encode_cursor(entity, end),
        "has_more": end < visible,
        "visible": visible,
        "total": table.num_rows,
    }
    response = _json(body)
    server.record(RequestRecord(arrived, time.monotonic(), path, 200, rows.num_rows, offset))
    return response
