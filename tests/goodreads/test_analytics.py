"""Every analytics answer checked against an independent pandas computation on the raw generated CSV
(pandas dedupes, parses the dates and joins names on its own), on DuckDB and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from headwater.config import Settings
from headwater.errors import UsageError
from headwater.goodreads.analytics import Window, best, build_report, popular, rating_trend, reviews_per_day
from headwater.goodreads.etl import run_cycle
from headwater.warehouse import Warehouse, open_warehouse, warehouse_from_settings
from tests.conftest import require_service
from tests.goodreads.conftest import land, make_settings, reference_reviews, reference_table
from tests.warehouse.conftest import pg_url

WINDOW = Window(date(2016, 3, 1), date(2018, 6, 30))
TOP = 7
MIN_REVIEWS = 5


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, clean_data: Path) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("analytics") / "p")
    land(settings, clean_data, "b1")
    run_cycle(settings).raise_for_failures()
    return settings


@pytest.fixture(scope="module")
def reference(clean_data: Path) -> pd.DataFrame:
    """Reviews of the window, with author names and book titles, computed by pandas from the raw CSV."""
    reviews = reference_reviews(clean_data)
    authors = reference_table(clean_data, "author", "author_id")
    books = reference_table(clean_data, "book", "book_id")
    authors["name"] = authors["name"].map(lambda s: " ".join(str(s).split()))
    books["title"] = books["title"].map(lambda s: " ".join(str(s).split()))
    inside = reviews[(reviews["day"] >= WINDOW.start) & (reviews["day"] <= WINDOW.end)]
    inside = inside.merge(authors[["author_id", "name"]], on="author_id").merge(
        books[["book_id", "title"]], on="book_id"
    )
    assert len(inside) > 500
    return inside


def expected_ranking(
    frame: pd.DataFrame, key: str, label: str, *, by: str, min_reviews: int = 0, prior: int = 0
) -> pd.DataFrame:
    grouped = frame.groupby([key, label], as_index=False).agg(
        reviews=("review_rating", "size"), avg_rating=("review_rating", "mean")
    )
    mean = frame["review_rating"].mean()
    grouped["weighted_rating"] = (grouped["reviews"] * grouped["avg_rating"] + prior * mean) / (
        grouped["reviews"] + prior
    )
    if by == "reviews":
        order = ["reviews", "avg_rating"]
    elif by == "rating":
        grouped = grouped[grouped["reviews"] >= min_reviews]
        order = ["avg_rating", "reviews"]
    else:
        order = ["weighted_rating", "reviews"]
    ranked = grouped.sort_values([*order, key], ascending=[False, False, True], kind="stable")
    return ranked.head(TOP).reset_index(drop=True)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    assert len(got) == len(want) > 0
    for col in columns:
        if want[col].dtype.kind == "f":
            assert got[col].to_numpy() == pytest.approx(want[col].to_numpy(), rel=1e-12), col
        else:
            assert got[col].tolist() == want[col].tolist(), col


@pytest.mark.parametrize("what", ["author", "book"])
@pytest.mark.parametrize("by", ["reviews", "rating"])
def test_popular_matches_pandas(loaded: Settings, reference: pd.DataFrame, what: str, by: str) -> None:
    key, label = ("author_id", "name") if what == "author" else ("book_id", "title")
    got = popular(warehouse_from_settings(loaded), what, WINDOW, top=TOP, by=by, min_reviews=MIN_REVIEWS)  # type: ignore[arg-type]
    want = expected_ranking(reference, key, label, by=by, min_reviews=MIN_REVIEWS)
    assert_same(got, want, [key, label, "reviews", "avg_rating"])


@pytest.mark.parametrize("what", ["author", "book"])
def test_best_matches_pandas(loaded: Settings, reference: pd.DataFrame, what: str) -> None:
    key, label = ("author_id", "name") if what == "author" else ("book_id", "title")
    got = best(warehouse_from_settings(loaded), what, WINDOW, top=TOP, prior=MIN_REVIEWS)  # type: ignore[arg-type]
    want = expected_ranking(reference, key, label, by="best", prior=MIN_REVIEWS)
    assert_same(got, want, [key, label, "reviews", "avg_rating", "weighted_rating"])


def test_reviews_per_day_and_trend_match_pandas(loaded: Settings, reference: pd.DataFrame) -> None:
    wh = warehouse_from_settings(loaded)
    per_day = reviews_per_day(wh, WINDOW)
    want = reference.groupby("day", as_index=False).agg(
        reviews=("review_rating", "size"), avg_rating=("review_rating", "mean")
    )
    assert list(per_day["day"]) == want["day"].tolist()
    assert_same(per_day, want, ["reviews", "avg_rating"])

    trend = rating_trend(wh, WINDOW)
    months = reference.assign(month=reference["day"].map(lambda d: f"{d:%Y-%m}"))
    want = months.groupby("month", as_index=False).agg(
        reviews=("review_rating", "size"),
        avg_rating=("review_rating", "mean"),
        positive_share=("review_rating", lambda r: (r >= 4).mean()),
        negative_share=("review_rating", lambda r: (r <= 2).mean()),
    )
    assert_same(trend, want, ["month", "reviews", "avg_rating", "positive_share", "negative_share"])
    assert trend["month"].iloc[0] == "2016-03"
    assert trend["month"].iloc[-1] == "2018-06"


def test_report_writes_json_csv_and_charts(loaded: Settings, reference: pd.DataFrame, tmp_path: Path) -> None:
    report = build_report(warehouse_from_settings(loaded), WINDOW, top=TOP, min_reviews=MIN_REVIEWS)
    assert report.total_reviews == len(reference)
    assert report.mean_rating == pytest.approx(reference["review_rating"].mean())
    written = report.write(tmp_path / "out")
    names = {p.name for p in written}
    assert {
        "report.json",
        "best_books.csv",
        "rating_trend.csv",
        "reviews_per_day.png",
        "best_authors.png",
    } <= names
    assert all(p.stat().st_size > 0 for p in written)
    assert (tmp_path / "out" / "reviews_per_day.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.to_json()["from"] == "2016-03-01"


def test_empty_window_and_bad_arguments(loaded: Settings) -> None:
    wh = warehouse_from_settings(loaded)
    empty = build_report(wh, Window(date(1990, 1, 1), date(1990, 12, 31)))
    assert empty.total_reviews == 0
    assert empty.mean_rating is None
    assert all(len(frame) == 0 for frame in empty.answers.values())
    with pytest.raises(UsageError, match="before --from"):
        Window(date(2020, 2, 1), date(2020, 1, 1))
    with pytest.raises(UsageError, match="--top 0"):
        popular(wh, "author", WINDOW, top=0)


def test_no_star_schema_yet_says_what_to_run(tmp_path: Path) -> None:
    wh = open_warehouse(tmp_path / "empty.duckdb")
    with pytest.raises(UsageError, match="run 'headwater goodreads etl' first"):
        reviews_per_day(wh, WINDOW)


@pytest.fixture
def pg_warehouse() -> Iterator[tuple[str, str]]:
    url = pg_url()
    if url is None:
        require_service("PostgreSQL", "pg_ctlcluster 15 main start", "cannot connect to 127.0.0.1:5432/test")
        raise AssertionError("unreachable")
    schema = f"hw_gr_{uuid.uuid4().hex[:10]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_the_cycle_and_the_answers_on_postgresql(
    tmp_path: Path, clean_data: Path, loaded: Settings, pg_warehouse: tuple[str, str]
) -> None:
    url, schema = pg_warehouse
    settings = make_settings(
        tmp_path / "pg", {"warehouse": {"kind": "postgres", "url": url, "schema": schema}}
    )
    land(settings, clean_data, "b1")
    run_cycle(settings).raise_for_failures()
    again = run_cycle(settings)
    assert again.batches == []
    pg: Warehouse = warehouse_from_settings(settings)
    duck = warehouse_from_settings(loaded)
    for name, frame in build_report(pg, WINDOW, top=TOP, min_reviews=MIN_REVIEWS).answers.items():
        other = build_report(duck, WINDOW, top=TOP, min_reviews=MIN_REVIEWS).answers[name]
        assert list(frame.columns) == list(other.columns), name
        for col in frame.columns:
            if other[col].dtype.kind == "f":
                assert frame[col].to_numpy() == pytest.approx(other[col].to_numpy(), rel=1e-9), (name, col)
            else:
                assert [str(v) for v in frame[col]] == [str(v) for v in other[col]], (name, col)
