"""Check declarations: Pydantic models discriminated by ``type``, read from YAML.

Declared per table in ``headwater.yaml`` (``quality.checks.<table>``), next to a table schema
(``tables.<table>.checks``) or in a checks file (``headwater check --checks FILE``)::

    quality:
      checks:
        fact_events:
          - {type: not_null, columns: [event_id, event_time, user_id]}
          - {type: unique, columns: [event_id]}
          - {type: accepted_values, column: event_type, values: [page_view, click, login]}
          - {type: range, column: rating, min: 1, max: 5}
          - {type: regex, column: email, pattern: '[^@]+@[^@]+'}
          - {type: castable, column: event_time, to: timestamp}
          - {type: row_count, min: 1, max_change_pct: 50, severity: warn}
          - {type: freshness, column: event_time, max_age: 2d, severity: warn}
          - {type: relationships, column: user_id, to: dim_users.user_id}
          - {type: custom_sql, name: no_future_events, sql: "SELECT * FROM {table} WHERE event_time > now()"}

Every check has an optional ``name`` (default derived from its type and columns), ``severity``
(``error`` blocks publishing, ``warn`` only reports) and ``where`` (an SQL filter: the check looks only at
rows it keeps). NULLs pass every check except ``not_null``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from headwater.config import Settings
from headwater.errors import ConfigError
from headwater.schema.model import parse_duration


class Severity(StrEnum):
    ERROR = "error"  # a failure stops the batch from being published
    WARN = "warn"  # a failure is recorded and reported only


class CheckType(StrEnum):
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    ACCEPTED_VALUES = "accepted_values"
    RANGE = "range"
    REGEX = "regex"
    CASTABLE = "castable"
    ROW_COUNT = "row_count"
    FRESHNESS = "freshness"
    RELATIONSHIPS = "relationships"
    CUSTOM_SQL = "custom_sql"


Scalar = bool | int | float | dt.datetime | dt.date | str


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    severity: Severity = Severity.ERROR
    where: str | None = Field(default=None, description="SQL filter: only rows it keeps are checked")
    description: str | None = None

    @property
    def kind(self) -> CheckType:
        return CheckType(getattr(self, "type"))  # noqa: B009 - each subclass declares ``type`` as a Literal

    @property
    def label(self) -> str:
        """The check's name: given, or derived from its type and columns (unique within a table)."""
        return self.name or self._default_name()

    def _default_name(self) -> str:
        return self.kind.value

    @property
    def row_level(self) -> bool:
        """True when failures are rows (sampled, quarantined), False for a fact about the whole batch."""
        return True


class _ColumnsCheck(_Check):
    columns: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "column" in data:
            data = dict(data)
            col = data.pop("column")
            data.setdefault("columns", [col] if isinstance(col, str) else col)
        if isinstance(data, dict) and isinstance(data.get("columns"), str):
            data = {**data, "columns": [data["columns"]]}
        return data

    def _default_name(self) -> str:
        return f"{self.kind.value}({', '.join(self.columns)})"


class NotNullCheck(_ColumnsCheck):
    """No NULL in any of ``columns`` (``column`` for one)."""

    type: Literal["not_null"] = "not_null"


class UniqueCheck(_ColumnsCheck):
    """No two rows share the same value of ``columns`` (a composite key when several). Every row of a
    duplicated key fails; rows with a NULL in the key are not compared (SQL semantics)."""

    type: Literal["unique"] = "unique"


class _OneColumn(_Check):
    column: str = Field(min_length=1)

    def _default_name(self) -> str:
        return f"{self.kind.value}({self.column})"


class AcceptedValuesCheck(_OneColumn):
    """``column`` is one of ``values``."""

    type: Literal["accepted_values"] = "accepted_values"
    values: list[Scalar] = Field(min_length=1)


class RangeCheck(_OneColumn):
    """``min <= column <= max`` (either bound optional; ``inclusive: false`` makes both strict).
    Bounds may be numbers, dates or timestamps."""

    type: Literal["range"] = "range"
    min: Scalar | None = None
    max: Scalar | None = None
    inclusive: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("range needs min, max or both")
        return self


class RegexCheck(_OneColumn):
    """The whole text of ``column`` matches ``pattern`` (anchored at both ends)."""

    type: Literal["regex"] = "regex"
    pattern: str = Field(min_length=1)


class CastableCheck(_OneColumn):
    """Text in ``column`` converts to ``to`` (raw CSV columns read as text; DuckDB and Spark)."""

    type: Literal["castable"] = "castable"
    to: Literal["int", "bigint", "float", "double", "decimal", "bool", "date", "timestamp"]


