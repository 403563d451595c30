"""Checks on Parquet batches answered from the files' structure (``headwater.quality.columnar``).

Every answer must equal what SQL counts over the same rows: each test checks the Parquet batch twice,
once read in place (where the columnar path may answer) and once as an in-memory Arrow table (SQL only),
and compares every check's failing count. Unit tests then pin which checks the path itself answers, so
the comparison cannot pass by everything quietly falling back to SQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.arrowbuf import int64_values
from headwater.quality import BatchTarget, parse_checks, run_checks
from headwater.quality.checks import Check
from headwater.quality.columnar import ParquetColumns, answer
from headwater.quality.dictpage import dictionary_values

TYPES = ["page_view", "click", "search", "login"]


def _events(n: int, seed: int, *, start: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "event_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "user_id": pa.array(rng.integers(1, 500, n), pa.int64()),
            "event_type": pa.array(rng.choice(TYPES, n)),
            "event_time": pa.array(
                np.datetime64("2021-01-01T00:00:00", "us")
                + rng.integers(0, 10**12, n).astype("timedelta64[us]")
            ),
            "note": pa.array([f"free text {i}" for i in rng.integers(0, 10**9, n)]),
        }
    )


def _users() -> pa.Table:
    return pa.table({"user_id": pa.array(np.arange(1, 500, dtype=np.int64))})


CHECKS: list[dict[str, Any]] = [
    {"type": "unique", "column": "event_id"},
    {"type": "unique", "column": "event_time"},
    {"type": "accepted_values", "column": "event_type", "values": TYPES},
    {"type": "regex", "column": "event_type", "pattern": "[a-z_]+"},
    {"type": "regex", "column": "note", "pattern": "free text [0-9]+"},
    {"type": "relationships", "column": "user_id", "to": "users.user_id"},
    {"type": "not_null", "column": "user_id"},
    {"type": "not_null", "columns": ["user_id", "event_type"]},
    {"type": "range", "column": "user_id", "min": 1, "max": 499},
    {"type": "range", "column": "event_time", "min": "2021-01-01", "max": "2021-01-13", "inclusive": False},
    {"type": "row_count", "min": 1},
]


def _write(tmp: Path, parts: list[pa.Table], **options: Any) -> list[Path]:
    paths = []
    for i, part in enumerate(parts):
        path = tmp / f"part-{i}.parquet"
        pq.write_table(part, path, row_group_size=options.pop("row_group_size", 1000), **options)
        paths.append(path)
    return paths


def _failing(target: BatchTarget, checks: list[Check]) -> dict[str, int]:
    report = run_checks(target, checks, sample_rows=0)
    assert not [r.error for r in report.results if r.error]
    return {r.name: r.failing_count for r in report.results}


def _same_as_sql(paths: list[Path], checks: list[Check], users: pa.Table | None = None) -> dict[str, int]:
    """The failing counts of the batch read in place, asserted equal to SQL's over the same rows."""
    users = _users() if users is None else users
    in_place = BatchTarget.from_files(paths, "events", refs={"users": users})
    in_memory = BatchTarget.from_arrow(pq.read_table(paths), "events", refs={"users": users})
    got, expected = _failing(in_place, checks), _failing(in_memory, checks)
    assert got == expected
    return got


def _answered(paths: list[Path], checks: list[Check], users: pa.Table | None = None) -> dict[str, int]:
    """What the columnar path alone answers, by check name."""
    keys = int64_values((_users() if users is None else users).column("user_id"))
    found = answer(paths, checks, con=duckdb.connect(), ref_keys=lambda check: keys)
    return {checks[i].label: n for i, n in found.items()}


def test_a_clean_batch_is_answered_without_sql_and_matches_it(tmp_path: Path) -> None:
    parts = [_events(3000, 1), _events(2000, 2, start=3001)]
    paths = _write(tmp_path, parts)
    checks = parse_checks(CHECKS)
    assert set(_same_as_sql(paths, checks).values()) == {0}
    answered = _answered(paths, checks)
    assert answered == {
        "unique(event_id)": 0,
        "accepted_values(event_type)": 0,
        "regex(event_type)": 0,
        "regex(note)": 0,  # mostly distinct, but every page is dictionary-encoded: the dictionaries hold it
        "relationships(user_id -> users.user_id)": 0,
    }
    # event_time does not increase within a row group: left to SQL


def test_keys_interleaved_across_files_are_still_proven_unique(tmp_path: Path) -> None:
    ids = np.arange(1, 6001, dtype=np.int64)
    odd, even = _events(3000, 3), _events(3000, 4)
    odd = odd.set_column(0, "event_id", pa.array(ids[0::2]))
    even = even.set_column(0, "event_id", pa.array(ids[1::2]))
    paths = _write(tmp_path, [odd, even])
    checks = parse_checks([{"type": "unique", "column": "event_id"}])
    assert _answered(paths, checks) == {"unique(event_id)": 0}
    assert _same_as_sql(paths, checks) == {"unique(event_id)": 0}


