"""Each generator's statistical and structural properties, on real generated output."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.generate import GenerateOptions, GenerateResult, generate
from headwater.generate.columns import BlockContext, generate_column
from headwater.schema import load_schema_text
from headwater.schema.model import ColumnSpec, TableSpec

STATS = """
name: stats
tables:
  t:
    rows: 200000
    columns:
      id: {type: int, generator: sequence, start: 100, step: 3}
      code: {type: string, generator: sequence, prefix: U, width: 8}
      u: {type: float, generator: uniform, min: 10, max: 20}
      n: {type: float, generator: normal, mean: 50, std: 5}
      ln: {type: float, generator: lognormal, mu: 1, sigma: 0.5, min: 0.1, max: 1000}
      z: {type: int, generator: zipf, a: 1.2, min: 1, max: 10000}
      flag: {type: bool, generator: boolean, p: 0.3}
      kind: {type: string, generator: choice, values: [a, b, c], weights: [6, 3, 1]}
      isbn: {type: string, generator: pattern, pattern: "ISBN-###-#####", unique: true}
      uid: {type: uuid, generator: uuid4, unique: true}
      pick: {type: int, generator: uniform, min: 1, max: 300000, unique: true}
      price: {type: decimal, generator: lognormal, mu: 3, sigma: 0.7, precision: 10, scale: 2}
      maybe: {type: int, generator: uniform, min: 0, max: 9, null_rate: 0.25}
      name: {type: string, generator: full_name}
      email: {type: string, generator: email, from: name}
      text: {type: string, generator: words, min_words: 2, max_words: 6, max_chars: 40}
      sent: {type: string, generator: sentence, min_words: 3, max_words: 8}
      site: {type: string, generator: url, domain: shop.example.com, path: p, from: kind}
      at: {type: timestamp, generator: timestamp, start: 2021-01-01, end: 2021-03-01,
           seasonality: {weekly: [1, 1, 1, 1, 1, 0, 0], daily: [0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,0,0,0,0,0,0,0]}}
      later: {type: timestamp, generator: after, from: at, min: 1h, max: 2d}
      day: {type: date, generator: timestamp, start: 2020-01-01, end: 2020-12-31}
      label: {type: string, generator: template, template: "item-{id}/{kind}"}
