"""Every check type gives the same answer (failing rows, counts, samples) on every engine: a batch in
DuckDB (Arrow and Parquet), a DuckDB warehouse, a PostgreSQL warehouse and Spark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import ConfigError, DataError, UsageError
from headwater.quality import (
    BatchTarget,
    CheckTarget,
    SparkTarget,
    WarehouseTarget,
    dump_checks,
    load_checks_file,
    parse_checks,
    run_checks,
)
from headwater.quality.checks import UniqueCheck
from headwater.quality.sql import Engine, failing_predicate
from headwater.warehouse import LoadMode, LoadRequest, open_warehouse
from tests.quality.conftest import quiet_spark

AS_OF = dt.datetime(2021, 1, 7, tzinfo=dt.UTC)


def rows() -> pa.Table:
    ts = [dt.datetime(2021, 1, d) for d in range(1, 7)]
    return pa.table(
        {
            "idx": pa.array(range(6), pa.int64()),
            "id": pa.array([1, 2, 2, 4, None, 6], pa.int64()),
            "grp": pa.array([1, 1, 1, 1, 1, 2], pa.int64()),
            "score": pa.array([10, 50, 101, -1, 20, None], pa.float64()),
            "kind": ["a", "b", "c", None, "a", "b"],
            "email": ["x@y.io", "bad", "z@w.org", None, "q@r.st", "no at"],
            "created": pa.array(ts, pa.timestamp("us")),
            "ref_id": pa.array([1, 2, 99, None, 3, 100], pa.int64()),
            "raw_ts": [
                "2021-01-01 10:00:00",
                "nope",
                "2021-02-30 10:00:00",
                None,
                "2021-01-05",
                "2021-01-06 00:00:00",
            ],
        }
    )


def refs() -> pa.Table:
    return pa.table({"rid": pa.array([1, 2, 3], pa.int64())})


# (declaration, failing row idx); batch-level checks list no rows and carry their verdict instead
CASES: list[tuple[dict[str, Any], set[int] | bool]] = [
    ({"type": "not_null", "column": "id"}, {4}),
    ({"type": "not_null", "columns": ["id", "kind"], "name": "nn_two"}, {3, 4}),
    ({"type": "not_null", "column": "score", "where": "kind = 'b'", "name": "nn_where"}, {5}),
    ({"type": "not_null", "column": "idx", "name": "nn_pass"}, set()),
    ({"type": "unique", "column": "id"}, {1, 2}),
    ({"type": "unique", "columns": ["id", "grp"]}, {1, 2}),
    ({"type": "unique", "columns": ["id", "score"], "name": "unique_pass"}, set()),
    ({"type": "accepted_values", "column": "kind", "values": ["a", "b"]}, {2}),
    # repeated and quoted labels, and string labels against an integer column
    (
        {"type": "accepted_values", "column": "kind", "values": ["a", "it's", "a", "c"], "name": "av_q"},
        {1, 5},
    ),
    ({"type": "accepted_values", "column": "grp", "values": ["1"], "name": "av_int"}, {5}),
    ({"type": "range", "column": "score", "min": 0, "max": 100}, {2, 3}),
    (
        {"type": "range", "column": "score", "min": 10, "max": 50, "inclusive": False, "name": "open"},
        {0, 1, 2, 3},
    ),
    ({"type": "range", "column": "created", "min": dt.date(2021, 1, 2), "name": "range_date"}, {0}),
    ({"type": "regex", "column": "email", "pattern": r"[^@ ]+@[^@ ]+\.[a-z]+"}, {1, 5}),
    ({"type": "castable", "column": "raw_ts", "to": "timestamp"}, {1, 2}),
    ({"type": "relationships", "column": "ref_id", "to": "refs.rid"}, {2, 5}),
    ({"type": "custom_sql", "name": "over_100", "sql": "SELECT * FROM {table} WHERE score > 100"}, {2}),
    ({"type": "row_count", "min": 1, "max": 10}, True),
    ({"type": "row_count", "max": 5, "name": "too_many"}, False),
    ({"type": "freshness", "column": "created", "max_age": "2d"}, True),
    ({"type": "freshness", "column": "created", "max_age": "12h", "name": "stale"}, False),
]
ENGINES = [
    "batch-arrow",
    "batch-parquet",
    "duckdb-warehouse",
    pytest.param("postgres-warehouse", marks=pytest.mark.postgres),
    pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
]


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckTarget]:
    kind = str(request.param)
    if kind == "batch-arrow":
        tgt: CheckTarget = BatchTarget.from_arrow(rows(), "people", refs={"refs": refs()})
    elif kind == "batch-parquet":
        pq.write_table(rows().slice(0, 3), tmp_path / "a.parquet")
        pq.write_table(rows().slice(3), tmp_path / "b.parquet")
        pq.write_table(refs(), tmp_path / "refs.parquet")
        files = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
        tgt = BatchTarget.from_files(files, "people", refs={"refs": tmp_path / "refs.parquet"})
    elif kind == "spark":
        session = request.getfixturevalue("spark")
        with quiet_spark():
            tgt = SparkTarget(
                session,
                session.createDataFrame(rows()),
                "people",
                refs={"refs": session.createDataFrame(refs())},
            )
    else:
        if kind == "duckdb-warehouse":
            wh = open_warehouse(tmp_path / "wh.duckdb")
        else:
            url, schema = request.getfixturevalue("pg_schema")
            wh = open_warehouse(url, schema=schema)
        wh.load(rows(), LoadRequest("people", "b1", LoadMode.APPEND))
        wh.load(refs(), LoadRequest("refs", "r1", LoadMode.APPEND))
        tgt = WarehouseTarget(wh, "people")
    yield tgt
    tgt.close()


def test_every_check_type_on_every_engine(target: CheckTarget) -> None:
    cases = [
        (d, want) for d, want in CASES if not (d["type"] == "castable" and target.engine is Engine.POSTGRES)
    ]
    if target.engine is Engine.SPARK:  # one of each type: every Spark query costs about a second
        first = {d["type"]: i for i, (d, _) in reversed(list(enumerate(cases)))}
        cases = [cases[i] for i in sorted(first.values())]
    checks = parse_checks([d for d, _ in cases])
    report = run_checks(target, checks, sample_rows=100, as_of=AS_OF)
    assert report.rows == 6
    for (decl, want), result in zip(cases, report.results, strict=True):
        assert result.error is None, (result.name, result.error)
        if isinstance(want, bool):
            assert result.passed is want, (result.name, result.message)
            continue
        assert result.failing_count == len(want), (result.name, result.message)
        assert result.passed is (not want), result.name
        got = set() if result.samples is None else {int(v) for v in result.samples.column("idx").to_pylist()}
        assert got == want, result.name
        expected_total = 2 if decl.get("where") else 6
        assert result.total_rows == expected_total, result.name
    assert not report.passed
    assert {r.name for r in report.failed_warnings} == set()


def test_castable_is_refused_on_postgres_with_a_clear_line() -> None:
    (check,) = parse_checks([{"type": "castable", "column": "raw", "to": "date"}])
    with pytest.raises(UsageError, match="castable needs DuckDB or Spark"):
        failing_predicate(check, Engine.POSTGRES)


def test_a_check_that_cannot_run_fails_alone_and_the_others_still_run() -> None:
    checks = parse_checks(
        [
            {"type": "not_null", "column": "id"},
            {"type": "not_null", "column": "no_such_column", "name": "broken"},
            {"type": "range", "column": "score", "min": 0, "where": "nonsense((", "name": "bad_where"},
            {"type": "unique", "column": "id"},
        ]
    )
    report = run_checks(BatchTarget.from_arrow(rows(), "people"), checks)
    by_name = {r.name: r for r in report.results}
    assert by_name["not_null(id)"].failing_count == 1
    assert by_name["not_null(id)"].error is None
    assert by_name["unique(id)"].failing_count == 2
    for name in ("broken", "bad_where"):
        assert not by_name[name].passed
        assert by_name[name].error
        assert by_name[name].message.startswith("could not run:")
        assert "\n" not in by_name[name].message


def test_nulls_pass_every_check_but_not_null() -> None:
    table = pa.table({"v": pa.array([None, None], pa.int64()), "s": pa.array([None, None], pa.string())})
    checks = parse_checks(
        [
            {"type": "accepted_values", "column": "s", "values": ["x"]},
            {"type": "range", "column": "v", "min": 0, "max": 1},
            {"type": "regex", "column": "s", "pattern": "x"},
            {"type": "castable", "column": "s", "to": "int"},
            {"type": "unique", "column": "v"},
            {"type": "relationships", "column": "v", "to": "other.k"},
        ]
    )
    target = BatchTarget.from_arrow(table, "t", refs={"other": pa.table({"k": pa.array([1], pa.int64())})})
    report = run_checks(target, checks)
    assert all(r.passed for r in report.results), [r.message for r in report.results if not r.passed]


def test_row_count_change_against_the_previous_batch() -> None:
    (check,) = parse_checks([{"type": "row_count", "max_change_pct": 20}])
    target = BatchTarget.from_arrow(rows(), "people")
    first = run_checks(target, [check]).results[0]
    assert first.passed
    assert "no previous batch" in first.message
    assert run_checks(target, [check], previous_rows=5).results[0].passed  # +20%
    drop = run_checks(target, [check], previous_rows=10).results[0]
    assert not drop.passed
    assert drop.observed["change_pct"] == -40.0


def test_freshness_reads_dates_and_zoned_timestamps() -> None:
    zoned = pa.table(
        {"t": pa.array([dt.datetime(2021, 1, 6, 23, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))}
    )
    dates = pa.table({"t": pa.array([dt.date(2021, 1, 6)], pa.date32())})
    (check,) = parse_checks([{"type": "freshness", "column": "t", "max_age": "1h"}])
    assert run_checks(BatchTarget.from_arrow(zoned, "z"), [check], as_of=AS_OF).results[0].passed
    assert (
        run_checks(BatchTarget.from_arrow(dates, "d"), [check], as_of=AS_OF).results[0].passed
    )  # until 01-07
    empty = run_checks(BatchTarget.from_arrow(zoned.slice(0, 0), "z"), [check], as_of=AS_OF).results[0]
    assert not empty.passed
    assert "no values" in empty.message


def test_checks_read_csv_files_as_text(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,when\n1,2021-01-01 00:00:00\n2,31/12/2021\n3,\n")
    checks = parse_checks(
        [{"type": "castable", "column": "when", "to": "timestamp"}, {"type": "not_null", "column": "when"}]
    )
    report = run_checks(
        BatchTarget.from_files(path, csv_options={"all_varchar": True}), checks, sample_rows=5
    )
    assert [r.failing_count for r in report.results] == [1, 1]
    assert report.results[0].samples is not None
    assert report.results[0].samples.column("id").to_pylist() == ["2"]


# ------------------------------------------------------------------------------------------- declarations
def test_declarations_are_validated_with_a_line_naming_the_place() -> None:
    bad: list[tuple[list[dict[str, Any]], str]] = [
        ([{"type": "nope"}], "checks[0]"),
        ([{"type": "range", "column": "x"}], "range needs min, max or both"),
        ([{"type": "not_null"}], "checks[0].columns"),
        ([{"type": "custom_sql", "name": "q", "sql": "SELECT 1"}], "must select from {table}"),
        ([{"type": "freshness", "column": "t", "max_age": "soon"}], "not a duration"),
        ([{"type": "relationships", "column": "a", "to": "nodot"}], "checks[0].to"),
        (
            [{"type": "not_null", "column": "a"}, {"type": "not_null", "columns": ["a"]}],
            "two checks are named",
        ),
        ([{"type": "unique", "column": "a", "severity": "fatal"}], "severity"),
    ]
    for items, fragment in bad:
        with pytest.raises(ConfigError) as err:
            parse_checks(items)
        assert fragment in str(err.value), str(err.value)
        assert "\n" not in str(err.value)


def test_dump_and_parse_round_trip_and_files(tmp_path: Path) -> None:
    checks = parse_checks([d for d, _ in CASES])
    assert parse_checks(dump_checks(checks)) == checks
    path = tmp_path / "checks.yaml"
    path.write_text("people:\n  - {type: not_null, column: id}\n  - {type: unique, columns: [id, grp]}\n")
    assert [c.label for c in load_checks_file(path)["people"]] == ["not_null(id)", "unique(id, grp)"]
    path.write_text("- {type: not_null, column: id}\n")
    assert list(load_checks_file(path, "t")) == ["t"]
    path.write_text("quality:\n  checks:\n    t: [{type: row_count, min: 1}]\n")
    assert load_checks_file(path)["t"][0].label == "row_count"
    path.write_text("- [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_checks_file(path, "t")


def test_csv_with_a_ragged_line_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,v\n1,a\n2,b,extra\n3,c\n")
    with pytest.raises(DataError) as err:
        BatchTarget.from_files(path)
    assert str(err.value).startswith(f"{path} line 3: 3 fields, the header has 2")
    assert "\n" not in str(err.value)
    path.write_text('id,v\n1,"a\nb"\n\n2,"b\nc",extra\n3,c\n')  # the line the ragged record starts on
    with pytest.raises(DataError, match="line 5: 3 fields"):
        BatchTarget.from_files(path)
    # left to itself, DuckDB's sniffer read the lines above the widest one as a preamble and dropped them
    path.write_text("a,b\n1,2\n3\n4,5,6\n")
    with pytest.raises(DataError, match=r"line 3: 1 fields, the header has 2"):
        BatchTarget.from_files(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        BatchTarget.from_files(path)


def _group_by_failures(target: BatchTarget, column: str) -> int:
    """The unique check's count the SQL way (GROUP BY ... HAVING count(*) > 1), for comparison."""
    from headwater.quality.sql import count_sql

    (check,) = parse_checks([{"type": "unique", "column": column}])
    return int(target.query(count_sql(target.relation, check)).column(0)[0].as_py())


