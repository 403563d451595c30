"""The monthly events pipeline against an independent pandas computation on the raw CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from headwater.config import Settings
from headwater.errors import DataError
from headwater.events import Month, analyse, analyse_table, counts, process_month, run_month
from headwater.events.counts import Tally
from headwater.events.pipeline import COLUMNS, FACT_TABLE, REQUIRED
from headwater.quality.quarantine import list_quarantine, show_quarantine
from headwater.warehouse import warehouse_from_settings
from tests.durability import record_syncs

SOURCE = "data/incoming/events"


def raw_csv(settings: Settings, month: str) -> Path:
    return settings.resolve(SOURCE) / Month.parse(month).key


def pandas_clean(path: Path, month: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The cleaning rules written independently: Python's csv module, pandas coercion, keep-first dedupe."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header == list(COLUMNS)
    ragged = [r for r in body if len(r) != len(header)]
    frame = pd.DataFrame([r for r in body if len(r) == len(header)], columns=header).replace("", None)
    typed = pd.DataFrame(
        {
            "event_id": pd.to_numeric(frame["event_id"], errors="coerce"),
            "event_time": pd.to_datetime(frame["event_time"], format="ISO8601", errors="coerce"),
            "user_id": pd.to_numeric(frame["user_id"], errors="coerce"),
            "company_id": pd.to_numeric(frame["company_id"], errors="coerce"),
            "event_type": frame["event_type"],
        }
    )
    unparsable = (typed["event_time"].isna() & frame["event_time"].notna()) | (
        typed["event_id"].isna() & frame["event_id"].notna()
    )
    parsed = typed[~unparsable]
    start = pd.Timestamp(Month.parse(month).first_day)
    end = pd.Timestamp(Month.parse(month).next().first_day)
    valid = parsed.dropna(subset=list(REQUIRED))
    valid = valid[(valid["event_time"] >= start) & (valid["event_time"] < end)]
    kept = valid.drop_duplicates(subset="event_id", keep="first")
    counts = {
        "rows_read": len(body),
        "rejected_parse": len(ragged) + int(unparsable.sum()),
        "rejected_invalid": len(parsed) - len(valid),
        "duplicates": len(valid) - len(kept),
        "rows_out": len(kept),
    }
    return kept, counts


def test_clean_month_matches_pandas(clean_project: Settings) -> None:
    report = run_month(clean_project, "2021-03")
    kept, counts = pandas_clean(raw_csv(clean_project, "2021-03"), "2021-03")
    assert report.fast_path
    assert (report.rows_read, report.rows_out, report.quarantined) == (counts["rows_read"], len(kept), 0)
    table = pq.read_table(report.processed_uri)
    assert table.column_names == [*COLUMNS, "event_month"]
    assert str(table.schema.field("event_time").type) == "timestamp[us]"
    assert table.column("event_id").to_pylist() == kept["event_id"].astype("int64").tolist()
    assert report.processed_uri.endswith("processed/events/year=2021/month=03/events.parquet")


def test_analyses_match_pandas_on_raw_csv(clean_project: Settings) -> None:
    months = ["2021-01", "2021-02"]
    for m in months:
        run_month(clean_project, m)
    result = analyse(clean_project, [Month.parse(m) for m in months], top_n=7)
    frames = [pandas_clean(raw_csv(clean_project, m), m)[0] for m in months]
    raw = pd.concat(frames)
    per_day = raw.groupby(raw["event_time"].dt.date).size()
    assert result.total == len(raw)
    assert (
        dict(zip(result.per_day["day"].dt.date, result.per_day["events"], strict=True)) == per_day.to_dict()
    )
    per_month = raw.groupby(raw["event_time"].dt.strftime("%Y-%m")).size()
    assert (
        dict(zip(result.per_month["month"], result.per_month["events"], strict=True)) == per_month.to_dict()
    )
    assert result.per_year.to_dict("records") == [{"year": 2021, "events": len(raw)}]
    for key, got in (("user_id", result.top_users), ("company_id", result.top_companies)):
        expected = raw.groupby(key).size().reset_index(name="events")
        expected = expected.sort_values(["events", key], ascending=[False, True]).head(7)
        assert got[key].tolist() == expected[key].astype("int64").tolist()
        assert got["events"].tolist() == expected["events"].tolist()
        assert got["share_pct"].tolist() == pytest.approx(
            (100 * expected["events"] / len(raw)).round(3).tolist()
        )


def test_dirty_month_quarantines_every_bad_line_and_keeps_first_duplicates(dirty_project: Settings) -> None:
    report = run_month(dirty_project, "2021-02", load=False)
    kept, counts = pandas_clean(raw_csv(dirty_project, "2021-02"), "2021-02")
    assert not report.fast_path
    assert counts["rejected_parse"] > 0
    assert counts["duplicates"] > 0
    assert counts["rejected_invalid"] > 0
    got = {k: getattr(report, k) for k in counts}
    assert got == counts
    assert report.rows_read == report.rows_out + report.quarantined
    table = pq.read_table(report.processed_uri)
    assert table.column("event_id").to_pylist() == kept["event_id"].astype("int64").tolist()
    # every quarantined row names the file and its line; the lines are the ones the generator spoiled
    held = [
        show_quarantine(dirty_project, e.entry_id, None)[1] for e in list_quarantine(dirty_project, "events")
    ]
    lines = sorted(int(v) for t in held for v in t.column("_hw_line").to_pylist())
    assert len(lines) == report.quarantined
    defects = pd.read_csv(dirty_project.resolve(SOURCE) / "defects.csv")
    spoiled = defects[
        (defects["file"] == "2021/02/events.csv")
        & defects["defect"].isin(["ragged_row", "malformed_date", "null_required"])
    ]
    assert set(spoiled["line"]) <= set(lines)
    # every id the generator duplicated is kept exactly once
    dup_lines = defects[(defects["file"] == "2021/02/events.csv") & (defects["defect"] == "duplicate_key")]
    out_ids = pd.Series(table.column("event_id").to_pylist()).value_counts()
    body_ids = raw_csv(dirty_project, "2021-02").read_text(encoding="utf-8").splitlines()
    for line in dup_lines["line"]:
        assert out_ids.get(int(body_ids[line - 1].split(",")[0]), 0) <= 1
    body = raw_csv(dirty_project, "2021-02").read_text(encoding="utf-8").splitlines()
    dup_reasons = [r for t in held for r in t.column("_hw_reason").to_pylist() if r.startswith("duplicate")]
    assert len(dup_reasons) == report.duplicates
    for t in held:
        for line, reason in zip(
            t.column("_hw_line").to_pylist(), t.column("_hw_reason").to_pylist(), strict=True
        ):
            if reason.startswith("duplicate"):
                first = int(reason.rsplit("line ", 1)[1].rstrip(")"))
                assert body[first - 1].split(",")[0] == body[line - 1].split(",")[0]  # same event_id


def test_reprocessing_is_idempotent_and_loads_one_partition(clean_project: Settings, tmp_path: Path) -> None:
    first = run_month(clean_project, "2021-04")
    again = run_month(clean_project, "2021-04")
    assert again.skipped
    assert again.rows_out == first.rows_out
    forced = run_month(clean_project, "2021-04", force=True)
    assert not forced.skipped
    assert forced.load is not None
    assert forced.load["skipped"]
    wh = warehouse_from_settings(clean_project)
    n = wh.query(f"SELECT count(*) AS n FROM {FACT_TABLE} WHERE event_month = DATE '2021-04-01'").column(0)[0]
    assert n.as_py() == first.rows_out
    # a changed file replaces the month's rows, not adds to them
    path = raw_csv(clean_project, "2021-04")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-100]), encoding="utf-8")
    changed = run_month(clean_project, "2021-04")
    assert changed.rows_out == first.rows_out - 100
    assert changed.batch_id != first.batch_id
    n = wh.query(f"SELECT count(*) AS n FROM {FACT_TABLE} WHERE event_month = DATE '2021-04-01'").column(0)[0]
    assert n.as_py() == first.rows_out - 100


def one_month_project(folder: Path, text: str) -> Settings:
    """A new project whose source holds one hand-written month, 2021/05/events.csv."""
    from headwater.config import init_project, load_settings

    init_project(folder)
    month_dir = folder / SOURCE / "2021/05"
    month_dir.mkdir(parents=True)
    (month_dir / "events.csv").write_text(text, encoding="utf-8")
    return load_settings(folder, env={})


def test_timestamps_with_offsets_become_utc(tmp_path: Path) -> None:
    settings = one_month_project(
        tmp_path,
        "event_id,event_time,user_id,company_id,event_type,properties\n"
        "1,2021-05-03T10:00:00+02:00,1,1,click,a\n"
        "2,2021-05-03 10:00:00Z,1,1,click,\n"
        "3,2021-05-03 10:00:00,2,1,login,b\n"
        "4,2021-05-31T23:30:00-02:00,2,1,login,late\n",
    )
    df = process_month(str(tmp_path / "data/incoming/events"), "2021-05", settings=settings, load=False)
    assert [t.isoformat() for t in df["event_time"]] == [
        "2021-05-03T08:00:00+00:00",
        "2021-05-03T10:00:00+00:00",
        "2021-05-03T10:00:00+00:00",
    ]
    assert df.attrs["report"]["rejected_invalid"] == 1  # 2021-06-01 01:30 UTC is outside May
    assert df["properties"].isna().tolist() == [False, True, False]


def test_wrong_header_is_one_clear_error_and_nothing_is_written(tmp_path: Path) -> None:
    settings = one_month_project(tmp_path, "id,time,user\n1,2021-05-03,1\n")
    with pytest.raises(DataError, match=r"2021/05/events.csv line 1: header 'id,time,user' differs"):
        run_month(settings, "2021-05")
    assert not (tmp_path / "data/processed").exists()


def test_bytes_that_are_no_csv_are_one_error_naming_their_lines(tmp_path: Path) -> None:
    header = "event_id,event_time,user_id,company_id,event_type,properties\n"
    good = "1,2021-05-03 10:00:00,1,1,click,a\n2,2021-05-03 10:00:00,1,1,click,b\n"
    settings = one_month_project(tmp_path, header + good)
    run_month(settings, "2021-05", load=False)
    published = tmp_path / "data/processed/events/year=2021/month=05/events.parquet"
    before = published.read_bytes()
    noise = np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    source = tmp_path / SOURCE / "2021/05/events.csv"
    source.write_bytes((header + good).encode() + noise)
    lines = 1 + (header + good).count("\n") + noise.count(b"\n")
    with pytest.raises(DataError) as err:
        run_month(settings, "2021-05", load=False)
    assert str(err.value).startswith(f"{source} lines ")
    assert f"-{lines}: not readable as CSV (" in str(err.value)
    assert "\n" not in str(err.value)
    assert published.read_bytes() == before  # the month published earlier stays as it was


def test_carriage_return_line_breaks_are_one_clear_error(tmp_path: Path) -> None:
    header = "event_id,event_time,user_id,company_id,event_type,properties"
    settings = one_month_project(tmp_path, f"{header}\r1,2021-05-03 10:00:00,1,1,click,a\r")
    with pytest.raises(DataError, match=r"line 1: lines end with a carriage return alone") as err:
        run_month(settings, "2021-05")
    assert "\n" not in str(err.value)
    source = tmp_path / SOURCE / "2021/05/events.csv"
    source.write_text("x" * 100_000, encoding="utf-8")  # no line break at all: the header is cut short
    with pytest.raises(DataError, match=r"line 1: header 'x{200}\.\.\.' differs"):
        run_month(settings, "2021-05")
    assert not (tmp_path / "data/processed").exists()


def test_missing_month_names_the_expected_file(clean_project: Settings) -> None:
    with pytest.raises(DataError, match=r"2022/01/events.csv: no events file for 2022-01"):
        run_month(clean_project, "2022-01")


def test_small_memory_limit_still_processes(clean_project: Settings) -> None:
    settings = clean_project.model_copy(
        update={"events": clean_project.events.model_copy(update={"memory_limit": "64MB", "threads": 1})}
    )
    report = run_month(settings, "2021-05", load=False, force=True)
    assert report.rows_out == pandas_clean(raw_csv(clean_project, "2021-05"), "2021-05")[1]["rows_out"]


def test_report_writes_json_csv_png_and_html(clean_project: Settings, tmp_path: Path) -> None:
    run_month(clean_project, "2021-06", load=False)
    result = analyse(clean_project, [Month.parse("2021-06")])
    written = {p.name for p in result.write(tmp_path / "rep")}
    assert {
        "report.json",
        "per_day.csv",
        "top_users.csv",
        "per_day.png",
        "top_users.png",
        "report.html",
    } <= written
    assert (tmp_path / "rep/per_day.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "rep/report.json").read_text())
    assert data["total"] == result.total
    assert len(data["top_users"]) == clean_project.events.top_n
    page = (tmp_path / "rep/report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "http" not in page.replace("http-equiv", "")


def test_publishing_syncs_the_month_before_the_rename_and_the_folder_after(
    dirty_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow path's Parquet is written by DuckDB's COPY, which does not sync it: publishing must,
    or a crash right after the month is reported could leave a renamed file without its bytes."""
    events = record_syncs(monkeypatch)
    report = run_month(dirty_project, "2021-02", load=False, force=True)
    assert not report.fast_path  # the DuckDB path
    published = Path(report.processed_uri)
    file_ino, folder_ino = published.stat().st_ino, published.parent.stat().st_ino
    moved = events.index(("replace", file_ino))
    assert ("fsync", file_ino) in events[:moved]
    assert ("fsync", folder_ino) in events[moved + 1 :]


