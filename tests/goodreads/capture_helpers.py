"""Helpers for the capture tests: the dataset at a small scale (generated once per process), a real uvicorn
server in a thread on a loopback port, settings for a temp project, and readers of spool and landing."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import uvicorn

from headwater.config import Settings
from headwater.goodreads.api import RequestRecord, ServeOptions, create_app, load_tables
from headwater.goodreads.capture_schema import Entity, csv_header, csv_schema, encode_rows
from headwater.goodreads.spool import SpoolLayout, entity_of
from headwater.manifest import MANIFEST_NAME, Manifest

SCALE = 0.01  # 20 authors, 100 books, 200 users, 2,000 reviews (+1% re-sent revisions)
SEED = 7


@functools.cache
def tables(scale: float = SCALE, seed: int = SEED) -> dict[Entity, pa.Table]:
    """The served tables (wire schema), generated once per test process."""
    return load_tables(scale, seed)


def expected_lines(entity: Entity, data: Mapping[Entity, pa.Table] | None = None) -> list[bytes]:
    """The CSV rows the generator writes for ``entity``, one bytes line each (the dataset has no line breaks
    inside values)."""
    table = (data or tables())[entity]
    return encode_rows(table.cast(csv_schema(entity))).splitlines(keepends=True)


class ServerThread:
    """``create_app`` under a real uvicorn server in a daemon thread on 127.0.0.1."""

    def __init__(self, app_tables: Mapping[Entity, pa.Table], options: ServeOptions, port: int = 0) -> None:
        self.app = create_app(app_tables, options)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)
        self.port = port

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str | None = None) -> list[RequestRecord]:
        log: list[RequestRecord] = self.app.state.server.requests()
        return [r for r in log if path is None or r.path == path]


@contextmanager
def api_server(options: ServeOptions | None = None, data: Mapping[Entity, pa.Table] | None = None,
               port: int = 0) -> Iterator[ServerThread]:  # fmt: skip
    server = ServerThread(data or tables(), options or ServeOptions(), port).start()
    try:
        yield server
    finally:
        server.stop()


def make_settings(project: Path, storage_root: str | None = None, **goodreads: Any) -> Settings:
    """Settings for a project folder: zones under ``project/data`` (or ``storage_root``), spool under
    ``project/spool``; ``goodreads`` overrides that section."""
    base: dict[str, Any] = {"spool_dir": "spool", "push_every_seconds": 0}
    return Settings.model_validate(
        {
            "project_dir": project,
            "storage": {"root": storage_root or "data"},
            "goodreads": base | goodreads,
        }
    )


def spool_files(spool: Path, *, include_open: bool = False) -> list[Path]:
    """Every spool file in closed/, outbox/ and pushed/ (and open/ when asked)."""
    layout = SpoolLayout(spool)
    found = [*layout.closed.glob("*.csv"), *layout.outbox.glob("*/*.csv"), *layout.pushed.glob("*/*.csv")]
    if include_open:
        found += layout.open.glob("*.partial")
    return sorted(found)


def spooled_lines(spool: Path, entity: Entity, *, include_open: bool = False) -> list[bytes]:
    """The data rows of every spool file of ``entity``; each file must start with the header."""
    header = csv_header(entity)
    lines: list[bytes] = []
    for path in spool_files(spool, include_open=include_open):
        if not path.name.startswith(f"{entity}_"):
            continue
        data = path.read_bytes()
        if path.suffix == ".partial" and len(data) < len(header):
            continue  # just opened: its header is written with the first rows
        assert data.startswith(header), f"{path}: no header"
        lines += data[len(header) :].splitlines(keepends=True)
    return lines


def assert_exactly_once(spool: Path, entities: list[Entity] | None = None) -> int:
    """Every served row is in the spool exactly once, byte for byte, and so is every id. Returns rows."""
    total = 0
    for entity in entities or list(Entity):
        want = expected_lines(entity)
        got = spooled_lines(spool, entity)
        missing = Counter(want) - Counter(got)
        extra = Counter(got) - Counter(want)
        wrong = missing + extra
        assert not wrong, (
            f"{entity}: {sum(missing.values())} rows missing, {sum(extra.values())} extra or duplicated "
            f"(e.g. {next(iter(wrong))[:80]!r})"
        )
        ids = Counter(line.split(b",", 1)[0] for line in got)
        assert ids == Counter(line.split(b",", 1)[0] for line in want), f"{entity}: ids differ"
        total += len(got)
    return total


def landing_batches(root: Path) -> list[Path]:
    """Batch folders under ``root/landing/goodreads`` that carry a manifest."""
    return sorted(p.parent for p in (root / "landing" / "goodreads").glob(f"*/*/*/*/{MANIFEST_NAME}"))


def landing_file_names(root: Path) -> Counter[str]:
    """How often each spool file name appears in landing (visible files only)."""
    base = root / "landing" / "goodreads"
    names = [p.name for p in base.rglob("*.csv") if not p.name.startswith(".")] if base.exists() else []
    return Counter(names)


def manifest_tables(batch: Path) -> dict[str, str | None]:
    return {f.path: f.table for f in Manifest.read(batch / MANIFEST_NAME).files}


def cli(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``headwater ARGS`` in a child process, in ``cwd``, with ``env`` added to a clean environment."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")} | dict(env or {})
    code = "from headwater.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_healthy(url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            body: dict[str, Any] = httpx.get(f"{url}/health", timeout=1.0).json()
            return body
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def is_spool_name(name: str) -> bool:
    return entity_of(name) is not None
