"""Local folders: write-once landing, atomic publish, resume, pull, verify, janitor."""

from __future__ import annotations

import os
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest

from headwater.errors import IntegrityError, StorageError, UsageError, WriteOnceError
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, sha256_file
from headwater.storage import (
    FileStatus,
    StoreOptions,
    VerifyMode,
    Zone,
    build_batch_prefix,
    open_store,
    parse_location,
    pull_batch,
    push_batch,
    run_janitor,
    verify_batch,
    zone_of,
)
from headwater.storage.local import LocalStore
from headwater.storage.retry import RetryPolicy
from tests.storage.conftest import write_files

FAST = RetryPolicy(retries=3, initial=0.01, maximum=0.05)
SIZES = {"a.csv": 300_000, "b.csv": 1, "sub/c.csv": 2_500_000, "empty.csv": 0}


def landing_store(root: Path, batch: str = "b1") -> LocalStore:
    prefix = build_batch_prefix(Zone.LANDING, "events", date(2021, 1, 31), batch)
    return LocalStore(root / str(prefix))


def test_batch_prefix_follows_the_key_layout() -> None:
    prefix = build_batch_prefix("landing", "events", date(2021, 2, 3), "20210203T101500Z")
    assert prefix.key("part-0.csv") == "landing/events/2021/02/03/20210203T101500Z/part-0.csv"
    assert zone_of(str(prefix)) is Zone.LANDING
    assert zone_of("s3://b/root/working/x") is Zone.WORKING
    assert zone_of("/home/me/working/data/landing/events/2021/01/31/b") is Zone.LANDING
    with pytest.raises(UsageError, match="dataset"):
        build_batch_prefix(Zone.LANDING, "../up", date(2021, 1, 1), "b")
    with pytest.raises(UsageError, match="zone"):
        build_batch_prefix("bronze", "events", date(2021, 1, 1), "b")
    # raw (recording sessions) is a zone of its own, write-once like landing
    assert build_batch_prefix("raw", "sessions", date(2021, 1, 1), "b").zone is Zone.RAW
    assert Zone.RAW.write_once
    assert Zone.LANDING.write_once
    assert not Zone.WORKING.write_once


def test_push_to_landing_is_verified_read_only_and_manifested(tmp_path: Path) -> None:
    src = tmp_path / "src"
    data = write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    report = push_batch(src, store, write_once=True)
    assert report.count(FileStatus.VERIFIED) == len(SIZES)
    for name, body in data.items():
        target = store.root / name
        assert target.read_bytes() == body
        assert not target.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    manifest = Manifest.read(store.root / MANIFEST_NAME)
    assert {f.path: f.sha256 for f in manifest.files} == {n: sha256_file(src / n) for n in SIZES}
    assert all(f.status == "verified" for f in manifest.files)
    assert not store.find_temp_files()


def test_overwrite_on_landing_is_refused_and_original_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "src"
    original = write_files(src, {"a.csv": 1000})
    store = landing_store(tmp_path / "data")
    push_batch(src, store, write_once=True)
    write_files(src, {"a.csv": 1000}, seed=99)  # same name and size, other bytes
    with pytest.raises(StorageError, match=r"a\.csv.*write-once"):
        push_batch(src, store, write_once=True, retry=FAST)
    assert (store.root / "a.csv").read_bytes() == original["a.csv"]
    with pytest.raises(WriteOnceError, match=r"a\.csv"):
        store.put_bytes("a.csv", b"other", write_once=True)
    assert (store.root / "a.csv").read_bytes() == original["a.csv"]


def test_rerun_skips_verified_files_and_keeps_the_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    first = push_batch(src, store, write_once=True)
    again = push_batch(src, store, write_once=True)
    assert again.count(FileStatus.SKIPPED) == len(SIZES)
    assert again.manifest is not None
    assert first.manifest is not None
    assert again.manifest.meta["pushed_at"] == first.manifest.meta["pushed_at"]


def test_resume_sends_only_missing_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    push_batch(src, store, write_once=True)
    os.chmod(store.root / "a.csv", 0o644)
    (store.root / "a.csv").unlink()
    (store.root / MANIFEST_NAME).unlink()
    report = push_batch(src, store, write_once=True)
    assert {o.path: o.status for o in report.files}["a.csv"] is FileStatus.VERIFIED
    assert report.count(FileStatus.SKIPPED) == len(SIZES) - 1
    assert (store.root / MANIFEST_NAME).exists()


def test_source_manifest_rows_are_carried_over(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, {"t.csv": 10})
    Manifest(files=[FileRecord(path="t.csv", bytes=10, sha256="x", rows=3, table="t")]).write(
        src / MANIFEST_NAME
    )
    store = LocalStore(tmp_path / "dest" / "working" / "b")
    report = push_batch(src, store, write_once=False)
    assert report.manifest is not None
    assert [(f.path, f.rows, f.table) for f in report.manifest.files] == [("t.csv", 3, "t")]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    report = push_batch(src, store, write_once=True, dry_run=True)
    assert report.count(FileStatus.PLANNED) == len(SIZES)
    assert not (tmp_path / "data").exists()


