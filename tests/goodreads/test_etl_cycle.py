"""The ETL cycle on the embedded default: zones, ledger, star schema, idempotency, resume, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from headwater.config import Settings
from headwater.errors import DataError, WarehouseError
from headwater.goodreads.etl import batch_records, new_landing_batches, pending_batches, run_cycle, state_dir
from headwater.goodreads.etl_ledger import BatchState, CycleLock
from headwater.goodreads.etl_publish import publish_batch
from headwater.goodreads.etl_schema import Entity
from headwater.goodreads.etl_zones import BatchRef, Zones
from headwater.storage import Zone
from headwater.warehouse import warehouse_from_settings
from tests.durability import record_syncs
from tests.goodreads.conftest import (
    STAR_TABLES,
    content_hash,
    land,
    landing_files,
    make_settings,
    read_csv,
    reference_reviews,
    reference_table,
    write_csv,
)


def test_cycle_loads_the_star_schema(project: Settings, clean_data: Path) -> None:
    key = land(project, clean_data, "b1")
    assert new_landing_batches(project) == [key]
    before = landing_files(project)

    report = run_cycle(project)
    report.raise_for_failures()

    (batch,) = report.batches
    assert batch.state is BatchState.LOADED
    assert [s.stage for s in batch.stages] == ["ingest", "transform", "checks", "load"]
    assert report.mb_per_s > 0
    reviews = reference_reviews(clean_data)
    raw_rows = sum(len(pd.read_csv(clean_data / f"{e}.csv")) for e in Entity)
    assert batch.stages[0].rows_in == raw_rows
    assert batch.quarantined == 0

    wh = warehouse_from_settings(project)
    counts = {t.name: t.rows for t in wh.tables()}
    assert counts["fact_reviews"] == len(reviews)
    assert counts["dim_author"] == len(reference_table(clean_data, "author", "author_id"))
    assert counts["dim_book"] == len(reference_table(clean_data, "book", "book_id"))
    assert counts["dim_user"] == len(reference_table(clean_data, "user", "user_id"))
    assert counts["dim_date"] == reviews["day"].nunique()
    assert batch.duplicates == raw_rows - sum(
        len(f)
        for f in (reviews, *(reference_table(clean_data, n, f"{n}_id") for n in ("author", "book", "user")))
    )

    fact = wh.query("SELECT * FROM fact_reviews ORDER BY review_id").to_pandas()
    merged = fact.merge(reviews, on="review_id", suffixes=("", "_ref"))
    assert len(merged) == len(reviews)
    assert (merged["review_added_at"] == merged["added_utc"]).all()  # normalised to UTC
    offsets = reviews["review_added_date"].str[20:25]
    expected = offsets.map(lambda s: (-1 if s[0] == "-" else 1) * (int(s[1:3]) * 60 + int(s[3:5])))
    assert sorted(fact["review_added_utc_offset"]) == sorted(expected)  # the offset kept
    assert (merged["review_rating"] == merged["review_rating_ref"]).all()
    assert fact[["user_sk", "book_sk", "author_sk", "date_sk"]].notna().all().all()
    assert set(fact["rating_bucket"]) <= {"negative", "neutral", "positive"}
    words = merged["review_text"].str.split().str.len()
    assert (merged["review_words"] == words).all()
    assert (merged["review_chars"] == merged["review_text"].str.len()).all()
    assert "review_text" not in counts  # the texts are a column of the fact (they were a table once)
    assert (merged["review_text"] == merged["review_text_ref"].map(lambda t: " ".join(t.split()))).all()
    users = wh.query("SELECT user_name FROM dim_user").column(0)
    assert pc.all(pc.equal(users, pc.utf8_lower(users))).as_py()

    assert landing_files(project) == before  # landing is never touched
    for zone in (Zone.WORKING, Zone.PROCESSED):
        assert list(Zones(project).batches(zone)) == [BatchRef.parse(key)]  # kept for the retention period


def test_nothing_new_does_nothing_and_the_same_batch_loads_once(project: Settings, clean_data: Path) -> None:
    key = land(project, clean_data, "b1")
    run_cycle(project).raise_for_failures()
    wh = warehouse_from_settings(project)
    audit_rows = wh.query("SELECT count(*) AS n FROM _hw_load_audit").column(0)[0].as_py()
    before = content_hash(wh, STAR_TABLES)

    again = run_cycle(project)
    assert again.batches == []
    assert new_landing_batches(project) == []
    assert pending_batches(project) == []

    # publishing the same processed batch again: every load is found in the audit and skipped
    record = batch_records(project)[0]
    zones = Zones(project)
    result = publish_batch(
        project, wh, batch_key=key, landing_sha256=record.landing_sha256,
        processed=zones.local_input(Zone.PROCESSED, record.ref), scratch=state_dir(project) / "scratch-test",
        expected_rows=record.facts["expected_rows"],
    )  # fmt: skip
    assert not result.held
    assert all(t.load is not None and t.load.skipped for t in result.tables.values() if t.sent)
    assert content_hash(wh, STAR_TABLES) == before
    assert wh.query("SELECT count(*) AS n FROM _hw_load_audit").column(0)[0].as_py() == audit_rows


def test_revisions_in_later_batches_win_and_older_ones_are_superseded(
    project: Settings, clean_data: Path, tmp_path: Path
) -> None:
    land(project, clean_data, "b1")
    run_cycle(project).raise_for_failures()
    reviews = read_csv(clean_data / "reviews.csv", Entity.REVIEWS).slice(0, 50)
    ids = reviews.column("review_id")

    newer = reviews.set_column(5, "review_rating", pc.if_else(pc.equal(reviews.column(5), 1), 2, 1))
    newer = newer.set_column(14, "record_create_timestamp", pc.cast(pc.add(
        pc.cast(reviews.column(14), "int64"), 10**6 * 86400 * 400), reviews.column(14).type))  # fmt: skip
    write_csv(newer, tmp_path / "b2" / "reviews_update.csv")
    land(project, tmp_path / "b2", "b2")
    r2 = run_cycle(project)
    r2.raise_for_failures()
    assert r2.batches[0].superseded == 0

    older = reviews.set_column(5, "review_rating", pc.if_else(pc.equal(reviews.column(5), 5), 4, 5))
    older = older.set_column(14, "record_create_timestamp", pc.cast(pc.subtract(
        pc.cast(reviews.column(14), "int64"), 10**6 * 86400 * 400), reviews.column(14).type))  # fmt: skip
    write_csv(older, tmp_path / "b3" / "reviews_late.csv")
    land(project, tmp_path / "b3", "b3")
    r3 = run_cycle(project)
    r3.raise_for_failures()
    assert r3.batches[0].superseded == 50

    wh = warehouse_from_settings(project)
    got = wh.query("SELECT review_id, review_rating FROM fact_reviews WHERE review_id IN (SELECT unnest(?))",
                   [ids.to_pylist()]).to_pandas().set_index("review_id")["review_rating"]  # fmt: skip
    want = pd.Series(newer.column(5).to_pylist(), index=ids.to_pylist())
    assert got.sort_index().tolist() == want.sort_index().tolist()


def test_failed_cycle_resumes_and_finishes(tmp_path: Path, clean_data: Path) -> None:
    settings = make_settings(tmp_path / "p")
    land(settings, clean_data, "b1")
    blocker = tmp_path / "p" / "warehouse.duckdb"
    blocker.mkdir()  # the warehouse cannot be opened: the load fails after the batch was processed

    report = run_cycle(settings)
    (batch,) = report.batches
    assert batch.error is not None
    assert batch.state is BatchState.PROCESSED
    with pytest.raises(WarehouseError, match="goodreads batch 2024/05/01/b1"):
        report.raise_for_failures()
    (record,) = batch_records(settings)
    assert record.state is BatchState.PROCESSED
    assert record.attempts == 1
    assert record.error

    blocker.rmdir()
    retry = run_cycle(settings)
    retry.raise_for_failures()
    (batch,) = retry.batches
    assert [s.stage for s in batch.stages] == ["checks", "load"]  # ingest and transform were not redone
    assert batch.state is BatchState.LOADED
    assert batch_records(settings)[0].error is None


def test_loaded_batches_are_cleaned_after_retention_and_never_reprocessed(
    tmp_path: Path, clean_data: Path
) -> None:
    settings = make_settings(tmp_path / "p", {"goodreads": {"retention_hours": 1}})
    key = land(settings, clean_data, "b1")
    first = run_cycle(settings)
    assert first.cleaned == []  # loaded less than an hour ago: kept
    later = run_cycle(settings, now=datetime.now(UTC) + timedelta(hours=2))
    assert later.cleaned == [key]
    assert later.batches == []
    zones = Zones(settings)
    assert list(zones.batches(Zone.WORKING)) == []
    assert list(zones.batches(Zone.PROCESSED)) == []
    assert list(zones.batches(Zone.LANDING)) == [BatchRef.parse(key)]  # landing stays
    assert batch_records(settings)[0].cleaned_at is not None
    assert run_cycle(settings).batches == []  # the landing batch is still there, and still not redone


def test_a_second_cycle_waits_for_the_lock(project: Settings, clean_data: Path) -> None:
    land(project, clean_data, "b1")
    lock = CycleLock(state_dir(project))
    assert lock.acquire()
    try:
        report = run_cycle(project)
        assert report.busy
        assert report.batches == []
    finally:
        lock.release()
    assert run_cycle(project).batches[0].state is BatchState.LOADED


def test_a_bad_file_fails_its_batch_only(project: Settings, clean_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "reviews_1.csv").write_text("review_id,user_id\nx,1\n")
    land(project, bad, "a-bad")
    land(project, clean_data, "b-good")
    report = run_cycle(project)
    states = {b.batch: (b.state, b.error) for b in report.batches}
    state, error = states["2024/05/01/a-bad"]
    assert state is BatchState.LANDED
    assert error is not None
    assert "reviews_1.csv: line 1: header does not match the reviews columns (missing" in error
    assert states["2024/05/01/b-good"] == (BatchState.LOADED, None)
    with pytest.raises(DataError, match="a-bad"):
        report.raise_for_failures()


def test_unknown_file_name_is_refused(project: Settings, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "ratings.csv").write_text("a\n1\n")
    land(project, odd, "b1")
    report = run_cycle(project)
    assert report.batches[0].error is not None
    assert "ratings.csv: file name names no entity" in report.batches[0].error


def test_review_texts_can_stay_out_of_the_warehouse(tmp_path: Path, clean_data: Path) -> None:
    settings = make_settings(tmp_path / "p", {"goodreads": {"load_review_text": False}})
    land(settings, clean_data, "b1")
    run_cycle(settings).raise_for_failures()
    tables = {t.name: t for t in warehouse_from_settings(settings).tables()}
    assert tables["fact_reviews"].rows == len(reference_reviews(clean_data))
    assert "review_text" not in tables["fact_reviews"].columns
    assert "review_chars" in tables["fact_reviews"].columns  # the measures are loaded all the same
    processed = Zones(settings).local_input(Zone.PROCESSED, batch_records(settings)[0].ref)
    (part, *_) = sorted((processed / "fact_reviews").glob("*.parquet"))
    assert "review_text" in pq.read_schema(part).names  # the texts are in processed/ still


@pytest.mark.parametrize(("setting", "codec"), [("auto", "UNCOMPRESSED"), ("zstd", "ZSTD")])
def test_working_batches_are_compressed_as_set(
    tmp_path: Path, clean_data: Path, setting: str, codec: str
) -> None:
    """Local zones keep working batches uncompressed by default (the ingest's Parquet writer spent
    most of its time compressing files that live a day); the setting picks a codec."""
    import pyarrow.parquet as pq

    settings = make_settings(tmp_path / "p", {"goodreads": {"working_compression": setting}})
    land(settings, clean_data, "b1")
    run_cycle(settings).raise_for_failures()
    working = Zones(settings).local_input(Zone.WORKING, batch_records(settings)[0].ref)
    files = list((working / "reviews").glob("*.parquet"))
    assert files
    meta = pq.read_metadata(files[0])
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {codec}


def test_zone_batches_are_synced_before_they_are_renamed_into_place(
    project: Settings, clean_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash right after a batch folder is renamed into its zone must not leave files without their
    bytes: every file is synced before the rename, and the zone folder after it."""
    from headwater.manifest import MANIFEST_NAME

    land(project, clean_data, "b1")
    events = record_syncs(monkeypatch)
    run_cycle(project).raise_for_failures()
    monkeypatch.undo()

    published = [m.parent for m in Path(project.project_dir).rglob(MANIFEST_NAME)]
    checked = 0
    for folder in published:
        renamed = ("rename", folder.stat().st_ino)
        if renamed not in events:
            continue  # landed by the test, not published by the cycle
        at = events.index(renamed)
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert files
        for path in files:
            assert ("fsync", path.stat().st_ino) in events[:at], f"{path} not synced before the rename"
        assert ("fsync", folder.parent.stat().st_ino) in events[at + 1 :], f"{folder.parent} not synced"
        checked += 1
    assert checked >= 2  # working and processed