def _same_analyses(settings: Settings, month: str, path: Path) -> int:
    """The report from the counts kept beside ``path``, from the file without them, and from DuckDB
    must be equal; returns the total."""
    assert counts.load(path) is not None  # what analyse reads instead of the month
    kept = analyse(settings, [Month.parse(month)], top_n=7)
    counts.sidecar_path(path).unlink()
    read = analyse(settings, [Month.parse(month)], top_n=7)
    by_duckdb = analyse_table(f"read_parquet('{path}')", [month], 7)
    for name in ("per_day", "per_month", "per_year", "top_users", "top_companies"):
        pd.testing.assert_frame_equal(getattr(kept, name), getattr(read, name), check_exact=True)
        pd.testing.assert_frame_equal(getattr(kept, name), getattr(by_duckdb, name), check_exact=True)
    assert kept.total == read.total == by_duckdb.total
    return kept.total


def test_the_pass_keeps_its_counts_beside_the_month_and_reports_from_them(clean_project: Settings) -> None:
    report = run_month(clean_project, "2021-05", load=False, force=True)
    assert report.fast_path
    assert _same_analyses(clean_project, "2021-05", Path(report.processed_uri)) == report.rows_out


def test_counts_kept_by_the_pass_are_of_utc_days(tmp_path: Path) -> None:
    settings = one_month_project(
        tmp_path,
        "event_id,event_time,user_id,company_id,event_type,properties\n"
        "1,2021-05-03 21:00:00,1,1,click,a\n"  # 2021-05-04 01:00 UTC
        "2,2021-05-03 10:00:00,1,2,click,\n"
        "3,2021-05-04 10:00:00,2,2,login,b\n",
    )
    settings = settings.model_copy(
        update={"events": settings.events.model_copy(update={"timezone": "America/New_York"})}
    )
    report = run_month(settings, "2021-05", str(tmp_path / "data/incoming/events"), load=False)
    assert report.fast_path
    assert _same_analyses(settings, "2021-05", Path(report.processed_uri)) == 3
    days = analyse(settings, [Month.parse("2021-05")]).per_day
    assert dict(zip(days["day"].dt.strftime("%m-%d"), days["events"], strict=True)) == {
        "05-03": 1,
        "05-04": 2,
    }


