"""The analyses counted in NumPy (local Parquet) must equal DuckDB's, frame for frame, and months that
NumPy cannot count (NULLs, ids out of range, zoned timestamps) must go to DuckDB."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.events.analysis import analyse_table, count_parquet, from_counts
from headwater.sqltext import sql_list

FRAMES = ("per_day", "per_month", "per_year", "top_users", "top_companies")


def _events(n: int, seed: int, start: str = "2021-01-01", days: int = 45, unit: str = "us") -> pa.Table:
    rng = np.random.default_rng(seed)
    base = np.datetime64(start).astype(f"datetime64[{unit}]")
    ticks = base + rng.integers(0, days * 86_400, n).astype("timedelta64[s]").astype(f"timedelta64[{unit}]")
    return pa.table(
        {
            "event_time": pa.array(ticks),
            "user_id": pa.array(rng.zipf(1.3, n) % 5000, pa.int64()),
            "company_id": pa.array(rng.integers(0, 40, n), pa.int32()),
        }
    )


def _duckdb(paths: list[Path], top_n: int) -> object:
    return analyse_table(
        f"(SELECT event_time, user_id, company_id FROM read_parquet({sql_list(paths)}))", ["m"], top_n
    )


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_counted_in_numpy_equals_duckdb(tmp_path: Path, unit: str) -> None:
    paths = []
    for i, (start, days) in enumerate([("2021-01-01", 31), ("2021-01-20", 45), ("1969-12-30", 3)]):
        path = tmp_path / f"m{i}.parquet"
        pq.write_table(_events(7000, i, start, days, unit), path, row_group_size=1500)
        paths.append(path)
    counts = count_parquet(paths)
    assert counts is not None
    got, expected = from_counts(counts, ["m"], 7), _duckdb(paths, 7)
    assert got.total == expected.total == 21000  # type: ignore[attr-defined]
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=True)


@pytest.mark.parametrize(
    "change",
    [
        ("user_id", pa.array([None] + [1] * 99, pa.int64())),
        ("user_id", pa.array([-1] + [1] * 99, pa.int64())),
        ("company_id", pa.array([1 << 40] + [1] * 99, pa.int64())),
        ("event_time", pa.array([dt.datetime(2021, 1, 1)] * 100, pa.timestamp("us", "UTC"))),
    ],
)
def test_months_numpy_cannot_count_go_to_duckdb(tmp_path: Path, change: tuple[str, pa.Array]) -> None:
    table = _events(100, 9)
    table = table.set_column(table.schema.get_field_index(change[0]), change[0], change[1])
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    assert count_parquet([path]) is None


def test_a_month_without_an_id_column_goes_to_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(_events(100, 10).drop_columns(["company_id"]), path)
    assert count_parquet([path]) is None


@pytest.mark.parametrize("damage", ["no column", "not parquet"])
def test_a_month_that_cannot_be_analysed_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    from headwater.config import init_project, load_settings
    from headwater.errors import DataError
    from headwater.events import Month, analyse
    from headwater.events.pipeline import processed_uri

    init_project(tmp_path)
    settings = load_settings(tmp_path, env={})
    path = Path(processed_uri(settings, Month.parse("2021-01")))
    path.parent.mkdir(parents=True)
    if damage == "no column":
        pq.write_table(_events(100, 11).drop_columns(["company_id"]), path)
    else:
        path.write_bytes(b"event_id,event_time\n1,2021-01-01\n")
    with pytest.raises(DataError) as raised:
        analyse(settings, [Month.parse("2021-01")])
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert ("no column company_id" in message) == (damage == "no column")


def test_a_top_below_one_and_a_file_for_a_folder_are_usage_errors(tmp_path: Path) -> None:
    """``top_n=0`` used to mean the default and a negative one listed nobody; a report written to an
    existing file failed with FileExistsError. Both are one-line usage errors, and the file is kept."""
    from headwater.config import init_project, load_settings
    from headwater.errors import UsageError
    from headwater.events import Month, analyse
    from headwater.events.pipeline import processed_uri

    init_project(tmp_path)
    settings = load_settings(tmp_path, env={})
    path = Path(processed_uri(settings, Month.parse("2021-01")))
    path.parent.mkdir(parents=True)
    pq.write_table(_events(500, 12), path)
    for top in (0, -3):
        with pytest.raises(UsageError, match=f"top {top}: list at least 1"):
            analyse(settings, [Month.parse("2021-01")], top_n=top)
    result = analyse(settings, [Month.parse("2021-01")], top_n=1)
    assert len(result.top_users) == 1
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    with pytest.raises(UsageError, match="is a file; the report goes into a folder"):
        result.write(taken)
    assert taken.read_text() == "mine"