"""


def make(tmp_path: Path, fmt: str = "parquet") -> pd.DataFrame:
    schema = load_schema_text(STATS, "stats.yaml")
    generate(schema, tmp_path, GenerateOptions(seed=11, fmt="parquet" if fmt == "parquet" else "csv"))
    return pd.read_parquet(tmp_path / "t.parquet")


def test_numeric_distributions(tmp_path: Path) -> None:
    df = make(tmp_path)
    assert len(df) == 200_000
    assert list(df["id"].head(3)) == [100, 103, 106]
    assert df["code"].iloc[0] == "U00000001"
    assert df["u"].between(10, 20).all()
    assert abs(df["u"].mean() - 15) < 0.05
    assert abs(df["n"].mean() - 50) < 0.1
    assert abs(df["n"].std() - 5) < 0.1
    assert df["ln"].between(0.1, 1000).all()
    assert abs(np.log(df["ln"]).mean() - 1) < 0.01
    assert abs(df["flag"].mean() - 0.3) < 0.01
    shares = df["kind"].value_counts(normalize=True)
    assert abs(shares["a"] - 0.6) < 0.01
    assert abs(shares["c"] - 0.1) < 0.01
    assert abs(df["maybe"].isna().mean() - 0.25) < 0.01
    assert df["price"].map(lambda d: d.as_tuple().exponent == -2).all()


def test_zipf_is_skewed_like_a_power_law(tmp_path: Path) -> None:
    z = make(tmp_path)["z"]
    assert z.between(1, 10_000).all()
    counts = z.value_counts()
    top_1pct = counts.head(100).sum() / len(z)
    assert top_1pct > 0.5  # a few values dominate
    # P(1)/P(2) = 2**1.2 for a zipf with a=1.2
    assert abs(counts[1] / counts[2] - 2**1.2) < 0.15


def test_unique_columns_are_unique(tmp_path: Path) -> None:
    df = make(tmp_path)
    for col in ("id", "isbn", "uid", "pick"):
        assert df[col].is_unique, col
    assert df["isbn"].str.fullmatch(r"ISBN-\d{3}-\d{5}").all()
    assert (
        df["uid"].str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}").all()
    )
    assert df["pick"].between(1, 300_000).all()


def test_strings_and_derived_columns(tmp_path: Path) -> None:
    df = make(tmp_path)
    local = (
        df["name"].str.lower().str.replace(r"\s+", ".", regex=True).str.replace(r"[^a-z0-9.]", "", regex=True)
    )
    assert (df["email"].str.split("@").str[0].str.replace(r"\d+$", "", regex=True) == local).all()
    words = df["text"].str.count(" ") + 1
    assert (df["text"].str.len() <= 40).all()
    assert words.min() >= 1
    assert df["sent"].str.match(r"^[A-Z].*\.$").all()
    assert (df["site"] == "https://shop.example.com/p/" + df["kind"]).all()
    assert (df["label"] == "item-" + df["id"].astype(str) + "/" + df["kind"]).all()


def test_timestamps_respect_range_seasonality_and_order(tmp_path: Path) -> None:
    df = make(tmp_path)
    at = df["at"]
    assert at.min() >= pd.Timestamp("2021-01-01")
    assert at.max() < pd.Timestamp("2021-03-01")
    assert (at.dt.day_of_week < 5).all()  # weekend weight 0
    assert at.dt.hour.between(9, 16).all()
    delta = (df["later"] - at).dt.total_seconds()
    assert delta.between(3600, 2 * 86400).all()
    assert df["day"].between(pd.Timestamp("2020-01-01").date(), pd.Timestamp("2020-12-31").date()).all()


def test_foreign_keys_lookups_and_aggregates_hold(goodreads_small: GenerateResult) -> None:
    out = goodreads_small.out
    con = duckdb.connect()
    orphans = con.execute(
        f"select count(*) from read_csv('{out}/reviews.csv') r "
        f"left join read_csv('{out}/book.csv') b using (book_id) where b.book_id is null"
    ).fetchone()
    assert orphans == (0,)
    books = pd.read_csv(out / "book.csv").drop_duplicates("book_id")
    reviews = pd.read_csv(out / "reviews.csv")
    # review ratings drive the books' average_rating and ratings_count
    agg = reviews.groupby("book_id")["review_rating"].agg(["mean", "count"])
    merged = books.set_index("book_id").join(agg, how="inner")
    assert np.allclose(merged["average_rating"], merged["mean"].round(2))
    assert (merged["ratings_count"] == merged["count"]).all()
    # a review's author is its book's author
    joined = reviews.merge(books[["book_id", "authors"]], on="book_id")
    assert (joined["author_id"].astype(str) == joined["authors"].astype(str)).all()
    # titles and dates look like Goodreads'
    assert (books["title_without_series"] == books["title"].str.replace(r" \(.*\)$", "", regex=True)).all()
    assert (
        reviews["review_added_date"]
        .str.fullmatch(r"\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} -0[78]00 \d{4}")
        .all()
    )


def test_revisions_repeat_ids_with_newer_timestamps(goodreads_small: GenerateResult) -> None:
    reviews = pd.read_csv(goodreads_small.out / "reviews.csv", parse_dates=["record_create_timestamp"])
    dup = reviews[reviews.duplicated("review_id", keep=False)].sort_values(
        ["review_id", "record_create_timestamp"]
    )
    assert 0.005 < reviews["review_id"].duplicated().mean() < 0.02
    first = dup.groupby("review_id")["record_create_timestamp"].first()
    last = dup.groupby("review_id")["record_create_timestamp"].last()
    assert (last > first).all()


@settings(max_examples=40, deadline=None)
@given(st.from_regex(r"[A-Z]{0,3}-?[#?*]{1,6}(-[#?]{1,4})?", fullmatch=True), st.integers(0, 2**31))
def test_pattern_strings_match_their_pattern(pattern: str, seed: int) -> None:
    col = ColumnSpec.model_validate({"type": "string", "generator": "pattern", "pattern": pattern})
    spec = TableSpec(columns={"p": col})
    ctx = BlockContext(seed=seed, table="t", spec=spec, block=0, start=0, n=200, parents={})
    values = generate_column("p", col, ctx)
    regex = "".join({"#": r"\d", "?": "[A-Z]", "*": "[0-9A-Z]"}.get(c, re.escape(c)) for c in pattern)
    assert pc.all(pc.match_substring_regex(values, f"^{regex}$")).as_py()
    assert values.type == pa.string()
    assert len(values) == 200
