"""What the ETL expects of a landing batch: the four entities, their CSV columns and DuckDB types (from the
built-in ``goodreads`` dataset, the same schema the generator and the API use), and the row checks that
decide what goes on to the working zone and what goes to quarantine."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa

from headwater.sqltext import sql_string as _text

DATASET = "goodreads"
FILE_COLUMN = "_hw_file"
ROW_COLUMN = "_hw_row"
REVIEW_DATE_EXAMPLE = "Tue Feb 11 18:08:25 -0800 2020"


class Entity(StrEnum):
    """An entity of a landing batch; files are named ``<entity>_<anything>.csv`` (or ``<entity>.csv``)."""

    AUTHOR = "author"
    BOOK = "book"
    USER = "user"
    REVIEWS = "reviews"

    @property
    def source(self) -> str:
        """The name the SQL models read this entity's working rows by."""
        return f"src_{self.value}"


KEYS: dict[Entity, str] = {
    Entity.AUTHOR: "author_id",
    Entity.BOOK: "book_id",
    Entity.USER: "user_id",
    Entity.REVIEWS: "review_id",
}

_FILE = re.compile(r"^(author|book|user|reviews)(?:[_.-][^/]*)?\.csv$")


def entity_of_file(name: str) -> Entity | None:
    """The entity a landing file holds, from its name; None when the name names none."""
    m = _FILE.match(name)
    return Entity(m.group(1)) if m else None


_DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.string(): "VARCHAR",
}


@functools.cache
def _dataset() -> Any:
    from headwater.generate import load_dataset

    return load_dataset(DATASET)


@functools.cache
def csv_schema(entity: Entity) -> pa.Schema:
    """The columns a landing file of ``entity`` carries, in order, as the generator types them (the review
    dates are text; timestamps without an offset are wall-clock UTC)."""
    from headwater.generate.block import output_schema

    schema = output_schema(_dataset().tables[entity.value], False)
    return pa.schema(
        pa.field(f.name, pa.timestamp("us") if pa.types.is_timestamp(f.type) else f.type) for f in schema
    )


@functools.cache
def working_schema(entity: Entity) -> pa.Schema:
    """The working zone's Parquet columns: the CSV columns typed, plus the source file and row."""
    return (
        csv_schema(entity)
        .append(pa.field(FILE_COLUMN, pa.dictionary(pa.int32(), pa.string())))
        .append(pa.field(ROW_COLUMN, pa.int64()))
    )


def duckdb_columns(entity: Entity) -> dict[str, str]:
    """``read_csv(columns=...)``: every column with its DuckDB type (no type detection)."""
    return {
        f.name: "TIMESTAMP" if pa.types.is_timestamp(f.type) else _DUCKDB_TYPES[f.type]
        for f in csv_schema(entity)
    }


# ------------------------------------------------------------------------------------------ row checks
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
REVIEW_DATE_PATTERN = (
    rf"({_DAYS}) ({_MONTHS}) (0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] "
    r"[+-](0[0-9]|1[0-4])[0-5][0-9] [0-9]{4}"
)


def review_date_iso(column: str) -> str:
    """SQL: the wall-clock part of a review date as ISO text, cut exactly as ``reviews_parsed.sql`` does."""
    months = " ".join(f"WHEN '{m}' THEN '{i:02d}'" for i, m in enumerate(_MONTHS.split("|"), start=1))
    return (
        f"substr({column}, 27, 4) || '-' || CASE substr({column}, 5, 3) {months} END || '-' || "
        f"substr({column}, 9, 2) || ' ' || substr({column}, 12, 8)"
    )


@dataclass(frozen=True)
class RowRule:
    """A row check: ``failing`` is a SQL condition true for rows that must not go on; ``reason`` a SQL
    text expression saying why (it names the field and shows the value)."""

    failing: str
    reason: str


def _shown(column: str) -> str:
    """SQL: the value of ``column`` as text for a reason, NULL shown as NULL, long values cut."""
    return f"coalesce('''' || left(CAST({column} AS VARCHAR), 40) || '''', 'NULL')"


def _missing(column: str) -> RowRule:
    return RowRule(f"{column} IS NULL", _text(f"{column}: missing"))


def _key(column: str, text: bool) -> RowRule:
    cond = f"{column} IS NULL" + (f" OR trim({column}) = ''" if text else "")
    return RowRule(cond, _text(f"{column}: missing key"))


def _range(column: str, low: float, high: float | None) -> RowRule:
    cond = f"{column} < {low}" + (f" OR {column} > {high}" if high is not None else "")
    bounds = f"{low:g}..{high:g}" if high is not None else f">= {low:g}"
    return RowRule(
        cond, f"{_text(column + ': ')} || CAST({column} AS VARCHAR) || {_text(' not in ' + bounds)}"
    )


def _review_date(column: str, required: bool) -> RowRule:
    # the pattern fixes every field's width and range; only days 29-31 can still name no date
    # (Feb 30), so only those pay for the full cast (DuckDB evaluates AND on the rows still in play)
    bad = (
        f"NOT regexp_full_match({column}, {_text(REVIEW_DATE_PATTERN)}) "
        f"OR (substr({column}, 9, 2) >= '29' AND TRY_CAST({review_date_iso(column)} AS TIMESTAMP) IS NULL)"
    )
    cond = f"{column} IS NULL OR {bad}" if required else f"{column} IS NOT NULL AND ({bad})"
    return RowRule(
        cond,
        f"{_text(column + ': ')} || {_shown(column)} || {_text(' is not a date like ' + repr(REVIEW_DATE_EXAMPLE))}",
    )


def row_rules(entity: Entity) -> list[RowRule]:
    """The checks a landing row must pass, first failing one named in the reason."""
    key = KEYS[entity]
    rules = [_key(key, entity is Entity.REVIEWS), _missing("record_create_timestamp")]
    if entity is Entity.REVIEWS:
        rules += [
            _missing("user_id"),
            _missing("book_id"),
            _missing("author_id"),
            RowRule(
                "review_rating IS NULL OR review_rating NOT BETWEEN 1 AND 5",
                "'review_rating: ' || coalesce(CAST(review_rating AS VARCHAR), 'NULL') || ' not in 1..5'",
            ),
            _review_date("review_added_date", required=True),
            _review_date("review_updated_date", required=False),
            _range("review_votes", 0, None),
            _range("review_read_count", 0, None),
            _range("comments_count", 0, None),
        ]
    elif entity is Entity.AUTHOR:
        rules += [
            _range("average_rating", 0, 5),
            _range("rating_count", 0, None),
            _range("text_review_count", 0, None),
        ]
    elif entity is Entity.BOOK:
        rules += [
            _range("average_rating", 0, 5),
            _range("ratings_count", 0, None),
            _range("num_pages", 0, None),
            _range("publication_month", 1, 12),
            _range("publication_day", 1, 31),
        ]
    return rules


def reason_expression(entity: Entity) -> str:
    """SQL: NULL for a row that passes every rule, else the first failing rule's reason."""
    whens = " ".join(f"WHEN {r.failing} THEN {r.reason}" for r in row_rules(entity))
    return f"CASE {whens} END"
