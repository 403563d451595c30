"""The chunked CSV pass: many small ranges must give exactly what one careful read of the whole file gives."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from headwater.events.analysis import count_parquet
from headwater.events.parse import DELTA_COLUMNS, OUTPUT_SCHEMA, ParseResult, parse_month_csv

HEADER = "event_id,event_time,user_id,company_id,event_type,properties\n"
REQUIRED = ("event_id", "event_time", "user_id", "company_id", "event_type")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def clean_lines(n: int, start_id: int = 1) -> list[str]:
    return [
        f'{i},2021-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00,{i % 97 + 1},{i % 13 + 1},"click","p {i}"\n'
        for i in range(start_id, start_id + n)
    ]


READERS = {"plain": True}
"""Whether :func:`parse` reads plain ranges with the compiled reader: every test runs with both readers."""


@pytest.fixture(autouse=True, params=[True, False], ids=["plain-reader", "pyarrow-reader"])
def reader(request: pytest.FixtureRequest) -> Iterator[None]:
    READERS["plain"] = request.param
    yield
    READERS["plain"] = True


def parse(
    path: Path, chunk_bytes: int, *, threads: int | None = None, timezone: str = "UTC"
) -> tuple[list[dict[str, object]], ParseResult]:
    out = path.with_suffix(".parquet")
    progress: list[int] = []
    result = parse_month_csv(
        path,
        out,
        date(2021, 3, 1),
        required=REQUIRED,
        chunk_bytes=chunk_bytes,
        threads=threads,
        timezone=timezone,
        on_progress=progress.append,
        plain=READERS["plain"],
    )
    assert sum(progress) == path.stat().st_size  # the progress bar ends at 100%, header included
    if result.counts is not None:  # what the pass counted is what the file holds, whichever reader read it
        counted = count_parquet([out])
        assert counted is not None
        assert (result.counts.days, result.counts.dtypes) == (counted.days, counted.dtypes)
        for name in ("user_id", "company_id"):
            assert (
                np.trim_zeros(getattr(result.counts, name), "b").tolist() == getattr(counted, name).tolist()
            )
    return pq.read_table(out).to_pylist(), result


@pytest.mark.parametrize("chunk_bytes", [64, 1000, 1 << 20])
def test_clean_file_is_the_same_in_any_number_of_ranges(tmp_path: Path, chunk_bytes: int) -> None:
    path = write(tmp_path / "e.csv", clean_lines(3000))
    rows, result = parse(path, chunk_bytes, threads=2)
    assert [r["event_id"] for r in rows] == list(range(1, 3001))
    assert rows[4]["properties"] == "p 5"
    assert {r["event_month"] for r in rows} == {date(2021, 3, 1)}
    assert result.rows == 3000
    assert result.rejects.num_rows == 0
    assert result.stats.ids_increasing
    assert not any(result.stats.nulls.values())
    if chunk_bytes == 64:
        assert result.chunks > 100
    assert result.plain_chunks == (result.chunks if READERS["plain"] else 0)


def test_values_with_line_breaks_are_never_cut(tmp_path: Path) -> None:
    lines = clean_lines(400)
    for i in range(0, 400, 7):  # every 7th value spans lines, some with quotes inside
        lines[i] = lines[i].replace(f'"p {i + 1}"', f'"line one\nline ""two""\n{i + 1}"')
    path = write(tmp_path / "e.csv", lines)
    expected = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    for chunk_bytes in (50, 333, 4096):
        rows, result = parse(path, chunk_bytes)
        assert [r["properties"] for r in rows] == [e["properties"] for e in expected]
        assert result.rejects.num_rows == 0


def test_rejected_lines_carry_file_line_numbers_across_ranges(tmp_path: Path) -> None:
    lines = clean_lines(1000)
    bad = {
        57: "ragged,line\n",
        300: "301,not a time,1,1,click,x\n",
        301: "302,2021-03-02 00:00:00,abc,1,click,x\n",
    }
    bad[870] = "871,2021-03-02 00:00:00,5,1,click,x,extra\n"
    for i, text in bad.items():
        lines[i] = text
    path = write(tmp_path / "e.csv", lines)
    for chunk_bytes in (200, 5000, 1 << 20):
        rows, result = parse(path, chunk_bytes)
        got = result.rejects.column("_hw_line").to_pylist()
        assert got == [i + 2 for i in sorted(bad)]  # line 1 is the header
        raw = result.rejects.column("_hw_raw").to_pylist()
        assert raw[0] == "ragged,line"
        assert len(rows) == 1000 - len(bad)
        assert [r["event_id"] for r in rows] == [i + 1 for i in range(1000) if i not in bad]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_empty_lines_do_not_shift_the_line_numbers_of_later_rejects(tmp_path: Path, newline: str) -> None:
    lines = clean_lines(1000)
    lines[10] = "\n" + lines[10]  # two empty lines, skipped as no row
    lines[420] = "\n" + lines[420]
    lines[700] = "701,2021-03-02 00:00:00,abc,1,click,x\n"
    path = tmp_path / "e.csv"
    path.write_bytes((HEADER + "".join(lines)).replace("\n", newline).encode())
    bad_line = 1 + 700 + 2 + 1  # the header, the rows before it, the two empty lines
    assert path.read_text(encoding="utf-8").splitlines()[bad_line - 1].startswith("701,")
    for chunk_bytes in (200, 5000, 1 << 20):
        rows, result = parse(path, chunk_bytes)
        assert result.rejects.column("_hw_line").to_pylist() == [bad_line]
        assert [r["event_id"] for r in rows] == [i + 1 for i in range(1000) if i != 700]


def test_offsets_and_local_zone_end_in_utc_whichever_reader_took_the_range(tmp_path: Path) -> None:
    lines = [
        "1,2021-03-03 10:00:00,1,1,click,a\n",  # naive: read in the project's zone
        "2,2021-03-03 10:00:00,1,1,click,b\n",
        "3,2021-03-03T10:00:00+02:00,1,1,click,c\n",  # an offset: the fast reader refuses this range
        "4,2021-03-03 10:00:00,1,1,click,d\n",
    ]
    path = write(tmp_path / "e.csv", lines)
    for chunk_bytes in (30, 1 << 20):
        rows, _ = parse(path, chunk_bytes, timezone="Europe/Berlin")
        times = [str(r["event_time"]) for r in rows]
        assert times == [
            "2021-03-03 09:00:00",
            "2021-03-03 09:00:00",
            "2021-03-03 08:00:00",
            "2021-03-03 09:00:00",
        ]


def test_matches_duckdb_reading_the_whole_file(tmp_path: Path) -> None:
    lines = clean_lines(2000)
    lines[10] = '11,2021-03-02 00:00:00,1,1,"",""\n'  # empty strings are NULL, as DuckDB reads them
    lines[11] = "12,,1,1,click,x\n"
    path = write(tmp_path / "e.csv", lines)
    rows, _ = parse(path, 700)
    con = duckdb.connect()
    expected = con.sql(
        f"SELECT * FROM read_csv('{path}', header = true, auto_detect = false, columns = {{'event_id': 'BIGINT', "
        "'event_time': 'TIMESTAMP', 'user_id': 'BIGINT', 'company_id': 'BIGINT', 'event_type': 'VARCHAR', "
        "'properties': 'VARCHAR'}, quote = '\"', escape = '\"')"
    ).to_arrow_table()
    assert [{k: r[k] for k in expected.column_names} for r in rows] == expected.to_pylist()


def test_parsed_rows_do_not_share_the_reused_read_buffer(tmp_path: Path) -> None:
    """Each parse thread reads its ranges into one reused buffer; the rows parsed from a range must
    not point into it (both readers copy what they keep), or the next range would overwrite them."""
    import os

    from headwater.events import parse
    from headwater.events.plain import read_plain

    path = tmp_path / "events.csv"
    path.write_bytes(
        b'1,2021-01-01 00:00:00,5,6,click,"hello, world"\n2,2021-01-01 00:00:01,7,8,view,plain\n'
    )
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = parse._fast(fd, 0, 0, path.stat().st_size, "UTC", read_plain if READERS["plain"] else None)
        assert chunk.table is not None
        assert chunk.plain == READERS["plain"]
        before = chunk.table.to_pylist()
        parse._LOCAL.buf[:] = b"X" * len(parse._LOCAL.buf)  # the next range lands here
        assert chunk.table.to_pylist() == before
        assert before[0]["properties"] == "hello, world"
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_parse_threads_yield_to_the_writing_thread() -> None:
    """The parse threads lower their own priority; the calling (writing) thread keeps its own."""
    import os
    import threading

    from headwater.events import parse

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def probe() -> None:
        parse._yield_to_writer()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert seen == [max(base, parse.PARSE_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_the_month_reads_back_with_its_declared_types_from_any_mix_of_ranges(tmp_path: Path) -> None:
    """Ranges read by PyArrow and by DuckDB (the careful reader) make one file that reads back with the
    declared types everywhere, keeps every value in order, and is encoded as declared."""
    kinds = ["click", "search", "login", "page_view", "purchase"]
    lines = [
        f"{i},2021-03-{1 + i % 28:02d} 10:00:00,{i % 7 + 1},{i % 3 + 1},{kinds[(i // 300) % 5]},p\n"
        for i in range(1, 4001)
    ]
    lines[2500] = f"2501,2021-03-05 10:00:00+02:00,1,1,{kinds[3]},p\n"  # an offset: the range goes to DuckDB
    path = write(tmp_path / "e.csv", lines)
    rows, result = parse(path, 4000, threads=2)
    assert result.careful_chunks >= 1
    assert result.chunks > 10
    out = path.with_suffix(".parquet")
    assert pq.read_schema(out) == OUTPUT_SCHEMA
    assert [r["event_type"] for r in rows] == [kinds[(i // 300) % 5] for i in range(1, 4001)]
    types = duckdb.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(out)]).fetchall()
    assert ("event_type", "VARCHAR") in [(t[0], t[1]) for t in types]
    pages = duckdb.execute(
        "SELECT path_in_schema, encoding_stats FROM parquet_metadata(?)", [str(out)]
    ).fetchall()
    encodings: dict[str, set[str]] = {}
    for column, stats in pages:
        encodings.setdefault(column, set()).update(
            p["encoding"] for p in stats if p["page_type"].startswith("DATA")
        )
    assert encodings["event_type"] == {"RLE_DICTIONARY"}
    for column in DELTA_COLUMNS:
        assert encodings[column] == {"DELTA_BINARY_PACKED"}, column


@pytest.mark.parametrize(("rows", "group"), [(3000, 700), (2800, 700), (500, 700)])
def test_row_groups_hold_exactly_row_group_rows_but_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, group: int
) -> None:
    from headwater.events import parse as parse_module

    monkeypatch.setattr(parse_module, "ROW_GROUP", group)
    path = write(tmp_path / "e.csv", clean_lines(rows))
    got, result = parse(path, 1000, threads=2)  # ranges of ~17 rows, never a multiple of the group
    meta = pq.ParquetFile(path.with_suffix(".parquet")).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [group] * (rows // group) + ([rows % group] if rows % group else [])
    assert [r["event_id"] for r in got] == list(range(1, rows + 1))
    assert result.rows == rows


def test_without_numba_every_range_is_read_by_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Numba that cannot be imported (say, a NumPy newer than it supports) makes the pass slower, not
    wrong: one warning, and PyArrow's reader reads every range."""
    monkeypatch.delitem(sys.modules, "headwater.events.plain", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    path = write(tmp_path / "e.csv", clean_lines(500))
    out = tmp_path / "e.parquet"
    with caplog.at_level("WARNING", logger="headwater.events.parse"):
        result = parse_month_csv(path, out, date(2021, 3, 1), required=REQUIRED, chunk_bytes=4000, plain=True)
    assert "compiled reader of plain lines is unavailable" in caplog.text
    assert (result.rows, result.plain_chunks, result.careful_chunks) == (500, 0, 0)
    assert pq.read_table(out).column("event_id").to_pylist() == list(range(1, 501))
