"""Profiling: every number checked against an independent pandas computation on small data; anomalies
found in the generator's dirty data; a self-contained HTML report; suggested checks that parse, pass on
the data they came from, and can be accepted into the project file without losing its comments."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from headwater.config import load_settings
from headwater.errors import ConfigError, UsageError
from headwater.generate import GenerateOptions, GenerateResult, generate, load_dataset
from headwater.quality.profile_report import render_html, write_profile
from headwater.quality.profiling import ColumnProfile, Profile, profile, value_shapes
from headwater.quality.suggest import accept_suggestions, shape_regex, suggestions_yaml
from headwater.warehouse import Warehouse

N = 5_000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Small data with every kind of column, nulls, duplicate rows, outliers and off-shape values."""
    rng = np.random.default_rng(11)
    amount = rng.normal(100, 15, N).round(2)
    amount[:7] = [900.0, -500.0, 1000.0, 750.0, -300.0, 640.0, 820.0]  # outliers
    qty = rng.integers(1, 20, N).astype("float64")
    qty[rng.random(N) < 0.05] = np.nan
    status = rng.choice(["new", "paid", "shipped", "returned"], N, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    status[rng.random(N) < 0.02] = None
    sku = np.array([f"AB-{i:04d}" for i in rng.integers(0, 9999, N)], dtype=object)
    sku[[10, 20, 30]] = ["oops", "A-1", "XYZ-12345"]
    day = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, N), unit="s")
    df = pd.DataFrame(
        {
            "order_id": np.arange(1, N + 1, dtype=np.int64),
            "amount": amount,
            "qty": pd.array(qty, dtype="Int64"),
            "status": status,
            "sku": sku,
            "ordered_at": day,
            "gift": rng.random(N) < 0.25,
        }
    )
    df.loc[N - 40 :, :] = df.iloc[:40].to_numpy()  # 40 duplicate rows (and so 40 duplicate order ids)
    return df.astype(
        {"order_id": "int64", "amount": "float64", "gift": "bool", "ordered_at": "datetime64[us]"}
    )