class RowCountCheck(_Check):
    """The batch has between ``min`` and ``max`` rows, and differs from the previous batch of the same
    table by at most ``max_change_pct`` percent (the previous count comes from the checks history)."""

    type: Literal["row_count"] = "row_count"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    max_change_pct: float | None = Field(default=None, ge=0)

    @property
    def row_level(self) -> bool:
        return False

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min is None and self.max is None and self.max_change_pct is None:
            raise ValueError("row_count needs min, max or max_change_pct")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class FreshnessCheck(_OneColumn):
    """The newest ``column`` value is at most ``max_age`` old (``90s``, ``15m``, ``2h``, ``30d``, ``1w``)
    at the check's ``as_of`` time (now by default). Timestamps without a zone are UTC."""

    type: Literal["freshness"] = "freshness"
    max_age: str | float

    @property
    def row_level(self) -> bool:
        return False

    @property
    def max_age_seconds(self) -> float:
        return parse_duration(self.max_age)

    @field_validator("max_age")
    @classmethod
    def _duration(cls, v: str | float) -> str | float:
        parse_duration(v)
        return v


class RelationshipsCheck(_OneColumn):
    """Every non-NULL ``column`` value exists in ``to`` (``other_table.column``): referential integrity."""

    type: Literal["relationships"] = "relationships"
    to: str = Field(pattern=r"^[^.\s]+(\.[^.\s]+)?\.[^.\s]+$")

    @property
    def ref_table(self) -> str:
        return self.to.rpartition(".")[0]

    @property
    def ref_column(self) -> str:
        return self.to.rpartition(".")[2]

    def _default_name(self) -> str:
        return f"relationships({self.column} -> {self.to})"


class CustomSqlCheck(_Check):
    """``sql`` selects the failing rows; ``{table}`` stands for the checked table or batch. Needs a ``name``.
    Written in DuckDB SQL (transpiled for PostgreSQL and Spark)."""

    type: Literal["custom_sql"] = "custom_sql"
    name: str = Field(min_length=1)
    sql: str = Field(min_length=1)

    @field_validator("sql")
    @classmethod
    def _has_table(cls, v: str) -> str:
        if "{table}" not in v:
            raise ValueError("sql must select from {table}")
        return v


Check = Annotated[
    NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | RangeCheck
    | RegexCheck
    | CastableCheck
    | RowCountCheck
    | FreshnessCheck
    | RelationshipsCheck
    | CustomSqlCheck,
    Field(discriminator="type"),
]
_CHECKS: TypeAdapter[list[Check]] = TypeAdapter(list[Check])


def parse_checks(items: Sequence[Mapping[str, Any] | _Check], source: str = "checks") -> list[Check]:
    """Validate check declarations; names must be unique. Errors name the source, index and field."""
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{source}: expected a list of checks, got {type(items).__name__}")
    try:
        checks = _CHECKS.validate_python([i.model_dump() if isinstance(i, _Check) else i for i in items])
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = f"{source}[{loc[0]}]" if loc else source
        if len(loc) > 2:
            where += "." + ".".join(loc[2:])  # loc[1] is the type tag
        msg = err["msg"]
        if err["type"] == "union_tag_not_found":
            msg += f"; valid types: {', '.join(t.value for t in CheckType)}"
        raise ConfigError(f"{where}: {msg}") from exc
    seen: set[str] = set()
    for i, check in enumerate(checks):
        if check.label in seen:
            raise ConfigError(f"{source}[{i}]: two checks are named {check.label!r}; give one a name")
        seen.add(check.label)
    return checks


def dump_checks(checks: Sequence[_Check]) -> list[dict[str, Any]]:
    """Checks as plain YAML-ready dicts (defaults left out), the inverse of :func:`parse_checks`."""
    out = []
    for check in checks:
        data = check.model_dump(exclude_defaults=True)  # dates stay dates (YAML writes them as such)
        plain = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in data.items() if k != "type"}
        out.append({"type": check.kind.value, **plain})
    return out


def load_checks_file(path: Path, table: str | None = None) -> dict[str, list[Check]]:
    """Checks from a YAML file: a list (for ``table``), ``{table: [checks]}``, ``{checks: {table: [...]}}``
    or a whole project file (its ``quality.checks``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, dict) and isinstance(data.get("quality"), dict):
        data = data["quality"].get("checks", {})
    elif isinstance(data, dict) and isinstance(data.get("checks"), dict | list):
        data = data["checks"]
    if isinstance(data, list):
        if table is None:
            raise ConfigError(f"{path}: a plain list of checks needs a table name")
        return {table: parse_checks(data, str(path))}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a list of checks or a mapping table -> checks")
    return {str(t): parse_checks(items or [], f"{path}: {t}") for t, items in data.items()}


def checks_for_table(settings: Settings, table: str, extra: Sequence[Mapping[str, Any]] = ()) -> list[Check]:
    """The checks declared for ``table`` in ``headwater.yaml`` (``quality.checks.<table>``) plus ``extra``
    (e.g. :func:`schema_checks` of the table's schema)."""
    declared = list(settings.quality.checks.get(table, [])) + list(extra)
    return parse_checks(declared, f"quality.checks.{table}")


def schema_checks(spec: Any) -> list[dict[str, Any]]:
    """Checks declared next to a table schema (``tables.<table>.checks`` in a schema YAML)."""
    return [dict(i) for i in (getattr(spec, "checks", None) or [])]
