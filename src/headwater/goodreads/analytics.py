"""Predefined questions over the Goodreads star schema, for any date window.

Every query reads ``fact_reviews`` joined to its dimensions, restricted to reviews whose UTC day
(``date_key``) lies in ``[start, end]`` (both included), and runs unchanged on the DuckDB and the
PostgreSQL warehouse. Answers come back as pandas DataFrames; :class:`GoodreadsReport` writes them as JSON,
CSV and PNG charts.

**Popular** authors and books: by review count, or by average rating among those with at least
``min_reviews`` reviews in the window. **Best** authors and books rank by a Bayesian average (the
weighted rating IMDb used for its top 250), which pulls an item with few reviews towards the window's
mean so three 5-star reviews do not beat three hundred 4.8s::

    weighted = (v * R + m * C) / (v + m)

``v`` the item's review count in the window, ``R`` its mean rating, ``C`` the mean rating of every review
in the window, ``m`` the prior weight (``prior``, by default ``min_reviews``). Ties are broken by review
count, then by id, so every answer is deterministic.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from headwater.errors import UsageError, WarehouseError
from headwater.manifest import write_atomic
from headwater.warehouse import Warehouse

Rank = Literal["reviews", "rating"]
DOUBLE = "DOUBLE PRECISION"


@dataclass(frozen=True)
class Window:
    """Days ``start`` to ``end``, both included (UTC days of ``review_added_at``)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise UsageError(f"window {self.start} .. {self.end}: --to is before --from")

    @property
    def keys(self) -> list[int]:
        return [int(f"{self.start:%Y%m%d}"), int(f"{self.end:%Y%m%d}")]

    def __str__(self) -> str:
        return f"{self.start} .. {self.end}"


def _window_filter(alias: str = "f") -> str:
    return f"{alias}.date_key BETWEEN ? AND ?"


def _query(wh: Warehouse, sql: str, params: list[Any]) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = wh.query(sql, params).to_pandas()
    except WarehouseError as exc:
        if "fact_reviews" in str(exc) or "does not exist" in str(exc).lower():
            raise UsageError(
                f"{wh.url}: no goodreads star schema yet ({str(exc).splitlines()[0]}); run 'headwater goodreads etl' first"
            ) from exc
        raise
    return frame


_ENTITY = {
    "author": ("author_sk", "dim_author", "author_id", "d.name AS name"),
    "book": ("book_sk", "dim_book", "book_id", "d.title AS title"),
}


def _ranked(
    wh: Warehouse, what: str, window: Window, top: int, order: str, having: str, extra: list[Any]
) -> pd.DataFrame:
    sk, dim, natural, label = _ENTITY[what]
    sql = (
        f"WITH r AS (SELECT f.{sk} AS sk, f.review_rating FROM fact_reviews AS f WHERE {_window_filter()}), "
        f"g AS (SELECT avg(CAST(review_rating AS {DOUBLE})) AS c FROM r), "
        f"a AS (SELECT sk, count(*) AS reviews, avg(CAST(review_rating AS {DOUBLE})) AS avg_rating "
        f"FROM r GROUP BY sk{having}) "
        f"SELECT d.{natural} AS {natural}, {label}, a.reviews, a.avg_rating, "
        f"(a.reviews * a.avg_rating + ? * g.c) / (a.reviews + ?) AS weighted_rating "
        f"FROM a CROSS JOIN g JOIN {dim} AS d ON d.{sk} = a.sk "
        f"ORDER BY {order}, d.{natural} LIMIT ?"
    )
    return _query(wh, sql, [*window.keys, *extra, top])


def _check_top(top: int, min_reviews: int) -> None:
    if top < 1:
        raise UsageError(f"--top {top}: must be at least 1")
    if min_reviews < 0:
        raise UsageError(f"--min-reviews {min_reviews}: must not be negative")


