"""Failure tests from the storage issue, against a real moto server: kill -9 at random points, a proxy that
flips bytes (upload and download), a proxy that resets connections, and refused overwrites."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from headwater.errors import IntegrityError, TransientStorageError
from headwater.manifest import MANIFEST_NAME
from headwater.storage import (
    FileStatus,
    Location,
    Scheme,
    StoreOptions,
    open_store,
    pull_batch,
    push_batch,
    run_janitor,
    verify_batch,
)
from headwater.storage.admin import make_s3_client
from headwater.storage.local import LocalStore
from headwater.storage.retry import RetryPolicy
from tests.storage.conftest import CREDENTIALS, MotoServer, create_bucket, s3_location, write_files
from tests.storage.proxy import Direction, Fault, FaultProxy, Plan

pytestmark = pytest.mark.s3
FAST = RetryPolicy(retries=3, initial=0.01, maximum=0.05)
NO_RETRY = RetryPolicy(retries=0)
KILL_SEEDS = 20
KILL_FILES = {f"part-{i}.csv": 2_000_000 for i in range(5)} | {"big.csv": 40_000_000}


def measure_startup() -> float:
    """Seconds the CLI takes to import, so kill points can be drawn from the transfer itself."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import headwater.cli, headwater.storage.cloud"], check=True)
    return time.monotonic() - started


def measure_run(
    src: Path, dest: Callable[[int], str], server: MotoServer | None, cwd: Path
) -> tuple[float, float]:
    """(a whole push, the CLI's start-up) in seconds, each the faster of two runs, so kill points fall in
    the transfer even when the first run pays for cold caches."""
    runs = []
    for i in range(2):
        started = time.monotonic()
        probe = run_push(src, dest(i), server, cwd)
        _, err = probe.communicate(timeout=60)
        assert probe.returncode == 0, err
        runs.append(time.monotonic() - started)
    full_run = min(runs)
    return full_run, min(measure_startup(), measure_startup(), full_run * 0.8)


def run_push(src: Path, dest: str, server: MotoServer | None, cwd: Path) -> subprocess.Popen[bytes]:
    """The CLI push in a child process: to moto with three workers, to a local folder with one, so files
    land one after another across the run and kill points find half-done batches."""
    env = {**os.environ, **CREDENTIALS}
    if server is not None:
        env |= {
            "HEADWATER_STORAGE__ENDPOINT_URL": server.endpoint,
            "HEADWATER_STORAGE__REGION": "us-east-1",
            "HEADWATER_STORAGE__PATH_STYLE": "true",
        }
    env.pop("HEADWATER_PROJECT", None)
    code = "from headwater.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "push", str(src), dest, "--json", "--workers", "3" if server else "1"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_at_20_random_points_then_rerun_completes(tmp_path: Path, moto_server: MotoServer) -> None:
    """20 seeds; even ones push to landing/ (conditional single PUTs), odd ones to working/ (multipart for
    big.csv). After each kill no final key holds anything but the complete source bytes; the re-run completes
    and every object verifies; the janitor then aborts the multipart uploads the kills left behind."""
    bucket = create_bucket(moto_server)
    src = tmp_path / "src"
    data = write_files(src, KILL_FILES)
    want = {name: hashlib.sha256(body).hexdigest() for name, body in data.items()}
    client = make_s3_client(moto_server.options())
    full_run, startup = measure_run(
        src, lambda i: f"s3://{bucket}/probe-{i}/landing/b", moto_server, tmp_path
    )
    killed_midway = 0
    partial_batches = 0
    for seed in range(KILL_SEEDS):
        zone = "landing" if seed % 2 == 0 else "working"
        prefix = f"kill/{zone}/events/2021/01/31/seed-{seed}"
        proc = run_push(src, f"s3://{bucket}/{prefix}", moto_server, tmp_path)
        started = time.monotonic()
        try:
            proc.wait(timeout=random.Random(seed).uniform(startup, full_run))
            # done before its kill point: the probe runs were slowed (a loaded machine); narrow the window
            full_run = max(startup * 1.1, min(full_run, time.monotonic() - started))
        except subprocess.TimeoutExpired:
            killed_midway += 1
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
        partial_batches += 0 < len(listed) <= len(KILL_FILES)
        for obj in listed:
            name = obj["Key"].removeprefix(f"{prefix}/")
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if name == MANIFEST_NAME:
                assert len(listed) == len(KILL_FILES) + 1, f"seed {seed}: manifest before all files"
                continue
            assert hashlib.sha256(body).hexdigest() == want[name], f"seed {seed}: partial object at {name}"
        rerun = run_push(src, f"s3://{bucket}/{prefix}", moto_server, tmp_path)
        _, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, f"seed {seed}: {err.decode()}"
        store = open_store(s3_location(bucket, prefix), moto_server.options())
        result = verify_batch(store)
        assert result.ok, f"seed {seed}: {result.problems}"
        assert result.checked == len(KILL_FILES)
        for obj in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])  # moto keeps objects in memory
    print(
        f"kill -9: {KILL_SEEDS} seeds, {killed_midway} killed mid-run, {partial_batches} left a partial batch, "
        f"full run {full_run:.2f} s"
    )
    assert killed_midway >= KILL_SEEDS // 2
    location = s3_location(bucket, "kill")
    run_janitor(
        location, open_store(location, moto_server.options()), moto_server.options(), older_than=timedelta(0)
    )
    assert not client.list_multipart_uploads(Bucket=bucket, Prefix="kill/").get("Uploads")