@pytest.mark.parametrize("where", ["same_group", "other_file"])
def test_a_repeated_key_is_left_to_the_exact_count(tmp_path: Path, where: str) -> None:
    first, second = _events(3000, 5), _events(3000, 6, start=3001)
    if where == "same_group":  # not increasing within the row group
        ids = first.column("event_id").to_numpy().copy()
        ids[10] = ids[9]
        first = first.set_column(0, "event_id", pa.array(ids))
    else:  # increasing in each row group, but the second file repeats two keys of the first
        ids = second.column("event_id").to_numpy().copy()
        ids[:2] = [100, 101]
        ids[2:] = np.arange(3003, 6001)
        second = second.set_column(0, "event_id", pa.array(ids))
    paths = _write(tmp_path, [first, second])
    checks = parse_checks([{"type": "unique", "column": "event_id"}])
    assert _answered(paths, checks) == {}
    assert _same_as_sql(paths, checks)["unique(event_id)"] == (2 if where == "same_group" else 4)


@pytest.mark.parametrize("dictionary", [False, True])
def test_orphans_are_counted_exactly_with_nulls_and_values_outside_the_keys(
    tmp_path: Path, dictionary: bool
) -> None:
    """Read in full, the rows are counted; from dictionary pages a missing value gives the check to SQL."""
    table = _events(4000, 7)
    users = table.column("user_id").to_numpy().copy()
    users[:5] = [0, -3, 10**12, 777, 499]  # below, far below, far above, a gap above, the last key
    mask = np.zeros(len(users), dtype=bool)
    mask[100:110] = True
    table = table.set_column(1, "user_id", pa.array(users, mask=mask))
    refs = pa.table({"user_id": pa.array(np.r_[np.arange(1, 500), 600], pa.int64())})
    paths = _write(tmp_path, [table.slice(0, 2500), table.slice(2500)], use_dictionary=dictionary)
    checks = parse_checks([{"type": "relationships", "column": "user_id", "to": "users.user_id"}])
    name = "relationships(user_id -> users.user_id)"
    assert _answered(paths, checks, refs) == ({} if dictionary else {name: 4})
    assert _same_as_sql(paths, checks, refs) == {name: 4}


def test_references_in_dictionary_pages_are_checked_without_reading_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _write(tmp_path, [_events(3000, 13), _events(2000, 14)])
    checks = parse_checks([{"type": "relationships", "column": "user_id", "to": "users.user_id"}])

    def no_rows(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the rows were read")

    monkeypatch.setattr(ParquetColumns, "read", no_rows)
    assert _answered(paths, checks) == {"relationships(user_id -> users.user_id)": 0}


def test_keys_far_from_zero_use_a_bitmap_from_the_smallest_key(tmp_path: Path) -> None:
    base = 10**15
    table = _events(3000, 8, start=base)
    table = table.set_column(1, "user_id", pa.array(table.column("user_id").to_numpy() + base))
    refs = pa.table({"user_id": pa.array(np.arange(base + 1, base + 450), pa.int64())})
    paths = _write(tmp_path, [table], use_dictionary=False)  # rows read in full: orphans counted
    checks = parse_checks(
        [
            {"type": "unique", "column": "event_id"},
            {"type": "relationships", "column": "user_id", "to": "users.user_id"},
        ]
    )
    expected = _same_as_sql(paths, checks, refs)
    assert expected["relationships(user_id -> users.user_id)"] > 0
    assert _answered(paths, checks, refs) == expected


def test_a_value_outside_the_accepted_ones_goes_to_sql(tmp_path: Path) -> None:
    table = _events(3000, 9)
    kinds = table.column("event_type").to_pylist()
    kinds[1234] = "Purchase"
    kinds[2000] = None
    table = table.set_column(2, "event_type", pa.array(kinds))
    paths = _write(tmp_path, [table])
    checks = parse_checks(CHECKS[2:4])
    assert _answered(paths, checks) == {}
    assert _same_as_sql(paths, checks) == {"accepted_values(event_type)": 1, "regex(event_type)": 1}


def test_a_column_whose_dictionary_fell_back_to_plain_pages_is_read_in_full(tmp_path: Path) -> None:
    """A writer stops dictionary-encoding when the dictionary grows too large; later pages are plain and
    their values are not in the dictionary page, so the dictionary pages alone cannot be trusted."""
    n = 20000
    kinds = [f"kind_{i % 300}" for i in range(n)]
    kinds[-1] = "Not Accepted"
    table = pa.table({"event_type": pa.array(kinds)})
    path = tmp_path / "fallback.parquet"
    pq.write_table(table, path, row_group_size=n, dictionary_pagesize_limit=512, data_page_size=256)
    stats = duckdb.execute("SELECT encoding_stats FROM parquet_metadata(?)", [str(path)]).fetchall()[0][0]
    assert any(p["page_type"].startswith("DATA") and p["encoding"] == "PLAIN" for p in stats)
    checks = parse_checks(
        [{"type": "accepted_values", "column": "event_type", "values": [f"kind_{i}" for i in range(300)]}]
    )
    assert _answered([path], checks) == {}
    assert _failing(BatchTarget.from_files([path], "t"), checks) == {"accepted_values(event_type)": 1}


def test_filtered_checks_columns_missing_from_a_file_and_other_types_are_left_to_sql(tmp_path: Path) -> None:
    table = _events(2000, 10)
    paths = _write(tmp_path, [table, table.drop_columns(["user_id"]).slice(0, 10)])
    checks = parse_checks(
        [
            {"type": "unique", "column": "event_id", "where": "event_id > 5"},
            {"type": "relationships", "column": "user_id", "to": "users.user_id"},
            {"type": "unique", "columns": ["event_id", "user_id"]},
        ]
    )
    assert _answered(paths, checks) == {}
    _same_as_sql(paths, checks)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_timestamp_keys_in_every_unit_and_zone(tmp_path: Path, unit: str, tz: str | None) -> None:
    start = pa.scalar(dt.datetime(2021, 3, 27, 23), pa.timestamp("s")).cast(pa.timestamp(unit)).value
    assert isinstance(start, int)
    ticks = pa.array(start + 3 * np.arange(4000, dtype=np.int64))
    table = pa.table({"at": ticks.view(pa.timestamp(unit)).cast(pa.timestamp(unit, tz))})
    paths = _write(tmp_path, [table.slice(0, 2000), table.slice(2000)])
    checks = parse_checks([{"type": "unique", "column": "at"}])
    assert _same_as_sql(paths, checks) == {"unique(at)": 0}
    # seconds are stored as milliseconds (keys 3000 ticks apart: too sparse for a bitmap), and
    # nanosecond statistics may be truncated to microseconds: then SQL answers, as checked above
    if unit in ("ms", "us"):
        assert _answered(paths, checks) == {"unique(at)": 0}


def test_date_keys(tmp_path: Path) -> None:
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(1500)]
    paths = _write(tmp_path, [pa.table({"day": pa.array(days)})])
    checks = parse_checks([{"type": "unique", "column": "day"}])
    assert _answered(paths, checks) == {"unique(day)": 0}