def popular(
    wh: Warehouse, what: Literal["author", "book"], window: Window, *, top: int = 10, by: Rank = "reviews",
    min_reviews: int = 10,
) -> pd.DataFrame:  # fmt: skip
    """The ``top`` authors or books of the window by review count, or by average rating among those with
    at least ``min_reviews`` reviews. Columns: id, name (authors) or title (books), reviews, avg_rating."""
    _check_top(top, min_reviews)
    if by == "reviews":
        frame = _ranked(wh, what, window, top, "a.reviews DESC, a.avg_rating DESC", "", [0, 0])
    else:
        having = " HAVING count(*) >= ?"
        frame = _ranked(
            wh, what, window, top, "a.avg_rating DESC, a.reviews DESC", having, [min_reviews, 0, 0]
        )
    return frame.drop(columns=["weighted_rating"])


def best(
    wh: Warehouse, what: Literal["author", "book"], window: Window, *, top: int = 10, prior: int = 10
) -> pd.DataFrame:
    """The ``top`` authors or books by Bayesian average (see the module doc) with prior weight ``prior``."""
    _check_top(top, prior)
    if prior < 1:
        raise UsageError(f"prior weight {prior}: must be at least 1")
    return _ranked(wh, what, window, top, "weighted_rating DESC, a.reviews DESC", "", [prior, prior])


def reviews_per_day(wh: Warehouse, window: Window) -> pd.DataFrame:
    """Reviews added per UTC day of the window (days without reviews left out): day, reviews, avg_rating."""
    sql = (
        f"SELECT d.full_date AS day, count(*) AS reviews, avg(CAST(f.review_rating AS {DOUBLE})) AS avg_rating "
        f"FROM fact_reviews AS f JOIN dim_date AS d ON d.date_sk = f.date_sk WHERE {_window_filter()} "
        "GROUP BY d.full_date ORDER BY d.full_date"
    )
    return _query(wh, sql, window.keys)


def rating_trend(wh: Warehouse, window: Window) -> pd.DataFrame:
    """The average rating per calendar month of the window: month (``YYYY-MM``), reviews, avg_rating,
    and the share of each rating bucket (negative 1-2, neutral 3, positive 4-5)."""
    sql = (
        "SELECT d.year, d.month, count(*) AS reviews, "
        f"avg(CAST(f.review_rating AS {DOUBLE})) AS avg_rating, "
        f"CAST(sum(CASE WHEN f.rating_bucket = 'positive' THEN 1 ELSE 0 END) AS {DOUBLE}) / count(*) AS positive_share, "
        f"CAST(sum(CASE WHEN f.rating_bucket = 'negative' THEN 1 ELSE 0 END) AS {DOUBLE}) / count(*) AS negative_share "
        f"FROM fact_reviews AS f JOIN dim_date AS d ON d.date_sk = f.date_sk WHERE {_window_filter()} "
        "GROUP BY d.year, d.month ORDER BY d.year, d.month"
    )
    frame = _query(wh, sql, window.keys)
    labels = [f"{int(y):04d}-{int(m):02d}" for y, m in zip(frame["year"], frame["month"], strict=True)]
    frame = frame.drop(columns=["year", "month"])
    frame.insert(0, "month", labels)
    return frame.reset_index(drop=True)


def totals(wh: Warehouse, window: Window) -> tuple[int, float | None]:
    """Reviews in the window and their mean rating."""
    sql = f"SELECT count(*) AS n, avg(CAST(review_rating AS {DOUBLE})) AS r FROM fact_reviews AS f WHERE {_window_filter()}"
    frame = _query(wh, sql, window.keys)
    n, mean = int(frame["n"].iloc[0]), frame["r"].iloc[0]
    return n, (None if pd.isna(mean) else float(mean))


ANSWERS = (
    "popular_authors_by_reviews",
    "popular_authors_by_rating",
    "popular_books_by_reviews",
    "popular_books_by_rating",
    "best_authors",
    "best_books",
    "reviews_per_day",
    "rating_trend",
)


