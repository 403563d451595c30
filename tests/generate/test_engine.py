"""The engine: determinism, size targets, file splitting, formats, manifests, readers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from headwater.errors import SchemaError, UsageError
from headwater.generate import GenerateOptions, GenerateResult, generate, load_dataset
from headwater.schema import load_schema_text


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_whatever_workers_and_chunks(tmp_path: Path) -> None:
    schema = load_dataset("events")
    runs = [
        GenerateOptions(rows=300_000, workers=1, chunk_rows=65_536, table_rows={"users": 3000}),
        GenerateOptions(rows=300_000, workers=2, chunk_rows=262_144, table_rows={"users": 3000}),
        GenerateOptions(rows=300_000, workers=2, chunk_rows=1, table_rows={"users": 3000}),
    ]
    digests = []
    for i, opts in enumerate(runs):
        generate(schema, tmp_path / str(i), opts)
        digests.append(digest(tmp_path / str(i)))
    assert digests[0] == digests[1] == digests[2]
    assert len(digests[0]) == 8  # companies, users, 6 months of events
    other = generate(
        schema, tmp_path / "seed", GenerateOptions(rows=300_000, seed=43, table_rows={"users": 3000})
    )
    assert digest(other.out) != digests[0]


def test_parquet_is_deterministic_across_chunk_sizes(tmp_path: Path) -> None:
    schema = load_dataset("events")
    a = generate(schema, tmp_path / "a", GenerateOptions(rows=200_000, fmt="parquet", chunk_rows=65_536))
    b = generate(schema, tmp_path / "b", GenerateOptions(rows=200_000, fmt="parquet", chunk_rows=200_000))
    assert digest(a.out) == digest(b.out)
    table = pq.read_table(a.out / "2021" / "03" / "events.parquet")
    # Parquet has no second unit: seconds are stored as milliseconds, values unchanged
    assert table.num_rows > 0
    assert table.schema.field("event_time").type.unit == "ms"
    assert table.column("event_time").cast("int64").to_numpy().max() % 1000 == 0


def test_size_target_stops_at_the_first_row_reaching_it(tmp_path: Path) -> None:
    target = 7_000_000
    result = generate(
        load_dataset("events"), tmp_path / "first", GenerateOptions(size=target, table_rows={"users": 2000})
    )
    events = [f for f in result.manifest.files if f.table == "events"]
    total = sum(f.bytes for f in events)
    assert total >= target
    longest_row = 200
    assert total - target < longest_row
    # the chunk size does not change where it stops
    again = generate(
        load_dataset("events"),
        tmp_path / "again",
        GenerateOptions(size=target, chunk_rows=65_536, table_rows={"users": 2000}),
    )
    assert digest(again.out) == digest(result.out)


def test_partitioned_layout_and_manifest(events_small: GenerateResult) -> None:
    out = events_small.out
    months = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/events.csv"))
    assert months == [f"2021/{m:02d}/events.csv" for m in range(1, 7)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["meta"]["seed"] == 7
    assert len(manifest["meta"]["schema_sha256"]) == 64
    for entry in manifest["files"]:
        data = (out / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert data.count(b"\n") - 1 == entry["rows"]
    assert not list(out.rglob("*.partial"))
    for path in out.glob("*/*/events.csv"):
        month = path.parent.name
        times = pd.read_csv(path, usecols=["event_time"], parse_dates=["event_time"])["event_time"]
        assert (times.dt.month == int(month)).all()


def test_readers_agree_pyarrow_pandas_duckdb(events_small: GenerateResult) -> None:
    path = events_small.out / "2021" / "02" / "events.csv"
    arrow = pacsv.read_csv(path)
    frame = pd.read_csv(path)
    rows = duckdb.execute(
        f"select count(*), sum(user_id), count(properties) from read_csv('{path}')"
    ).fetchone()
    assert rows is not None
    assert arrow.num_rows == len(frame) == rows[0]
    assert int(frame["user_id"].sum()) == rows[1]
    assert int(frame["properties"].notna().sum()) == rows[2]
    assert str(arrow.schema.field("event_time").type).startswith("timestamp")


def test_files_split_by_rows_and_by_size(tmp_path: Path) -> None:
    schema = load_dataset("events")
    by_rows = generate(
        schema, tmp_path / "r", GenerateOptions(rows=100_000, file_rows=7000, table_rows={"users": 1000})
    )
    jan = sorted((by_rows.out / "2021" / "01").glob("events-*.csv"))
    assert jan[0].name == "events-00000.csv"
    assert len(jan) > 1
    counts = [p.read_bytes().count(b"\n") - 1 for p in jan]
    assert all(c == 7000 for c in counts[:-1])
    assert 0 < counts[-1] <= 7000
    by_size = generate(
        schema, tmp_path / "s", GenerateOptions(rows=100_000, file_bytes=200_000, table_rows={"users": 1000})
    )
    sizes = [f.bytes for f in by_size.manifest.files if f.table == "events"]
    assert max(sizes) <= 200_000
    assert len(sizes) > 6
    total = sum(f.rows or 0 for f in by_size.manifest.files if f.table == "events")
    assert total == 100_000


def test_existing_output_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    schema = load_dataset("events")
    opts = GenerateOptions(rows=1000, table_rows={"users": 100, "companies": 10})
    generate(schema, tmp_path, opts)
    before = digest(tmp_path)
    with pytest.raises(UsageError, match="already holds generated data"):
        generate(schema, tmp_path, opts)
    assert digest(tmp_path) == before


def test_unique_capacity_is_checked_before_writing(tmp_path: Path) -> None:
    schema = load_schema_text(
        "tables: {t: {rows: 2000, columns: {code: {type: string, generator: pattern, pattern: 'A-##', unique: true}}}}",
        "s.yaml",
    )
    with pytest.raises(SchemaError, match=r"2,000 unique values needed but the generator can make only 100"):
        generate(schema, tmp_path / "out", GenerateOptions())
    assert not (tmp_path / "out").exists()


def test_option_errors_are_usage_errors(tmp_path: Path) -> None:
    schema = load_dataset("events")
    with pytest.raises(UsageError, match="--rows and --size exclude each other"):
        generate(schema, tmp_path, GenerateOptions(rows=10, size=10))
    with pytest.raises(UsageError, match=r"--dirty must be in \[0, 1\)"):
        generate(schema, tmp_path, GenerateOptions(dirty=1.5))