def test_upload_byte_flip_is_detected_not_verified_and_resent(
    tmp_path: Path, moto_server: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"x.csv": 200_000})
    store = open_store(s3_location(bucket, "landing/flip"), moto_server.options(endpoint_url=proxy.endpoint))
    proxy.arm(Plan(Fault.FLIP, Direction.UPLOAD, after=50_000))
    with pytest.raises(IntegrityError, match=r"landing/flip/x\.csv.*not marked verified"):
        push_batch(src, store, write_once=True, retry=NO_RETRY)
    assert store.head("x.csv") is None  # the corrupt object we wrote was removed, not kept as if it were raw
    assert store.head(MANIFEST_NAME) is None
    report = push_batch(src, store, write_once=True, retry=NO_RETRY)  # re-send
    assert report.count(FileStatus.VERIFIED) == 1
    assert store.get_bytes("x.csv") == data["x.csv"]


def test_upload_byte_flip_in_a_multipart_upload_is_retried(
    tmp_path: Path, moto_server: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"big.csv": 9_000_000})
    opts = moto_server.options(endpoint_url=proxy.endpoint, part_size=5 << 20)
    store = open_store(s3_location(bucket, "working/flip"), opts)
    proxy.arm(Plan(Fault.FLIP, Direction.UPLOAD, after=3_000_000))
    report = push_batch(src, store, write_once=False, retry=FAST)
    outcome = report.files[0]
    assert outcome.status is FileStatus.VERIFIED
    assert outcome.attempts == 2
    assert "IntegrityError" in outcome.errors[0]
    assert store.get_bytes("big.csv") == data["big.csv"]


def test_download_byte_flip_is_detected_and_refetched(
    tmp_path: Path, moto_server: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"x.csv": 300_000})
    push_batch(src, open_store(s3_location(bucket, "landing/dl"), moto_server.options()), write_once=True)
    store = open_store(s3_location(bucket, "landing/dl"), moto_server.options(endpoint_url=proxy.endpoint))
    proxy.arm(Plan(Fault.FLIP, Direction.DOWNLOAD, after=100_000))
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=r"landing/dl/x\.csv.*discarded"):
        pull_batch(store, out, retry=NO_RETRY)
    assert not (out / "x.csv").exists()
    report = pull_batch(store, out, retry=NO_RETRY)  # re-fetch
    assert report.count(FileStatus.VERIFIED) == 1
    assert (out / "x.csv").read_bytes() == data["x.csv"]
    proxy.arm(Plan(Fault.FLIP, Direction.DOWNLOAD, after=100_000))
    flipped = verify_batch(store)  # a full read-back through the flipping proxy sees the difference
    assert not flipped.ok
    assert "x.csv" in flipped.problems[0]
    assert verify_batch(store).ok  # the proxy flips once: the stored object itself is intact