@dataclass
class GoodreadsReport:
    """Every predefined answer for one window."""

    window: Window
    top: int
    min_reviews: int
    prior: int
    total_reviews: int
    mean_rating: float | None
    answers: dict[str, pd.DataFrame]

    def to_json(self) -> dict[str, Any]:
        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = json.loads(
                frame.to_json(orient="records", date_format="iso", double_precision=6)
            )
            return records

        return {
            "from": self.window.start.isoformat(),
            "to": self.window.end.isoformat(),
            "top": self.top,
            "min_reviews": self.min_reviews,
            "prior": self.prior,
            "total_reviews": self.total_reviews,
            "mean_rating": self.mean_rating,
            **{name: rows(frame) for name, frame in self.answers.items()},
        }

    def write(self, out: Path, *, charts: bool = True) -> list[Path]:
        """``report.json``, one CSV per answer and (with ``charts``) PNG charts in ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.json"]
        write_atomic(written[0], (json.dumps(self.to_json(), indent=2) + "\n").encode())
        for name, frame in self.answers.items():
            buf = io.StringIO()
            frame.to_csv(buf, index=False)
            path = out / f"{name}.csv"
            write_atomic(path, buf.getvalue().encode())
            written.append(path)
        if charts:
            for name, data in self.charts().items():
                path = out / f"{name}.png"
                write_atomic(path, data)
                written.append(path)
        return written

    def charts(self) -> dict[str, bytes]:
        """PNG charts: reviews per day, monthly average rating, best books and authors."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        pngs: dict[str, bytes] = {}

        def save(name: str, fig: Any) -> None:
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png", dpi=110)
            plt.close(fig)
            pngs[name] = buf.getvalue()

        per_day = self.answers["reviews_per_day"]
        fig, ax = plt.subplots(figsize=(10, 3.6))
        ax.plot(pd.to_datetime(per_day["day"]), per_day["reviews"], color="#1f77b4", linewidth=1.2)
        ax.set_title(f"Reviews per day, {self.window}")
        ax.set_ylabel("reviews")
        save("reviews_per_day", fig)

        trend = self.answers["rating_trend"]
        fig, ax = plt.subplots(figsize=(10, 3.6))
        ax.plot(trend["month"], trend["avg_rating"], marker="o", color="#2ca02c")
        ax.set_title("Average rating per month")
        ax.set_ylabel("average rating")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        save("rating_trend", fig)

        for name, label in (("best_books", "title"), ("best_authors", "name")):
            frame = self.answers[name].iloc[::-1]
            fig, ax = plt.subplots(figsize=(8, 0.4 * max(len(frame), 3) + 1))
            ax.barh([str(v)[:40] for v in frame[label]], frame["weighted_rating"], color="#ff7f0e")
            ax.set_title(f"{name.replace('_', ' ').capitalize()} (Bayesian average, m = {self.prior})")
            ax.set_xlabel("weighted rating")
            save(name, fig)
        return pngs


def build_report(
    wh: Warehouse, window: Window, *, top: int = 10, min_reviews: int = 10, prior: int | None = None
) -> GoodreadsReport:
    """Run every predefined query for ``window``."""
    m = prior if prior is not None else max(min_reviews, 1)
    answers = {
        "popular_authors_by_reviews": popular(wh, "author", window, top=top, by="reviews"),
        "popular_authors_by_rating": popular(
            wh, "author", window, top=top, by="rating", min_reviews=min_reviews
        ),
        "popular_books_by_reviews": popular(wh, "book", window, top=top, by="reviews"),
        "popular_books_by_rating": popular(wh, "book", window, top=top, by="rating", min_reviews=min_reviews),
        "best_authors": best(wh, "author", window, top=top, prior=m),
        "best_books": best(wh, "book", window, top=top, prior=m),
        "reviews_per_day": reviews_per_day(wh, window),
        "rating_trend": rating_trend(wh, window),
    }
    n, mean = totals(wh, window)
    return GoodreadsReport(window, top, min_reviews, m, n, mean, answers)