def test_a_month_rewritten_by_the_exact_path_gets_no_counts_and_loses_old_ones(
    dirty_project: Settings,
) -> None:
    report = run_month(dirty_project, "2021-03", load=False, force=True)
    assert not report.fast_path  # duplicates and bad rows: DuckDB rewrote the month
    path = Path(report.processed_uri)
    assert not counts.sidecar_path(path).exists()
    stale = Tally.of(pq.read_table(path, columns=["event_time", "user_id", "company_id"]).slice(0, 10))
    kept = stale.counts({"user_id": np.dtype("int64"), "company_id": np.dtype("int64")})
    assert kept is not None
    counts.save(kept, path)  # as if an earlier version of the month had been the pass's own
    run_month(dirty_project, "2021-03", load=False, force=True)
    assert not counts.sidecar_path(path).exists()
    assert analyse(dirty_project, [Month.parse("2021-03")]).total == report.rows_out


@pytest.mark.parametrize("chunk_bytes", [120, 900, 1 << 20])
def test_quarantined_lines_are_file_lines_around_empty_lines_and_values_spanning_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    from functools import partial

    from headwater.events import parse, pipeline

    monkeypatch.setattr(pipeline, "parse_month_csv", partial(parse.parse_month_csv, chunk_bytes=chunk_bytes))
    rng = np.random.default_rng(5)
    records: list[tuple[str, str]] = []  # (text of the record, what the pipeline should do with it)
    for i in range(1, 400):
        props = '"two\nlines"' if rng.random() < 0.1 else '"one, ""quoted"" line"'
        kind = rng.choice(["ok", "ok", "ok", "ok", "empty", "ragged", "bad_int", "null", "outside", "dup"])
        time = "2021-05-03 10:00:00"
        text = {
            "ok": f"{i},{time},{i % 7 + 1},1,click,{props}\n",
            "empty": "\n",
            "ragged": f"{i},{time},1\n",
            "bad_int": f'{i},{time},x{i},1,click,"bad\nvalue"\n',
            "null": f",{time},1,1,click,{props}\n",
            "outside": f"{i},2021-06-03 10:00:00,1,1,click,{props}\n",
            "dup": f"{max(1, i - 3)},{time},1,1,click,{props}\n",
        }[str(kind)]
        records.append((text, str(kind)))
    body = "".join(text for text, _ in records)
    settings = one_month_project(
        tmp_path, "event_id,event_time,user_id,company_id,event_type,properties\n" + body
    )
    # the line each record starts on, counted here one record at a time
    expected: dict[int, str] = {}
    line, seen_ids = 2, set()
    for text, kind in records:
        event_id = text.split(",")[0]
        if kind == "dup" and event_id not in seen_ids:
            kind = "ok"  # its first: kept
        if kind == "ok" or kind == "dup":
            seen_ids.add(event_id)
        if kind not in ("ok", "empty"):
            expected[line] = kind
        line += text.count("\n")
    report = run_month(settings, "2021-05", load=False)
    held = [show_quarantine(settings, e.entry_id, None)[1] for e in list_quarantine(settings, "events")]
    got = {
        line: reason
        for t in held
        for line, reason in zip(
            t.column("_hw_line").to_pylist(), t.column("_hw_reason").to_pylist(), strict=True
        )
    }
    assert sorted(got) == sorted(expected)
    assert report.quarantined == len(expected)
    said = {"ragged": "MISSING COLUMNS", "bad_int": "user_id", "null": "event_id: missing"}
    said |= {"outside": "is outside 2021-05", "dup": "duplicate event_id"}
    for line, reason in got.items():
        assert said[expected[line]] in reason, (line, expected[line], reason)
