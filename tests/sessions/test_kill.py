"""kill -9 of ``headwater sessions upload`` at several points of a day's upload, then a re-run.

After every kill: the catalog shows no session whose files are not all stored with the sha256 it records, no
final key holds anything but the complete source bytes, nothing is duplicated. After the re-run: every session
is catalogued exactly once and its raw batch verifies. Once with a local raw zone and the SQLite catalog, once
with the raw zone on a moto S3 server and the catalog on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.sessions.conftest import make_project, make_sessions, s3_storage
from tests.storage.conftest import CREDENTIALS

from headwater.config import Settings
from headwater.manifest import MANIFEST_NAME
from headwater.sessions import open_catalog, upload_sessions
from headwater.sessions.model import FileZone
from headwater.sessions.stores import prefix_store
from headwater.storage import Store, VerifyMode, open_store, parse_location, verify_batch

SESSIONS = 4
SIZE = 16_000_000  # per session: 4 files of 4 MB, plus metadata.txt: 20 files in all
KILL_AFTER_FILES = (3, 5, 12, 17)  # kill once this many raw files are visible (5: a session boundary)


CHILD = """
import sys
from pathlib import Path
from headwater.config import load_settings
from headwater.sessions.upload import upload_sessions
report = upload_sessions(load_settings(Path(sys.argv[1])), Path(sys.argv[2]), workers=1)
sys.exit(0 if report.ok else 1)
"""


def run_upload(project: Path, lab: Path) -> subprocess.Popen[bytes]:
    """The uploader in a child process (what ``headwater sessions upload`` runs, without the CLI's start-up
    cost), one file at a time so kills find sessions half sent."""
    env = {**os.environ, **CREDENTIALS}
    env.pop("HEADWATER_PROJECT", None)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(project), str(lab)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stored_files(store: Store) -> int:
    """Raw data files visible under their final keys (not manifests, not temp files)."""
    return sum(
        1
        for info in store.list_keys("raw/sessions")
        if not info.key.endswith(MANIFEST_NAME) and not info.key.rsplit("/", 1)[-1].startswith(".")
    )


def source_digests(lab: Path) -> dict[str, dict[str, str]]:
    return {
        s.name: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in s.iterdir()}
        for s in lab.iterdir()
        if s.is_dir()
    }


def root_store(settings: Settings) -> Store:
    from headwater.sessions.stores import store_options

    return open_store(parse_location(settings.storage_root), store_options(settings))


def check_after_kill(settings: Settings, want: dict[str, dict[str, str]]) -> tuple[int, int]:
    """The invariants after a kill; returns (sessions catalogued, sessions with raw files but no row)."""
    store = root_store(settings)
    stored: dict[str, dict[str, str]] = {}
    for info in store.list_keys("raw/sessions"):
        session, name = info.key.split("/")[-2:]
        if name == MANIFEST_NAME:
            continue
        digest = store.read_sha256(info.key)
        assert digest == want[session][name], f"{info.key}: a final key holds a partial or other object"
        stored.setdefault(session, {})[name] = digest
    records = open_catalog(settings).list_sessions()
    assert len({r.session_id for r in records}) == len(records)
    for record in records:
        files = {f.name: f.sha256 for f in record.files_in(FileZone.RAW)}
        assert files == want[record.session_id], (
            f"{record.session_id}: catalogued with missing or other files"
        )
        assert stored.get(record.session_id) == files, f"{record.session_id}: catalogued, not all stored"
    orphans = len(set(stored) - {r.session_id for r in records})
    return len(records), orphans


def check_complete(settings: Settings, want: dict[str, dict[str, str]]) -> None:
    records = open_catalog(settings).list_sessions()
    assert sorted(r.session_id for r in records) == sorted(want)
    keys = [i.key for i in root_store(settings).list_keys("raw/sessions")]
    assert len(keys) == len(set(keys)) == sum(len(files) + 1 for files in want.values())
    check_after_kill(settings, want)  # every object read back and hashed
    for record in records:
        assert verify_batch(prefix_store(settings, record.raw_prefix), mode=VerifyMode.CHECKSUM).ok


def kill_and_rerun(tmp_path: Path, build: Any) -> None:
    lab = tmp_path / "lab"
    make_sessions(lab, count=SESSIONS, size=SIZE)
    want = source_digests(lab)
    total = sum(len(files) for files in want.values())
    half_done = 0
    for seed, after in enumerate(KILL_AFTER_FILES):
        settings = build(f"seed-{seed}")
        store = root_store(settings)
        proc = run_upload(settings.project_dir, lab)
        deadline = time.monotonic() + 60
        while proc.poll() is None and stored_files(store) < after and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0, 0.02))  # land anywhere in the next file, not at its start
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        catalogued, _ = check_after_kill(settings, want)
        half_done += catalogued < SESSIONS and stored_files(store) < total + SESSIONS
        rerun = upload_sessions(settings, lab)  # the re-run itself is not killed: run it in-process
        assert rerun.ok, f"seed {seed}: {[s.message for s in rerun.sessions]}"
        check_complete(settings, want)
    print(f"sessions kill -9: {len(KILL_AFTER_FILES)} kills, {half_done} left the day half uploaded")
    assert half_done >= len(KILL_AFTER_FILES) - 1


@pytest.mark.slow
def test_kill_9_of_a_local_upload_then_rerun(tmp_path: Path) -> None:
    kill_and_rerun(tmp_path, lambda name: make_project(tmp_path / name))


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.postgres
def test_kill_9_of_an_s3_upload_catalogued_in_postgres_then_rerun(
    tmp_path: Path, s3_env: dict[str, str], pg_catalog_schema: tuple[str, str]
) -> None:
    url, schema = pg_catalog_schema
    schemas: list[str] = []

    def build(name: str) -> Settings:
        schemas.append(f"{schema}_{name.replace('-', '_')}")
        storage = s3_storage(s3_env) | {"root": f"{s3_env['root']}/{name}"}
        return make_project(
            tmp_path / name, storage=storage, sessions={"catalog_url": url, "catalog_schema": schemas[-1]}
        )

    try:
        kill_and_rerun(tmp_path, build)
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            for name in schemas:
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
