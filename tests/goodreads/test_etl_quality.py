"""Quality in the ETL: rows that fail parsing or row rules go to quarantine with file, line and reason;
orphan reviews are split off; a failing error check holds the whole batch back and alerts once."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from headwater.config import Settings
from headwater.goodreads.etl import batch_records, run_cycle
from headwater.goodreads.etl_ledger import BatchState
from headwater.goodreads.etl_schema import Entity
from headwater.quality import list_quarantine, show_quarantine
from headwater.warehouse import warehouse_from_settings
from tests.alerting import WebhookReceiver
from tests.goodreads.conftest import land, make_settings, read_csv, write_csv

# defects the row rules must catch: (column, kind) -> caught; ragged rows and unparseable timestamps are
# caught by the CSV reader. Out-of-range values above a column's maximum, NULLs in optional columns and
# orphan keys are not row problems (orphans are split off at publish time, tested below).
CAUGHT = {
    ("*", "ragged_row"),
    ("record_create_timestamp", "malformed_date"),
    ("record_create_timestamp", "null_required"),
    ("review_added_date", "malformed_date"),
    ("review_updated_date", "malformed_date"),
    ("review_added_date", "null_required"),
    ("review_rating", "null_required"),
    ("review_rating", "out_of_range"),
    ("review_id", "null_required"),
    ("user_id", "null_required"),
    ("book_id", "null_required"),
    ("author_id", "null_required"),
}


def quarantined_lines(settings: Settings) -> dict[tuple[str, int], str]:
    """(file, line) -> reason of every row the ingest held back."""
    out: dict[tuple[str, int], str] = {}
    for entry in list_quarantine(settings, "goodreads"):
        if entry.check not in ("goodreads.parse", "goodreads.validate"):
            continue
        _entry, rows = show_quarantine(settings, entry.entry_id, limit=None)
        name = entry.source.rsplit("/", 1)[-1]
        for line, reason in zip(
            rows.column("_hw_line").to_pylist(), rows.column("_hw_reason").to_pylist(), strict=True
        ):
            out[(name, int(line))] = str(reason)
    return out


def test_dirty_rows_are_quarantined_by_line_with_their_reason(project: Settings, dirty_data: Path) -> None:
    land(project, dirty_data, "dirty")
    report = run_cycle(project)
    report.raise_for_failures()
    held = quarantined_lines(project)
    with (dirty_data / "defects.csv").open() as fh:
        defects = list(csv.DictReader(fh))
    expected = {(d["file"], int(d["line"])): d for d in defects if (d["column"], d["defect"]) in CAUGHT}
    caught = {k for k in expected if k in held}
    assert caught == set(expected), f"missed {sorted(set(expected) - caught)[:5]}"
    defect_lines = {(d["file"], int(d["line"])) for d in defects}
    assert set(held) <= defect_lines  # nothing clean was held back
    for (name, line), reason in held.items():
        d = expected.get((name, line))
        if d is not None and d["column"] != "*":
            assert reason.startswith(d["column"]) or d["column"] in reason, (name, line, reason)
    assert report.batches[0].quarantined == len(held) + report.batches[0].orphaned
    wh = warehouse_from_settings(project)
    ratings = wh.query(
        "SELECT min(review_rating) AS lo, max(review_rating) AS hi FROM fact_reviews"
    ).to_pylist()[0]
    assert 1 <= ratings["lo"] <= ratings["hi"] <= 5


def test_clean_data_holds_nothing_back(project: Settings, clean_data: Path) -> None:
    land(project, clean_data, "clean")
    report = run_cycle(project)
    report.raise_for_failures()
    assert report.batches[0].quarantined == 0
    assert list_quarantine(project, "goodreads") == []


def test_orphan_reviews_are_split_off_and_the_rest_loads(
    project: Settings, clean_data: Path, tmp_path: Path
) -> None:
    land(project, clean_data, "b1")
    run_cycle(project).raise_for_failures()
    reviews = read_csv(clean_data / "reviews.csv", Entity.REVIEWS).slice(0, 30)
    ids = pc.utf8_replace_slice(reviews.column("review_id"), 0, 3, "zz-")  # new reviews
    orphans = reviews.set_column(0, "review_id", ids)
    orphans = orphans.set_column(1, "user_id", pc.add(orphans.column("user_id"), 10_000_000))
    known = reviews.set_column(
        0, "review_id", pc.utf8_replace_slice(reviews.column("review_id"), 0, 3, "yy-")
    )
    write_csv(pa.concat_tables([orphans.slice(0, 10), known]), tmp_path / "b2" / "reviews_more.csv")
    land(project, tmp_path / "b2", "b2")

    report = run_cycle(project)
    report.raise_for_failures()
    (batch,) = report.batches
    assert batch.state is BatchState.LOADED
    assert batch.orphaned == 10
    entries = [e for e in list_quarantine(project, "goodreads") if "relationships" in (e.check or "")]
    assert sum(e.rows for e in entries) == 10
    wh = warehouse_from_settings(project)
    loaded = (
        wh.query("SELECT count(*) AS n FROM fact_reviews WHERE review_id LIKE 'yy-%'").column(0)[0].as_py()
    )
    assert loaded == 30
    assert (
        wh.query("SELECT count(*) AS n FROM fact_reviews WHERE review_id LIKE 'zz-%'").column(0)[0].as_py()
        == 0
    )


def test_failing_check_holds_the_batch_and_alerts_once(
    tmp_path: Path, clean_data: Path, webhook_receiver: WebhookReceiver
) -> None:
    strict = {
        "alerts": {"webhook_url": webhook_receiver.url},
        "quality": {"checks": {"fact_reviews": [{"type": "range", "column": "review_votes", "max": 0}]}},
    }
    settings = make_settings(tmp_path / "p", strict)
    key = land(settings, clean_data, "b1")
    report = run_cycle(settings)
    (batch,) = report.batches
    assert batch.state is BatchState.BLOCKED
    assert batch.error is None
    assert any("fact_reviews" in reason and "range(review_votes)" in reason for reason in batch.held)
    report.raise_for_failures()  # held back is not a failure of the run
    wh = warehouse_from_settings(settings)
    assert [t.name for t in wh.tables()] == []  # nothing published, not even the dimensions
    held = [e for e in list_quarantine(settings, "goodreads") if "range(review_votes)" in (e.check or "")]
    assert held
    assert held[0].rows > 0

    again = run_cycle(settings)
    assert again.batches[0].state is BatchState.BLOCKED  # re-checked on every cycle
    alerts = webhook_receiver.wait(1, timeout=5)
    assert len(alerts) == 1
    text = str(alerts[0].body)
    assert key in text
    assert "held back" in text
    assert len(webhook_receiver.received) == 1  # still one alert after the second cycle

    relaxed = make_settings(tmp_path / "p", {"alerts": {"webhook_url": webhook_receiver.url}})
    fixed = run_cycle(relaxed)
    fixed.raise_for_failures()
    assert fixed.batches[0].state is BatchState.LOADED
    assert batch_records(relaxed)[0].state is BatchState.LOADED


def test_quarantined_lines_are_file_lines_past_empty_lines_and_reviews_spanning_lines(
    project: Settings, clean_data: Path, tmp_path: Path
) -> None:
    source = next(p for p in clean_data.glob("reviews*.csv"))
    table = read_csv(source, Entity.REVIEWS).slice(0, 200)
    texts = table.column("review_text").to_pylist()
    for i in (3, 40, 41):
        texts[i] = 'first line\nsecond, with "quotes"\n\nlast line'  # three line breaks, one empty line
    ratings = table.column("review_rating").to_pylist()
    ratings[60] = 9  # a row rule fails
    users = table.column("user_id").to_pylist()
    users[150] = None
    table = table.set_column(4, "review_text", pa.array(texts, pa.string()))
    table = table.set_column(5, "review_rating", pa.array(ratings, pa.int64()))
    table = table.set_column(1, "user_id", pa.array(users, pa.int64()))
    batch = tmp_path / "lines"
    text = write_csv(table, batch / source.name).read_text(encoding="utf-8")
    ids = table.column("review_id").to_pylist()
    # an empty line after row 10, and row 100 made ragged (a parse error)
    lines = text.split("\n")
    start = {rid: text[: text.index(f'\n"{rid}",') + 1].count("\n") + 1 for rid in ids}
    lines.insert(start[ids[10]] - 1, "")
    ragged = start[ids[100]]
    lines[ragged] = f'"{ids[100]}",1,2'
    (batch / source.name).write_text("\n".join(lines), encoding="utf-8")
    text = (batch / source.name).read_text(encoding="utf-8")
    expected = {text[: text.index(f'\n"{ids[i]}",') + 1].count("\n") + 1: i for i in (60, 100, 150)}
    land(project, batch, "lines")
    report = run_cycle(project)
    report.raise_for_failures()
    held = quarantined_lines(project)
    assert sorted(line for (_name, line) in held) == sorted(expected)
    said = {60: "review_rating: 9", 100: "", 150: "user_id"}
    for (_name, line), reason in held.items():
        assert said[expected[line]] in reason, (line, reason)
