"""The schema model: what a YAML schema may declare, validated by Pydantic.

A schema holds tables; a table holds columns; each column has a type and exactly one generator
(a discriminated union on ``generator``). Cross-column and cross-table rules (references exist,
types fit, no cycles) are checked by :mod:`headwater.schema.loader`.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ColumnType(StrEnum):
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOL = "bool"
    STRING = "string"
    DATE = "date"
    TIMESTAMP = "timestamp"
    UUID = "uuid"


NUMERIC = frozenset({ColumnType.INT, ColumnType.FLOAT, ColumnType.DECIMAL})
TEMPORAL = frozenset({ColumnType.DATE, ColumnType.TIMESTAMP})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError("min must be below max")


# ----------------------------------------------------------------------------------------------- numbers
class SequenceGen(_Spec):
    """1, 2, 3, ... (``start``, ``step``); with ``prefix``/``width`` a string such as ``U00000001``."""

    generator: Literal["sequence"]
    start: int = 1
    step: int = 1
    prefix: str | None = None
    width: int | None = Field(default=None, ge=1, le=30)

    @field_validator("step")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("step must not be 0")
        return v


class UniformGen(_Spec):
    """Uniform between ``min`` and ``max`` (both inclusive for ints)."""

    generator: Literal["uniform"]
    min: float
    max: float
    decimals: int | None = Field(default=None, ge=0, le=12)

    @model_validator(mode="after")
    def _range(self) -> UniformGen:
        _check_range(self.min, self.max)
        return self


class NormalGen(_Spec):
    """Normal with ``mean`` and ``std``, clipped to ``[min, max]`` when given."""

    generator: Literal["normal"]
    mean: float
    std: float = Field(gt=0)
    min: float | None = None
    max: float | None = None
    decimals: int | None = Field(default=None, ge=0, le=12)

    @model_validator(mode="after")
    def _range(self) -> NormalGen:
        _check_range(self.min, self.max)
        return self


class LognormalGen(_Spec):
    """Log-normal: ``exp(N(mu, sigma))``, clipped to ``[min, max]`` when given. Long right tail (prices, sizes)."""

    generator: Literal["lognormal"]
    mu: float = 0.0
    sigma: float = Field(default=1.0, gt=0)
    min: float | None = None
    max: float | None = None
    decimals: int | None = Field(default=None, ge=0, le=12)

    @model_validator(mode="after")
    def _range(self) -> LognormalGen:
        _check_range(self.min, self.max)
        return self


class ZipfGen(_Spec):
    """Bounded power law over the integers ``min..max``: P(k) proportional to ``(k - min + 1) ** -a``.
    A few small values are far more frequent than the rest."""

    generator: Literal["zipf"]
    a: float = Field(default=1.2, gt=0)
    min: int = 1
    max: int

    @model_validator(mode="after")
    def _range(self) -> ZipfGen:
        _check_range(self.min, self.max)
        return self


class BooleanGen(_Spec):
    """True with probability ``p``."""

    generator: Literal["boolean"]
    p: float = Field(default=0.5, ge=0, le=1)


# ----------------------------------------------------------------------------------------------- choices
class ChoiceGen(_Spec):
    """One of ``values``, with optional ``weights`` (any positive numbers; normalised)."""

    generator: Literal["choice"]
    values: list[Any] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> ChoiceGen:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"weights has {len(self.weights)} entries but values has {len(self.values)}")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative and not all zero")
        return self


_PATTERN_CHARS = re.compile(r"[#?*]")


class PatternGen(_Spec):
    """Fixed-shape strings: ``#`` a digit, ``?`` an upper-case letter, ``*`` a digit or letter,
    ``\\`` escapes the next character; anything else is literal. E.g. ``ISBN-###-#####``."""

    generator: Literal["pattern"]
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if not _PATTERN_CHARS.search(v.replace("\\#", "").replace("\\?", "").replace("\\*", "")):
            raise ValueError("pattern needs at least one placeholder (#, ? or *)")
        return v


class UuidGen(_Spec):
    """Random version-4 UUIDs as canonical 36-character strings."""

    generator: Literal["uuid4"]


# ----------------------------------------------------------------------------------------------- vocabulary
class VocabGen(_Spec):
    """A value from a bundled vocabulary, optionally skewed (``zipf_a``) so a few values dominate."""

    generator: Literal["first_name", "last_name", "full_name", "city", "country", "company", "word", "domain"]
    zipf_a: float | None = Field(default=None, gt=0)


