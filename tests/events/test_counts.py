"""The counts the parse pass keeps beside a month must equal counting the file, and must be ignored the
moment they no longer describe the file beside them."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.events import counts
from headwater.events.analysis import analyse_table, count_parquet, from_counts
from headwater.events.counts import TALLY_MAX_ID, Tally, count_days
from headwater.sqltext import sql_list

FRAMES = ("per_day", "per_month", "per_year", "top_users", "top_companies")
INT64: dict[str, np.dtype[Any]] = {"user_id": np.dtype("int64"), "company_id": np.dtype("int64")}


def _events(n: int, seed: int, start: str = "2021-01-01", days: int = 31) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = np.datetime64(start, "us")
    ticks = base + rng.integers(0, days * 86_400_000_000, n).astype("timedelta64[us]")
    return pa.table(
        {
            "event_time": pa.array(ticks),
            "user_id": pa.array(rng.zipf(1.3, n) % 5000, pa.int64()),
            "company_id": pa.array(rng.integers(0, 40, n), pa.int64()),
        }
    )


def _tally(table: pa.Table, pieces: int) -> Tally:
    """Counted the way the pass counts: a tally per range, added up by the writing thread."""
    total = Tally()
    for part in np.array_split(np.arange(table.num_rows), pieces):
        total.absorb(Tally.of(table.slice(int(part[0]), len(part)) if len(part) else table.slice(0, 0)))
    return total


def _assert_same(got: object, expected: object) -> None:
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=True)


def _duckdb(paths: list[Path]) -> object:
    cols = "event_time, user_id, company_id"
    return analyse_table(f"(SELECT {cols} FROM read_parquet({sql_list(paths)}))", ["m"], 9)


@pytest.mark.parametrize(("start", "days"), [("2021-01-01", 31), ("1969-12-20", 20), ("1900-01-01", 80_000)])
def test_the_pass_tally_equals_counting_the_file(tmp_path: Path, start: str, days: int) -> None:
    table = _events(20_000, 3, start, days)
    path = tmp_path / "m.parquet"
    pq.write_table(table, path, row_group_size=3000)
    tallied = _tally(table, 7).counts(INT64)
    counted = count_parquet([path])
    assert tallied is not None
    assert counted is not None
    assert tallied.total == counted.total == 20_000
    _assert_same(from_counts(tallied, ["m"], 9), from_counts(counted, ["m"], 9))
    _assert_same(from_counts(tallied, ["m"], 9), _duckdb([path]))


def test_days_are_floored_across_1970() -> None:
    ticks = np.array(["1969-12-31T23:59:59", "1970-01-01T00:00:00", "1969-12-31T00:00:00"], "datetime64[us]")
    assert count_days(ticks.astype(np.int64), "us") == {-1: 2, 0: 1}
    far = np.array(["1700-01-01", "2200-01-01", "2200-01-01"], "datetime64[s]").astype(np.int64)
    assert count_days(far, "s") == {
        int(np.datetime64("1700-01-01", "D").astype(np.int64)): 1,
        int(np.datetime64("2200-01-01", "D").astype(np.int64)): 2,
    }


@pytest.mark.parametrize(
    "change",
    [
        ("user_id", pa.array([None] + [1] * 99, pa.int64())),
        ("company_id", pa.array([-1] + [1] * 99, pa.int64())),
        ("user_id", pa.array([TALLY_MAX_ID] + [1] * 99, pa.int64())),
        ("event_time", pa.array([dt.datetime(2021, 1, 1)] * 100, pa.timestamp("us", "UTC"))),
        ("event_time", pa.array([None] * 100, pa.timestamp("us"))),
        ("company_id", pa.array(["1"] * 100, pa.string())),
    ],
)
def test_a_range_it_cannot_count_leaves_the_month_without_counts(change: tuple[str, pa.Array]) -> None:
    bad = _events(100, 4)
    bad = bad.set_column(bad.schema.get_field_index(change[0]), change[0], change[1])
    total = Tally.of(_events(100, 5))
    total.absorb(Tally.of(bad))
    total.absorb(Tally.of(_events(100, 6)))
    assert total.counts(INT64) is None
    assert Tally.of(_events(100, 5)).counts(INT64) is not None


def test_the_counts_beside_a_month_are_read_instead_of_the_month(tmp_path: Path) -> None:
    table = _events(5000, 7)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=1000)
    tallied = _tally(table, 3).counts(INT64)
    assert tallied is not None
    path.chmod(0o644)
    sidecar = counts.save(tallied, path)
    assert sidecar == tmp_path / "_events.counts.npz"
    assert sidecar.stat().st_mode & 0o777 == 0o644  # readable by whoever reads the month
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    kept = counts.load(path)
    assert kept is not None
    _assert_same(from_counts(kept, ["m"], 9), _duckdb([path]))
    # not read from the file: the row groups now hold other rows, the answer is still the kept one
    other = tmp_path / "other.parquet"
    pq.write_table(_events(5000, 8), other, row_group_size=1000)
    assert counts.load(other) is None
    shutil.copy(sidecar, counts.sidecar_path(other))
    assert counts.load(other) is None  # the digest names events.parquet's footer, not this one


@pytest.mark.parametrize("how", ["rewritten", "filtered", "appended"])
def test_counts_of_an_earlier_file_are_ignored(tmp_path: Path, how: str) -> None:
    table = _events(5000, 9)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=1000)
    tallied = _tally(table, 2).counts(INT64)
    assert tallied is not None
    counts.save(tallied, path)
    changed = pq.read_table(path)  # keeps the file's key-value metadata, as pyarrow does
    if how == "rewritten":
        changed = changed.set_column(1, "user_id", pa.array(np.roll(table.column("user_id").to_numpy(), 1)))
    elif how == "filtered":
        changed = changed.slice(0, 4000)
    else:
        changed = pa.concat_tables([changed, changed.slice(0, 10)])
    pq.write_table(changed, path, row_group_size=1000)
    assert counts.load(path) is None
    got = count_parquet([path])
    assert got is not None
    _assert_same(from_counts(got, ["m"], 9), _duckdb([path]))


@pytest.mark.parametrize("damage", [b"", b"not a zip", None])
def test_an_unreadable_sidecar_is_ignored(tmp_path: Path, damage: bytes | None) -> None:
    table = _events(2000, 10)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    tallied = Tally.of(table).counts(INT64)
    assert tallied is not None
    sidecar = counts.save(tallied, path)
    if damage is None:  # valid archive, counts that do not add up
        with np.load(sidecar) as kept:
            arrays = {k: kept[k] for k in kept.files}
        arrays["user_id_events"] = arrays["user_id_events"] + 1
        np.savez_compressed(sidecar, **arrays)
    else:
        sidecar.write_bytes(damage)
    assert counts.load(path) is None
    assert count_parquet([path]) is not None


def test_months_with_and_without_kept_counts_add_up(tmp_path: Path) -> None:
    paths = []
    for i, start in enumerate(["2021-01-01", "2021-02-01", "2021-03-01"]):
        table = _events(4000, 20 + i, start, 28)
        path = tmp_path / f"m{i}" / "events.parquet"
        path.parent.mkdir()
        pq.write_table(table, path, row_group_size=1000)
        tallied = Tally.of(table).counts(INT64)
        if i != 1 and tallied is not None:
            counts.save(tallied, path)
        paths.append(path)
    got = count_parquet(paths)
    assert got is not None
    _assert_same(from_counts(got, ["m"], 9), _duckdb(paths))
    int32: dict[str, np.dtype[Any]] = {"user_id": np.dtype("int32"), "company_id": np.dtype("int64")}
    narrower = Tally.of(_events(10, 30)).counts(int32)
    assert narrower is not None
    counts.save(narrower, paths[1])
    assert count_parquet(paths) is None  # ids typed differently: DuckDB reconciles them