@pytest.mark.parametrize(
    "keys",
    [
        pa.array(range(0, 5000, 3), pa.int64()),  # already increasing: no sort needed
        pa.array([5, 3, 9, 3, 1, 9, 9, None, None, 4], pa.int64()),  # shuffled, duplicates, NULLs
        pa.array([7, 7], pa.int32()),
        pa.array([2, 1], pa.int16()),
        pa.array([dt.datetime(2021, 1, d % 5 + 1) for d in range(12)], pa.timestamp("us")),
        pa.array([dt.date(2021, 1, 2), dt.date(2021, 1, 1), dt.date(2021, 1, 2)], pa.date32()),
    ],
)
def test_unique_counted_by_sorting_equals_the_group_by(keys: pa.Array) -> None:
    from headwater.quality.runner import sorted_key_failures

    target = BatchTarget.from_arrow(pa.table({"k": keys, "other": pa.array(range(len(keys)))}))
    (check,) = parse_checks([{"type": "unique", "column": "k"}])
    assert isinstance(check, UniqueCheck)
    counted = sorted_key_failures(target, check)
    assert counted is not None
    assert counted == _group_by_failures(target, "k")
    (result,) = run_checks(target, [check]).results
    assert result.failing_count == counted
    assert result.passed == (counted == 0)


