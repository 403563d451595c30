"""Schema loading: valid schemas load, invalid ones fail with one line naming file and YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import SchemaError
from headwater.generate import load_dataset
from headwater.schema import load_schema, load_schema_text
from headwater.schema.loader import main_table, table_order

BASE = """
tables:
  users:
    rows: 10
    columns:
      user_id: {type: int, generator: sequence}
%s
"""


def err(column_yaml: str) -> str:
    with pytest.raises(SchemaError) as info:
        load_schema_text(BASE % column_yaml, source="schema.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_builtin_datasets_load_and_order_parents_first() -> None:
    events = load_dataset("events")
    assert table_order(events) == ["companies", "users", "events"]
    assert main_table(events) == "events"
    goodreads = load_dataset("goodreads")
    order = table_order(goodreads)
    assert order.index("author") < order.index("book") < order.index("reviews")
    assert main_table(goodreads) == "reviews"


def test_min_not_below_max_names_the_path() -> None:
    msg = err("      age: {type: int, generator: uniform, min: 90, max: 18}")
    assert msg == "schema.yaml: tables.users.columns.age: min must be below max"


def test_unknown_generator_lists_the_valid_ones() -> None:
    msg = err("      age: {type: int, generator: gaussian}")
    assert "tables.users.columns.age" in msg
    assert "unknown generator 'gaussian'" in msg
    assert "uniform" in msg
    assert "zipf" in msg
    assert "foreign_key" in msg


def test_unknown_parameter_is_refused_not_ignored() -> None:
    msg = err("      age: {type: int, generator: uniform, min: 1, max: 5, mean: 3}")
    assert msg == "schema.yaml: tables.users.columns.age: unknown key 'mean'"


def test_generator_type_mismatch() -> None:
    msg = err("      name: {type: int, generator: full_name}")
    assert "generator 'full_name' cannot fill type int" in msg


def test_foreign_key_to_missing_table() -> None:
    msg = err("      team: {type: int, generator: foreign_key, references: teams.team_id}")
    assert (
        msg
        == "schema.yaml: tables.users.columns.team: references table 'teams', which the schema does not have"
    )


def test_reference_to_missing_column_of_same_row() -> None:
    msg = err("      mail: {type: string, generator: email, from: name}")
    assert "refers to column 'name'" in msg


def test_unique_on_unsupported_generator() -> None:
    msg = err("      name: {type: string, generator: full_name, unique: true}")
    assert "unique is not supported for generator 'full_name'" in msg


def test_columns_in_a_cycle() -> None:
    msg = err(
        "      a: {type: string, generator: template, template: '{b}'}\n"
        "      b: {type: string, generator: template, template: '{a}'}"
    )
    assert "cycle" in msg


def test_tables_in_a_foreign_key_cycle() -> None:
    text = """
tables:
  a: {columns: {id: {type: int, generator: sequence, unique: true}, b: {type: int, generator: foreign_key, references: b.id}}}
  b: {columns: {id: {type: int, generator: sequence, unique: true}, a: {type: int, generator: foreign_key, references: a.id}}}
"""
    with pytest.raises(SchemaError, match="foreign keys form a cycle"):
        load_schema_text(text, "s.yaml")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_schema_text("tables: [unclosed", "s.yaml")
    with pytest.raises(SchemaError, match="cannot read the schema"):
        load_schema(tmp_path / "missing.yaml")


def test_seasonality_needs_24_hours() -> None:
    msg = err(
        "      t: {type: timestamp, generator: timestamp, start: 2021-01-01, end: 2021-02-01,"
        " seasonality: {daily: [1, 2]}}"
    )
    assert "daily needs 24 weights, got 2" in msg
