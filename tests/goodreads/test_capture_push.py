"""push_spool: closed spool files to landing/goodreads/... on a local root and on S3 (moto over HTTP),
verified, each file once, resumed after a crash at each step, pruned after retention."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.errors import WriteOnceError
from headwater.goodreads.capture import CaptureOptions, capture
from headwater.goodreads.capture_push import (
    batch_time,
    claim_closed_files,
    landing_location,
    new_batch_id,
    push_spool,
    write_batch_manifest,
)
from headwater.goodreads.capture_schema import Entity
from headwater.goodreads.spool import SpoolLayout
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.progress import no_progress
from headwater.storage import Store, open_store, parse_location, push_batch, verify_batch
from headwater.storage.local import LocalStore
from tests.goodreads.capture_helpers import (
    api_server,
    assert_exactly_once,
    landing_batches,
    landing_file_names,
    make_settings,
    spool_files,
)
from tests.storage.conftest import CREDENTIALS, MotoServer, create_bucket, start_moto

OPTIONS = CaptureOptions(rate=500, page_size=25, status_every=60, push_every=0)
ENTITIES = [Entity.AUTHOR, Entity.BOOK, Entity.USER]


def fill_spool(settings: Settings) -> list[str]:
    """Capture three entities into the spool (no push); the closed file names."""
    with api_server() as server:
        capture(settings, server.url, entities=ENTITIES, options=OPTIONS)
    layout = SpoolLayout(settings.resolve(settings.goodreads.spool_dir))
    return [p.name for p in layout.closed_files()]


def test_push_lands_each_file_once_with_a_manifest_and_moves_it_to_pushed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rotate_bytes=30_000)
    names = fill_spool(settings)
    assert len(names) >= 4
    report = push_spool(settings)
    assert report.files == len(names)
    assert len(report.batches) == 1
    batch = report.batches[0]
    when = batch_time(batch.batch_id)
    assert when is not None
    folder = tmp_path / "data" / f"landing/goodreads/{when:%Y/%m/%d}/{batch.batch_id}"
    assert folder.is_dir()
    assert verify_batch(LocalStore(folder)).ok
    manifest = Manifest.read(folder / MANIFEST_NAME)
    assert sorted(f.path for f in manifest.files) == sorted(names)
    assert manifest.meta["dataset"] == "goodreads"
    assert {f.table for f in manifest.files} == {e.value for e in ENTITIES}
    assert manifest.total_rows == batch.rows
    layout = SpoolLayout(tmp_path / "spool")
    assert not layout.closed_files()
    assert sorted(p.name for p in (layout.pushed / batch.batch_id).glob("*.csv")) == sorted(names)
    assert push_spool(settings).files == 0  # nothing left
    assert_exactly_once(tmp_path / "spool", ENTITIES)


def test_push_finishes_what_a_killed_push_left_at_every_step(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rotate_bytes=10_000)
    fill_spool(settings)
    layout = SpoolLayout(tmp_path / "spool")
    files = layout.closed_files()
    assert len(files) >= 8
    root = tmp_path / "data"

    def claim(day: int, chosen: list[Path]) -> Path:
        folder = layout.outbox / new_batch_id(datetime(2024, 1, day, tzinfo=UTC))
        folder.mkdir()
        for path in chosen:
            path.rename(folder / path.name)
        return folder

    def store_of(folder: Path) -> Store:
        when = batch_time(folder.name)
        assert when is not None
        return open_store(landing_location(str(root), when.date(), folder.name))

    # killed after sending, before the rename to pushed/: complete in landing, still in the outbox
    sent = claim(1, files[0:2])
    write_batch_manifest(sent)
    push_batch(sent, store_of(sent), write_once=True)
    # killed halfway through sending: one file verified in landing, no landing manifest yet
    sending = claim(2, files[2:4])
    write_batch_manifest(sending)
    store_of(sending).put_file(files[2].name, sending / files[2].name, write_once=True, progress=no_progress,
                               task="t")  # fmt: skip
    # killed halfway through claiming: two files moved, the rest still closed
    half = claim(3, files[4:6])
    # killed right after creating a batch folder: an empty claim
    empty = claim(4, [])

    report = push_spool(settings)
    by_id = {b.batch_id: b for b in report.batches}
    assert set(by_id) - {sent.name, sending.name, half.name} != set()  # the rest went in a new batch
    assert by_id[sent.name].resumed
    assert by_id[sent.name].skipped == 2
    assert by_id[sending.name].skipped == 1
    assert len(by_id[half.name].files) == 2
    assert empty.name not in by_id
    assert not empty.exists()
    assert not list(layout.outbox.iterdir())
    assert not layout.closed_files()
    names = landing_file_names(root)
    assert set(names.values()) == {1}
    assert set(names) == {p.name for p in spool_files(tmp_path / "spool")}
    assert len(landing_batches(root)) == len(report.batches)
    for folder in landing_batches(root):
        assert verify_batch(LocalStore(folder)).ok
    assert_exactly_once(tmp_path / "spool", ENTITIES)


def test_a_refused_batch_stays_in_the_outbox_and_the_error_is_one_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    names = fill_spool(settings)
    layout = SpoolLayout(tmp_path / "spool")
    claimed = claim_closed_files(layout, new_batch_id())
    assert claimed is not None
    when = batch_time(claimed.name)
    assert when is not None
    taken = tmp_path / "data" / f"landing/goodreads/{when:%Y/%m/%d}/{claimed.name}/{names[0]}"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"other bytes\n")
    with pytest.raises(WriteOnceError) as info:
        push_spool(settings)
    assert "\n" not in str(info.value)
    assert names[0] in str(info.value)
    assert sorted(p.name for p in claimed.glob("*.csv")) == sorted(names)
    assert taken.read_bytes() == b"other bytes\n"


def test_pushed_files_are_kept_for_the_retention_period(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, pushed_retention_hours=24)
    layout = SpoolLayout(tmp_path / "spool").create()
    old = layout.pushed / new_batch_id(datetime.now(UTC) - timedelta(days=30))
    recent = layout.pushed / new_batch_id(datetime.now(UTC) - timedelta(days=30))
    for folder, hours in ((old, 25), (recent, 23)):
        folder.mkdir()
        (folder / "author_20240101T000000Z_000001.csv").write_text("x\n")
        stamp = time.time() - hours * 3600
        os.utime(folder, (stamp, stamp))  # pushed that long ago (claimed a month ago)
    report = push_spool(settings)
    assert report.pruned == 1
    assert not old.exists()
    assert recent.exists()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from start_moto([], "http")


@pytest.mark.s3
def test_capture_pushes_to_s3(tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    bucket = create_bucket(moto)
    settings = Settings.model_validate(
        {
            "project_dir": tmp_path,
            "storage": {"root": f"s3://{bucket}/hw", "endpoint_url": moto.endpoint, "region": "us-east-1",
                        "path_style": True},
            "goodreads": {"spool_dir": "spool", "rotate_bytes": 40_000, "push_every_seconds": 0.2},
        }
    )  # fmt: skip
    with api_server() as server:
        report = capture(
            settings, server.url, entities=ENTITIES, options=CaptureOptions(rate=500, page_size=200)
        )
    assert report.final_push_error is None
    pushed = [b for p in report.pushes for b in p.batches]
    assert pushed
    names: list[str] = []
    for batch in pushed:
        assert batch.url.startswith(f"s3://{bucket}/hw/landing/goodreads/")
        store = open_store(parse_location(batch.url), moto.options())
        assert verify_batch(store).ok
        keys = [o.key for o in store.list_keys("")]
        assert MANIFEST_NAME in {k.rsplit("/", 1)[-1] for k in keys}
        names += [k.rsplit("/", 1)[-1] for k in keys if k.endswith(".csv")]
    assert sorted(names) == sorted(p.name for p in spool_files(tmp_path / "spool"))
    assert_exactly_once(tmp_path / "spool", ENTITIES)