def test_unique_keys_in_increasing_runs_across_files(tmp_path: Path) -> None:
    """Each file increases but the files interleave (a month per file): the sort decides, and a
    key repeated across two files is found."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 4, 7, 10], pa.int64())}), first)
    pq.write_table(pa.table({"id": pa.array([2, 5, 7, 11], pa.int64())}), second)
    target = BatchTarget.from_files([first, second], "events")
    (result,) = run_checks(target, parse_checks([{"type": "unique", "column": "id"}])).results
    assert (result.passed, result.failing_count) == (False, 2)
    assert result.samples is not None
    assert sorted(result.samples.column("id").to_pylist()) == [7, 7]


def test_unique_falls_back_to_the_group_by(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.quality import runner

    table = pa.table({"s": ["a", "b", "a"], "k": pa.array([1, 2, 1], pa.int64())})
    target = BatchTarget.from_arrow(table)
    text, two, filtered, key = parse_checks(
        [
            {"type": "unique", "column": "s"},
            {"type": "unique", "columns": ["s", "k"]},
            {"type": "unique", "column": "k", "where": "k > 1", "name": "unique_k_filtered"},
            {"type": "unique", "column": "k"},
        ]
    )
    assert isinstance(text, UniqueCheck)
    assert isinstance(two, UniqueCheck)
    assert isinstance(filtered, UniqueCheck)
    assert isinstance(key, UniqueCheck)
    assert runner.sorted_key_failures(target, text) is None  # not an integer or temporal key
    assert runner.sorted_key_failures(target, two) is None
    assert runner.sorted_key_failures(target, filtered) is None
    assert runner.sorted_key_failures(target, key) == 2
    monkeypatch.setattr(runner, "MAX_SORTED_KEYS", 2)  # a batch too large to hold its keys
    assert runner.sorted_key_failures(target, key) is None
    results = run_checks(target, [text, two, filtered, key]).results
    assert [r.failing_count for r in results] == [2, 2, 0, 2]