@pytest.fixture(scope="module")
def parquet_file(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("p") / "orders.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@pytest.fixture(scope="module")
def csv_file(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("c") / "orders.csv"
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def _check_against_pandas(prof: Profile, df: pd.DataFrame) -> None:
    assert prof.rows == len(df)
    assert [c.name for c in prof.columns] == list(df.columns)
    assert prof.duplicate_rows == int(df.duplicated().sum()) == 40
    for c in prof.columns:
        s = df[c.name]
        assert c.nulls == int(s.isna().sum()), c.name
        assert c.count == int(s.notna().sum()), c.name
        exact = s.nunique()
        if c.distinct_exact:
            assert c.distinct == exact, c.name
        else:  # HyperLogLog estimate
            assert abs(c.distinct - exact) <= 0.03 * exact, (c.name, c.distinct, exact)
    for name in ("order_id", "amount", "qty"):
        c, s = prof.column(name), df[name].dropna().astype("float64")
        assert _close(float(c.min), s.min())
        assert _close(float(c.max), s.max())
        assert c.mean is not None
        assert _close(c.mean, s.mean(), 1e-9)
        assert c.std is not None
        assert _close(c.std, s.std(), 1e-9)
        span = s.max() - s.min()
        for key, q in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75)):
            assert abs(float(c.quantiles[key]) - s.quantile(q)) <= 0.02 * span, (name, key)
        # histogram: same bins as numpy over [min, max]
        counts = [h[2] for h in c.histogram]
        expected, _ = np.histogram(s.to_numpy(), bins=len(counts), range=(s.min(), s.max()))
        assert counts == expected.tolist(), name
        # IQR outliers: the count outside the reported fences, recounted by pandas
        assert c.outlier_bounds is not None
        lo, hi = c.outlier_bounds
        assert c.outliers == int(((s < lo) | (s > hi)).sum()), name
    assert prof.column("amount").outliers >= 7
    assert "outside the IQR fences" in " ".join(prof.column("amount").anomalies)
    # top values and their exact counts
    status = prof.column("status")
    assert status.top == sorted(df["status"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    assert status.distinct_exact
    assert status.distinct == 4
    # dates
    t, s = prof.column("ordered_at"), df["ordered_at"]
    assert pd.Timestamp(t.min) == s.min()
    assert pd.Timestamp(t.max) == s.max()
    assert sum(h[2] for h in t.histogram) == s.notna().sum()
    assert t.out_of_range_dates == 0
    # booleans
    gift = prof.column("gift")
    assert gift.true_count == int(df["gift"].sum())
    # value shapes: the dominant shape and everything off it, as pandas sees it
    sku, shapes = (
        prof.column("sku"),
        df["sku"].str.replace(r"[0-9]", "9", regex=True).str.replace(r"[A-Za-z]", "a", regex=True),
    )
    assert sku.patterns[0][0] == "aa-9999"
    assert sku.dominant_shape_count == int((shapes == "aa-9999").sum())
    assert (
        sku.off_pattern == int((shapes != "aa-9999").sum()) == 6
    )  # 3, and their copies among the duplicates
    assert any("off the dominant shape" in a for a in sku.anomalies)
    # the unique key
    assert not prof.column("order_id").unique  # the 40 duplicated rows repeat their ids


def test_parquet_profile_matches_pandas(parquet_file: Path, frame: pd.DataFrame) -> None:
    prof = profile(parquet_file, key=["order_id"])
    _check_against_pandas(prof, frame)
    assert prof.duplicate_keys == int(frame["order_id"].duplicated().sum()) == 40
    assert prof.bytes == parquet_file.stat().st_size


@pytest.fixture(params=["arrow", "duckdb"])
def csv_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """CSV is parsed by PyArrow when it fits the memory budget, by DuckDB (spilling) otherwise: test both."""
    if request.param == "duckdb":
        monkeypatch.setattr("headwater.quality.profiling._memory_budget", lambda: 0)
    return str(request.param)


def test_csv_profile_matches_pandas(csv_file: Path, frame: pd.DataFrame, csv_reader: str) -> None:
    prof = profile(csv_file, table="orders")
    assert prof.table == "orders"
    assert prof.rejected_lines == 0
    assert prof.column("ordered_at").kind == "temporal"
    _check_against_pandas(prof, frame)


def test_csv_whose_later_file_breaks_the_types_falls_back_to_duckdb(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,n\n1,10\n2,20\n")
    (tmp_path / "b.csv").write_text("id,n\n3,thirty\n4,40\n")
    prof = profile(tmp_path, table="t")
    assert prof.rows == 4
    assert prof.column("n").kind == "string"  # DuckDB read both files with one sniffed schema


def test_arrow_profile_and_unique_column(frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame.drop_duplicates(), preserve_index=False)
    prof = profile(table, table="orders")
    oid = prof.column("order_id")
    assert oid.unique
    assert oid.distinct_exact
    assert oid.distinct == table.num_rows
    assert prof.key == ["order_id"]
    assert prof.duplicate_keys == 0
    assert prof.duplicate_rows == 0


def test_unknown_key_is_a_usage_error(parquet_file: Path) -> None:
    with pytest.raises(UsageError, match="--key nope: no such column"):
        profile(parquet_file, key=["nope"])


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        profile(tmp_path / "absent.csv")
    with pytest.raises(UsageError, match="no CSV or Parquet files"):
        profile(tmp_path)


def test_value_shapes_and_regex() -> None:
    assert value_shapes(["AB-12", "CD-34", "x"]) == [("aa-99", 0.6667), ("a", 0.3333)]
    assert shape_regex("aa-9999") == "[A-Za-z]{2}-[0-9]{4}"
    assert shape_regex("9.9 (a)") == r"[0-9]\.[0-9] \([A-Za-z]\)"


# ----------------------------------------------------------------------------- dirty data from the generator
@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> GenerateResult:
    out = tmp_path_factory.mktemp("dirty")
    opts = GenerateOptions(rows=30_000, dirty=0.03, seed=9, table_rows={"users": 3000, "companies": 200})
    return generate(load_dataset("events"), out, opts)


def test_profile_finds_the_injected_defects(dirty: GenerateResult, csv_reader: str) -> None:
    out = dirty.out
    with (out / "defects.csv").open() as fh:
        ledger = [r for r in csv.DictReader(fh) if r["file"].startswith("2021/")]
    kinds = Counter((r["column"], r["defect"]) for r in ledger)
    prof = profile(out / "2021", table="events")
    # ragged rows do not parse: counted, not silently dropped
    assert prof.rejected_lines == kinds[("*", "ragged_row")] > 0
    # every malformed date is flagged (all of them fail to parse as timestamps)
    assert prof.column("event_time").unparsable_dates == kinds[("event_time", "malformed_date")] > 0
    # required columns: nulls are exactly the injected ones
    for col in ("event_id", "user_id", "company_id", "event_type"):
        assert prof.column(col).nulls == kinds[(col, "null_required")], col
    assert prof.column("event_time").nulls == kinds[("event_time", "null_required")]


def test_clean_data_raises_no_anomaly_alarm(tmp_path: Path) -> None:
    result = generate(
        load_dataset("events"), tmp_path, GenerateOptions(rows=20_000, seed=4, table_rows={"users": 2000})
    )
    prof = profile(result.out / "2021", table="events", key=["event_id"])
    assert prof.rejected_lines == 0
    assert prof.duplicate_rows == 0
    assert prof.duplicate_keys == 0
    for c in prof.columns:
        assert (
            c.unparsable_dates == 0 and c.out_of_range_dates == 0 and c.off_pattern == 0
        ) or c.name == "properties"
    assert prof.column("event_time").kind == "temporal"


# ----------------------------------------------------------------------------- report
class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for name, value in attrs:
            if name in {"src", "href"} and value and not value.startswith("#"):
                self.urls.append(value)


def test_html_report_is_self_contained_with_a_chart_per_column(parquet_file: Path, tmp_path: Path) -> None:
    prof = profile(parquet_file, table="orders")
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    write_profile(prof, html_path=html_path, json_path=json_path)
    text = html_path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert parser.urls == []  # nothing fetched: no external scripts, styles or images
    assert parser.tags["script"] == 0
    assert parser.tags["link"] == 0
    assert parser.tags["img"] == 0
    assert parser.tags["svg"] == len(prof.columns)  # a histogram or a bar chart for every column
    assert "Suggested checks" in text
    assert "quality:" in text
    data = json.loads(json_path.read_text())
    assert data["rows"] == prof.rows
    assert len(data["columns"]) == len(prof.columns)
    assert data["columns"][5]["min"].startswith("2021-01-01")


def test_html_escapes_values() -> None:
    prof = profile(pa.table({"name": ["<script>alert(1)</script>"] * 3}), table="x<y")
    text = render_html(prof)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text


# ----------------------------------------------------------------------------- suggested checks
def test_suggested_checks_parse_and_pass_on_their_own_data(frame: pd.DataFrame) -> None:
    from headwater.quality import BatchTarget, parse_checks, run_checks

    clean = pa.Table.from_pandas(frame.drop_duplicates(), preserve_index=False)
    prof = profile(clean, table="orders")
    types = Counter(c["type"] for c in prof.suggested_checks)
    assert types["unique"] == 1
    assert types["accepted_values"] == 1
    assert types["range"] >= 3
    checks = parse_checks(prof.suggested_checks)
    report = run_checks(BatchTarget.from_arrow(clean, "orders"), checks)
    assert report.passed, [r for r in report.results if not r.passed]


def test_accept_keeps_comments_and_validates(tmp_path: Path) -> None:
    project = tmp_path / "headwater.yaml"
    original = "# my project\nname: demo   # keep me\n\nwarehouse:\n  kind: duckdb  # embedded\n"
    project.write_text(original)
    checks: list[dict[str, Any]] = [
        {"type": "not_null", "column": "id"},
        {"type": "range", "column": "n", "min": 1, "max": 5},
    ]
    accept_suggestions(project, "orders", checks)
    accept_suggestions(project, "lines", [{"type": "unique", "columns": ["order_id", "line"]}])
    text = project.read_text()
    assert text.startswith(original.rstrip("\n"))
    settings = load_settings(tmp_path, env={})
    assert settings.quality.checks["orders"] == checks
    assert settings.quality.checks["lines"] == [{"type": "unique", "columns": ["order_id", "line"]}]
    with pytest.raises(ConfigError, match="already exists"):
        accept_suggestions(project, "orders", checks)
    assert project.read_text() == text


def test_suggestions_yaml_loads() -> None:
    text = suggestions_yaml("t", [{"type": "range", "column": "d", "min": "2021-01-01", "max": "2021-02-01"}])
    assert yaml.safe_load(text) == {
        "quality": {
            "checks": {"t": [{"type": "range", "column": "d", "min": "2021-01-01", "max": "2021-02-01"}]}
        }
    }


# ----------------------------------------------------------------------------- warehouse tables
def test_profile_a_warehouse_table(warehouse: Warehouse, frame: pd.DataFrame) -> None:
    from headwater.warehouse import LoadMode, LoadRequest

    table = pa.Table.from_pandas(frame.drop_duplicates(), preserve_index=False)
    warehouse.load(table, LoadRequest("orders", batch_id="b1", mode=LoadMode.APPEND))
    prof = profile("orders", warehouse=warehouse)
    assert prof.rows == table.num_rows
    assert prof.table == "orders"
    assert prof.column("status").nulls == int(frame.drop_duplicates()["status"].isna().sum())
    assert _close(float(prof.column("amount").max), float(frame["amount"].max()))


def _column(prof: Profile, name: str) -> ColumnProfile:
    return prof.column(name)


def test_dates_out_of_range_are_flagged() -> None:
    days = [dt.datetime(2021, 1, 1) + dt.timedelta(days=i) for i in range(50)] + [
        dt.datetime(1850, 1, 1),
        dt.datetime(2999, 1, 1),
    ]
    prof = profile(pa.table({"d": days}), now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert _column(prof, "d").out_of_range_dates == 2
    assert any("out of range" in a or "before 1900" in a for a in _column(prof, "d").anomalies)


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"a": pa.array([], pa.int64()), "s": pa.array([], pa.string())}),
        pa.table(
            {"a": pa.array([None] * 5, pa.int64()), "n": pa.nulls(5), "s": pa.array([None] * 5, pa.string())}
        ),
        pa.table({"a": [1] * 10, "d": [dt.date(2021, 1, 1)] * 10, "f": [1.5] * 10, "b": [True] * 10}),
        pa.table({"x": pa.array([1, 2, 3], pa.decimal128(10, 2)), "l": pa.array([[1], [2], [3]])}),
        pa.table({"t": pa.array([dt.datetime(2021, 1, 1, tzinfo=dt.UTC)] * 2, pa.timestamp("us", "UTC"))}),
    ],
    ids=["empty", "all-null", "constant", "decimal-and-list", "timestamptz"],
)
def test_edge_cases_profile_render_and_serialise(table: pa.Table) -> None:
    prof = profile(table, table="edge")
    assert prof.rows == table.num_rows
    assert [c.nulls for c in prof.columns] == [table.column(i).null_count for i in range(table.num_columns)]
    assert "<html" in render_html(prof)
    json.dumps(prof.to_json())