def test_random_batches_agree_with_sql(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    checks = parse_checks(CHECKS)
    for trial in range(6):
        folder = tmp_path / str(trial)
        folder.mkdir()
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            t = _events(
                int(rng.integers(1, 3000)), int(rng.integers(0, 10**6)), start=int(rng.integers(1, 9000))
            )
            if rng.random() < 0.5:
                ids = t.column("event_id").to_numpy().copy()
                ids[rng.integers(0, len(ids), 3)] = rng.integers(1, 9000, 3)
                t = t.set_column(0, "event_id", pa.array(ids))
            if rng.random() < 0.5:
                users = t.column("user_id").to_numpy().copy()
                users[rng.integers(0, len(users), 5)] = rng.integers(-5, 700, 5)
                t = t.set_column(1, "user_id", pa.array(users))
            parts.append(t)
        paths = _write(folder, parts, row_group_size=int(rng.integers(100, 2000)))
        _same_as_sql(paths, checks)


def test_checks_on_parquet_do_not_import_pandas(tmp_path: Path) -> None:
    """PyArrow's conversions from Python values and ``to_numpy`` import pandas, 0.2 s of a gate's run."""
    paths = _write(tmp_path, [_events(2000, 12)])
    users = tmp_path / "users.parquet"
    pq.write_table(_users(), users)
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from headwater.quality import BatchTarget, parse_checks, run_checks\n"
        f"checks = parse_checks(json.loads({__import__('json').dumps(CHECKS)!r}))\n"
        f"t = BatchTarget.from_files([Path({str(paths[0])!r})], 'events', refs={{'users': Path({str(users)!r})}})\n"
        "report = run_checks(t, checks)\n"
        "assert report.passed, report.to_json()\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("compression", ["none", "snappy", "gzip", "brotli", "zstd", "lz4"])
@pytest.mark.parametrize("kind", [pa.int64(), pa.int32(), pa.int16()])
def test_dictionary_pages_are_read_in_every_codec(
    tmp_path: Path, compression: str, kind: pa.DataType
) -> None:
    values = np.random.default_rng(15).integers(-1000, 1000, 20000)
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"a": pa.array(values).cast(kind)}), path, compression=compression)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    got = dictionary_values(path, chunk)
    if compression == "lz4":  # Parquet's old Hadoop-framed LZ4: no PyArrow codec reads it alone
        assert got is None
        return
    assert got is not None
    assert sorted(got.to_pylist()) == sorted(set(values.tolist()))


def test_a_chunk_without_a_dictionary_page_has_no_dictionary_values(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": pa.array(np.arange(5000))}), path, use_dictionary=False)
    assert dictionary_values(path, pq.ParquetFile(path).metadata.row_group(0).column(0)) is None