class EmailGen(_Spec):
    """``first.last<n>@domain``; with ``from`` a full-name column of the same row, derived from it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    generator: Literal["email"]
    from_: str | None = Field(default=None, alias="from")


class TextGen(_Spec):
    """Lorem-style text of ``min_words`` to ``max_words`` words (``sentence`` capitalises and ends with '.')."""

    generator: Literal["words", "sentence"]
    min_words: int = Field(default=3, ge=1)
    max_words: int = Field(default=10, ge=1)
    max_chars: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _range(self) -> TextGen:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class UrlGen(_Spec):
    """``https://<domain>/<path>/<slug>``; ``from`` names a column whose value becomes the slug."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    generator: Literal["url"]
    domain: str | None = None
    path: str = ""
    from_: str | None = Field(default=None, alias="from")


class TemplateGen(_Spec):
    """A string built from other columns of the same row: ``https://x.org/book/{book_id}``."""

    generator: Literal["template"]
    template: str = Field(min_length=1)

    def fields(self) -> list[str]:
        return re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.template)


class RegexReplaceGen(_Spec):
    """Another string column of the same row with a regex replaced (e.g. a title without its series)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    generator: Literal["regex_replace"]
    from_: str = Field(alias="from")
    pattern: str
    replacement: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return v


# ----------------------------------------------------------------------------------------------- time
class Seasonality(_Spec):
    """Relative weights: ``daily`` 24 (hour of day), ``weekly`` 7 (Monday first)."""

    daily: list[float] | None = None
    weekly: list[float] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> Seasonality:
        for name, want in (("daily", 24), ("weekly", 7)):
            got = getattr(self, name)
            if got is not None:
                if len(got) != want:
                    raise ValueError(f"{name} needs {want} weights, got {len(got)}")
                if any(w < 0 for w in got) or sum(got) <= 0:
                    raise ValueError(f"{name} weights must be non-negative and not all zero")
        return self


class TimestampGen(_Spec):
    """A time between ``start`` (inclusive) and ``end`` (exclusive), uniform or with seasonality."""

    generator: Literal["timestamp"]
    start: dt.datetime
    end: dt.datetime
    seasonality: Seasonality | None = None

    @model_validator(mode="after")
    def _range(self) -> TimestampGen:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("start and end are UTC wall-clock times: drop the offset")
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float) -> float:
    """``90`` or ``'90s'``, ``'15m'``, ``'2h'``, ``'30d'``, ``'1w'`` to seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 15m, 2h, 30d, 1w")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