def test_pull_dry_run_fetches_nothing_and_counts_what_is_there(tmp_path: Path) -> None:
    src = tmp_path / "src"
    data = write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    push_batch(src, store, write_once=True)
    out = tmp_path / "out"
    report = pull_batch(store, out, dry_run=True)
    assert report.dry_run
    assert report.count(FileStatus.PLANNED) == len(SIZES)
    assert not out.exists()
    (out / "sub").mkdir(parents=True)
    (out / "sub/c.csv").write_bytes(data["sub/c.csv"])  # already here with the right sha256
    report = pull_batch(store, out, dry_run=True)
    assert {o.path for o in report.files if o.status is FileStatus.SKIPPED} == {"sub/c.csv"}
    assert sorted(p.name for p in out.rglob("*")) == ["c.csv", "sub"]


def test_pull_and_verify_round_trip_and_detect_tampering(tmp_path: Path) -> None:
    src = tmp_path / "src"
    data = write_files(src, SIZES)
    store = landing_store(tmp_path / "data")
    push_batch(src, store, write_once=True)
    out = tmp_path / "out"
    report = pull_batch(store, out)
    assert report.count(FileStatus.VERIFIED) == len(SIZES)
    assert {n: (out / n).read_bytes() for n in SIZES} == data
    assert pull_batch(store, out).count(FileStatus.SKIPPED) == len(SIZES)
    for mode in VerifyMode:
        assert verify_batch(store, mode=mode).ok
    target = store.root / "sub/c.csv"
    os.chmod(target, 0o644)
    body = bytearray(target.read_bytes())
    body[1000] ^= 1
    target.write_bytes(bytes(body))
    result = verify_batch(store, mode=VerifyMode.CHECKSUM)
    assert not result.ok
    assert "sub/c.csv" in result.problems[0]
    assert verify_batch(store, mode=VerifyMode.SIZE).ok  # size alone cannot see a flipped byte
    with pytest.raises(IntegrityError, match=r"sub/c\.csv"):
        pull_batch(store, tmp_path / "out2", retry=FAST)
    assert not (tmp_path / "out2" / "sub" / "c.csv").exists()


def test_verify_without_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no manifest"):
        verify_batch(LocalStore(tmp_path))


def test_janitor_removes_leftover_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    leftover = tmp_path / "landing" / ".x.csv.0123.hwtmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"partial")
    location = parse_location(tmp_path)
    dry = run_janitor(location, store, StoreOptions(), older_than=timedelta(0), dry_run=True)
    assert dry.found == [str(leftover)]
    assert leftover.exists()
    report = run_janitor(location, store, StoreOptions(), older_than=timedelta(0))
    assert report.removed == 1
    assert not leftover.exists()


def test_open_store_and_url_parsing(tmp_path: Path) -> None:
    assert isinstance(open_store(parse_location(tmp_path)), LocalStore)
    loc = parse_location("s3://bucket/root/landing")
    assert (loc.bucket, loc.prefix, str(loc)) == ("bucket", "root/landing", "s3://bucket/root/landing")
    assert parse_location("gs://b/p").scheme == "gs"
    with pytest.raises(UsageError, match="credentials"):
        parse_location("s3://key:secret@bucket/x")
    with pytest.raises(UsageError, match="scheme"):
        parse_location("ftp://host/x")


def test_pull_without_manifest_marks_files_unchecked(tmp_path: Path) -> None:
    data = write_files(tmp_path / "loose", {"a.csv": 100, "b/c.csv": 5})
    report = pull_batch(LocalStore(tmp_path / "loose"), tmp_path / "out")
    assert {o.path: o.status for o in report.files} == {
        "a.csv": FileStatus.UNCHECKED,
        "b/c.csv": FileStatus.UNCHECKED,
    }
    assert (tmp_path / "out" / "b/c.csv").read_bytes() == data["b/c.csv"]


def test_progress_reports_every_byte_per_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_files(src, SIZES)
    seen: dict[str, int] = {}
    totals: dict[str, int | None] = {}

    def record(task: str, advance: int, total: int | None = None) -> None:
        seen[task] = seen.get(task, 0) + advance
        if total is not None:
            totals[task] = total

    push_batch(src, landing_store(tmp_path / "data"), write_once=True, progress=record)
    assert seen == {f"{name} bytes": size for name, size in SIZES.items()}
    assert totals == seen


def test_pulling_a_batch_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    """A mistyped source used to 'pull' nothing with exit 0; an empty folder is nothing to pull either."""
    for source in (tmp_path / "no-such-batch", tmp_path / "empty"):
        if source.name == "empty":
            source.mkdir()
        with pytest.raises(StorageError, match=r"nothing to pull, no manifest\.json and no files"):
            pull_batch(LocalStore(source), tmp_path / "out")
    assert not (tmp_path / "out").exists()
