"""kill -9 of the capture and of the push, at seeded random points, against a real API server: after the
restarts every served record is in the spool exactly once (ids and full rows), and landing holds every
spool file exactly once in verified batches."""

from __future__ import annotations

import hashlib
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.goodreads.api import ServeOptions
from headwater.goodreads.capture_push import push_spool
from headwater.goodreads.capture_schema import Entity, csv_header
from headwater.goodreads.spool import SpoolLayout, spool_file_name
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.storage import verify_batch
from headwater.storage.local import LocalStore
from tests.goodreads.capture_helpers import (
    api_server,
    assert_exactly_once,
    cli,
    expected_lines,
    landing_batches,
    landing_file_names,
    make_settings,
    spool_files,
)

pytestmark = pytest.mark.slow

KILLS = 5


def assert_landing_matches_spool(root: Path, spool: Path) -> None:
    """Every spool file is in landing exactly once with the same bytes, in batches whose manifests verify,
    and the manifests count every row of every entity once."""
    names = landing_file_names(root)
    local = {p.name: p for p in spool_files(spool)}
    assert set(names.values()) <= {1}, [n for n, c in names.items() if c > 1]
    assert set(names) == set(local)
    rows: dict[str, int] = {}
    for batch in landing_batches(root):
        assert verify_batch(LocalStore(batch)).ok, batch
        for f in Manifest.read(batch / MANIFEST_NAME).files:
            assert f.sha256 == hashlib.sha256(local[f.path].read_bytes()).hexdigest()
            assert f.table is not None
            rows[f.table] = rows.get(f.table, 0) + (f.rows or 0)
    assert rows == {e.value: len(expected_lines(e)) for e in Entity}


def write_closed_files(layout: SpoolLayout, rows_per_file: int) -> int:
    """Closed spool files holding every served row, ``rows_per_file`` each, as a capture leaves them."""
    count = 0
    for entity in Entity:
        lines = expected_lines(entity)
        for seq, start in enumerate(range(0, len(lines), rows_per_file), 1):
            name = spool_file_name(entity, datetime(2024, 5, 1, tzinfo=UTC), seq)
            (layout.closed / name).write_bytes(
                csv_header(entity) + b"".join(lines[start : start + rows_per_file])
            )
            count += 1
    return count


def test_kill_9_of_the_capture_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Five seeded kill points, each drawn after the child has started talking to the API; the child pushes
    every 0.3 s, so kills also land in rotations and pushes. A final run completes; then the spool (closed
    and pushed files) holds every served row exactly once and landing every file exactly once."""
    env = {
        "HEADWATER_GOODREADS__SPOOL_DIR": "spool",
        "HEADWATER_GOODREADS__ROTATE_BYTES": "20000",
        "HEADWATER_STORAGE__ROOT": "data",
    }
    rng = random.Random(20240229)
    killed = 0
    truncated = 0
    with api_server(ServeOptions(error_rate=0.03, seed=5)) as server:
        args = ("goodreads", "capture", "--api", server.url, "--once", "--rate", "25", "--page-size", "20",
                "--push-every", "0.3s", "--json")  # fmt: skip
        for _ in range(KILLS):
            before = len(server.requests())
            proc = cli(tmp_path, *args, env=env)
            deadline = time.monotonic() + 60
            while len(server.requests()) < before + 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.05, 0.7))  # 5 x 0.7 s < the ~4.8 s the whole capture takes
            if proc.poll() is None:
                proc.kill()
                killed += 1
            proc.communicate(timeout=30)
            layout = SpoolLayout(tmp_path / "spool")
            truncated += sum(1 for p in layout.open.glob("*.partial"))
        final = cli(tmp_path, *args, env=env)
        _out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
    print(f"capture kill -9: {killed} of {KILLS} runs killed midway, {truncated} open files left behind")
    assert killed == KILLS
    spool = tmp_path / "spool"
    assert_exactly_once(spool)
    layout = SpoolLayout(spool)
    assert not list(layout.open.iterdir())
    assert not layout.closed_files()
    assert not list(layout.outbox.iterdir())
    assert_landing_matches_spool(tmp_path / "data", spool)


def push_started(layout: SpoolLayout, landing: Path, landed: bool) -> bool:
    """The push claimed files (or, with ``landed``, its first file is in landing)."""
    if landed:
        return sum(landing_file_names(landing).values()) > 0
    return any(layout.outbox.iterdir())


def test_kill_9_of_the_push_at_random_points_lands_each_file_once(tmp_path: Path) -> None:
    """A spool of ~70 small closed files is pushed by the CLI (one worker, so files land one by one) and
    killed at a seeded point after it claimed them or after its first file landed; a restarted push finishes it. Five seeds, each on a fresh
    copy of the spool and an empty landing zone."""
    template = tmp_path / "template"
    files = write_closed_files(SpoolLayout(template / "spool").create(), rows_per_file=40)
    assert files > 60
    probe = tmp_path / "probe"
    shutil.copytree(template, probe)
    send_time = push_spool(make_settings(probe), workers=1).seconds
    rng = random.Random(4242)
    interrupted = partly_landed = 0
    for seed in range(KILLS):
        project = tmp_path / f"run-{seed}"
        shutil.copytree(template, project)
        layout = SpoolLayout(project / "spool")
        proc = cli(project, "goodreads", "push", "--workers", "1", "--json",
                   env={"HEADWATER_GOODREADS__SPOOL_DIR": "spool", "HEADWATER_STORAGE__ROOT": "data"})  # fmt: skip
        # even seeds: a point after the claim (manifest or send); odd seeds: after the first file landed
        deadline = time.monotonic() + 60
        while not push_started(layout, project / "data", seed % 2 == 1) and proc.poll() is None \
                and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, send_time / 2))
        interrupted += proc.poll() is None
        proc.kill()
        proc.communicate(timeout=30)
        landed = landing_file_names(project / "data")
        assert set(landed.values()) <= {1}
        partly_landed += 0 < sum(landed.values()) < files
        for path in (project / "data").rglob("*.csv"):
            if not path.name.startswith("."):  # every visible landed file holds the complete bytes
                assert path.read_bytes() == next((layout.root).rglob(path.name)).read_bytes()
        report = push_spool(make_settings(project))
        assert report.files + sum(landed.values()) >= files
        assert not list(layout.outbox.iterdir())
        assert not layout.closed_files()
        assert_exactly_once(layout.root)
        assert_landing_matches_spool(project / "data", layout.root)
    print(f"push kill -9: {interrupted} of {KILLS} pushes killed midway, {partly_landed} with a partly sent "
          f"batch; a full push takes {send_time:.2f} s in process")  # fmt: skip
    assert interrupted == KILLS