class AfterGen(_Spec):
    """A time after another column of the same row, by ``min``..``max`` (durations such as ``30d``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    generator: Literal["after"]
    from_: str = Field(alias="from")
    min: str | float = 0
    max: str | float = "30d"

    @model_validator(mode="after")
    def _range(self) -> AfterGen:
        lo, hi = parse_duration(self.min), parse_duration(self.max)
        if lo < 0 or lo > hi:
            raise ValueError("need 0 <= min <= max")
        return self


# ----------------------------------------------------------------------------------------------- keys
class ForeignKeyGen(_Spec):
    """A key of another table (``table.column``), drawn uniformly or zipf-skewed (``a``):
    referential integrity always holds (unless ``--dirty`` injects orphans, which are ledgered)."""

    generator: Literal["foreign_key"]
    references: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
    distribution: Literal["uniform", "zipf"] = "uniform"
    a: float = Field(default=1.1, gt=0)

    @property
    def table(self) -> str:
        return self.references.split(".", 1)[0]

    @property
    def column(self) -> str:
        return self.references.split(".", 1)[1]


class LookupGen(_Spec):
    """A column of the row that a foreign-key column of this row points to
    (e.g. a review's ``author_id`` is its book's ``author_id``)."""

    generator: Literal["lookup"]
    via: str
    column: str


class AggregateGen(_Spec):
    """An aggregate over the rows of a child table that reference this row (e.g. a book's
    ``average_rating`` over its reviews). The child table is generated before this table is written."""

    generator: Literal["aggregate"]
    table: str
    via: str
    column: str | None = None
    fn: Literal["count", "sum", "mean"] = "mean"
    decimals: int | None = Field(default=2, ge=0, le=12)
    default: float | None = None


Generator = Annotated[
    SequenceGen
    | UniformGen
    | NormalGen
    | LognormalGen
    | ZipfGen
    | BooleanGen
    | ChoiceGen
    | PatternGen
    | UuidGen
    | VocabGen
    | EmailGen
    | TextGen
    | UrlGen
    | TemplateGen
    | RegexReplaceGen
    | TimestampGen
    | AfterGen
    | ForeignKeyGen
    | LookupGen
    | AggregateGen,
    Field(discriminator="generator"),
]

GENERATOR_NAMES: tuple[str, ...] = (
    "sequence",
    "uniform",
    "normal",
    "lognormal",
    "zipf",
    "boolean",
    "choice",
    "pattern",
    "uuid4",
    "first_name",
    "last_name",
    "full_name",
    "city",
    "country",
    "company",
    "word",
    "domain",
    "email",
    "words",
    "sentence",
    "url",
    "template",
    "regex_replace",
    "timestamp",
    "after",
    "foreign_key",
    "lookup",
    "aggregate",
    ").split(",
)


class ColumnSpec(_Spec):
    """One column: its type, its generator, how often it is null and whether it is unique."""

    type: ColumnType
    gen: Generator
    null_rate: float = Field(default=0.0, ge=0, le=1)
    unique: bool = False
    precision: int = Field(default=18, ge=1, le=38)
    scale: int = Field(default=2, ge=0, le=38)
    format: str | None = None
    timezone: str | None = None
    hidden: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_generator(cls, data: Any) -> Any:
        """In YAML the generator's parameters sit beside the column's own keys; split them here."""
        if not isinstance(data, dict) or "gen" in data:
            return data
        own = {
            "type",
            "null_rate",
            "unique",
            "precision",
            "scale",
            "format",
            "timezone",
            "hidden",
            "description",
        }
        if "generator" not in data:
            raise ValueError("generator is missing; valid generators: " + ", ".join(GENERATOR_NAMES))
        if data["generator"] not in GENERATOR_NAMES:
            raise ValueError(
                f"unknown generator {data['generator']!r}; valid generators: " + ", ".join(GENERATOR_NAMES)
            )
        return {
            **{k: v for k, v in data.items() if k in own},
            "gen": {k: v for k, v in data.items() if k not in own},
        }

    @model_validator(mode="after")
    def _text_rendering(self) -> ColumnSpec:
        if (self.format or self.timezone) and self.type not in TEMPORAL:
            raise ValueError("format and timezone apply to date and timestamp columns only")
        if self.timezone and not self.format:
            raise ValueError("timezone needs a format (strftime, e.g. '%a %b %d %H:%M:%S %z %Y')")
        return self

    @property
    def required(self) -> bool:
        return self.null_rate == 0.0


class PartitionSpec(_Spec):
    """Split a table's files by a date or timestamp column, e.g. ``{yyyy}/{mm}/events.csv``."""

    column: str
    layout: str = "{yyyy}/{mm}/{table}.{ext}"

    @field_validator("layout")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        unknown = set(re.findall(r"\{(\w+)\}", v)) - {"yyyy", "mm", "dd", "table", "ext"}
        if unknown:
            raise ValueError(
                f"layout has unknown placeholders {sorted(unknown)}; use yyyy, mm, dd, table, ext"
            )
        if "{yyyy}" not in v:
            raise ValueError("layout must contain {yyyy}")
        return v


class RevisionSpec(_Spec):
    """Re-emit a share of rows as later revisions of the same key (``rate``), with ``column`` moved
    later by up to ``max_delay``: the duplicate-id collisions a dedupe step must resolve."""

    rate: float = Field(gt=0, le=0.5)
    column: str
    max_delay: str | float = "30d"


class TableSpec(_Spec):
    """One table: its row count, its columns (in output order), keys and file layout."""

    rows: int = Field(default=1000, ge=0)
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    primary_key: list[str] | None = None
    main: bool = False
    partition_by: PartitionSpec | None = None
    revisions: RevisionSpec | None = None
    description: str | None = None
    checks: list[dict[str, Any]] | None = Field(default=None, exclude=True)  # headwater.quality checks

    @field_validator("primary_key", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Schema(_Spec):
    """A set of tables generated together, parents before children."""

    name: str = "schema"
    description: str | None = None
    tables: dict[str, TableSpec] = Field(min_length=1)