def test_connection_reset_after_n_bytes_is_retried_then_succeeds(
    tmp_path: Path, moto_server: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"x.csv": 300_000})
    store = open_store(s3_location(bucket, "landing/reset"), moto_server.options(endpoint_url=proxy.endpoint))
    proxy.arm(Plan(Fault.RESET, Direction.UPLOAD, after=100_000, times=2))
    report = push_batch(src, store, write_once=True, retry=FAST)
    outcome = report.files[0]
    assert outcome.status is FileStatus.VERIFIED
    assert outcome.attempts == 3  # reset twice after 100,000 bytes, third attempt through
    assert all("TransientStorageError" in e for e in outcome.errors)
    assert store.get_bytes("x.csv") == data["x.csv"]


def test_connection_reset_every_time_gives_up_naming_the_file(
    tmp_path: Path, moto_server: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 300_000})
    store = open_store(s3_location(bucket, "landing/down"), moto_server.options(endpoint_url=proxy.endpoint))
    proxy.arm(Plan(Fault.RESET, Direction.UPLOAD, after=100_000, times=100))
    with pytest.raises(TransientStorageError, match=r"landing/down/x\.csv.*gave up after 4 attempts") as info:
        push_batch(src, store, write_once=True, retry=FAST)
    assert "\n" not in str(info.value)
    assert store.head("x.csv") is None


@pytest.mark.slow
def test_kill_9_of_a_local_push_at_20_random_points_leaves_no_partial_file(tmp_path: Path) -> None:
    """The local write-once path: temp file, fsync, link without replace. After each of 20 kills every visible
    file under the batch holds the complete source bytes (and is read-only); the re-run completes, the batch
    verifies, and the janitor removes the temp files the kills left."""
    src = tmp_path / "src"
    data = write_files(src, {f"part-{i}.csv": 12_000_000 for i in range(8)})
    want = {name: hashlib.sha256(body).hexdigest() for name, body in data.items()}
    root = tmp_path / "data"
    full_run, startup = measure_run(src, lambda i: str(root / f"probe-{i}/landing/b"), None, tmp_path)
    partial_batches = 0
    for seed in range(KILL_SEEDS):
        batch = root / f"landing/events/2021/01/31/seed-{seed}"
        proc = run_push(src, str(batch), None, tmp_path)
        time.sleep(random.Random(seed).uniform(startup, full_run))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        visible = (
            [p for p in batch.rglob("*") if p.is_file() and not p.name.startswith(".")]
            if batch.exists()
            else []
        )
        partial_batches += 0 < len(visible) <= len(data)
        for path in visible:
            if path.name == MANIFEST_NAME:
                assert len(visible) == len(data) + 1, f"seed {seed}: manifest before all files"
                continue
            assert hashlib.sha256(path.read_bytes()).hexdigest() == want[path.name], (
                f"seed {seed}: {path.name}"
            )
            assert not path.stat().st_mode & 0o222, f"seed {seed}: {path.name} is writable"
        rerun = run_push(src, str(batch), None, tmp_path)
        _, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, f"seed {seed}: {err.decode()}"
        result = verify_batch(LocalStore(batch))
        assert result.ok, f"seed {seed}: {result.problems}"
    print(
        f"local kill -9: {KILL_SEEDS} seeds, {partial_batches} left a partial batch, full run {full_run:.2f} s"
    )
    location = Location(Scheme.FILE, path=root)
    run_janitor(location, LocalStore(root), StoreOptions(), older_than=timedelta(0))
    assert not LocalStore(root).find_temp_files()
