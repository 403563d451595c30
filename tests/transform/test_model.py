"""Models: headers, dependencies found in the SQL, ordering, refusals with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import SchemaError
from headwater.transform import Materialize, load_models, models_from_mapping
from headwater.transform.model import parse_model, table_references


def test_headers_and_dependencies_come_from_the_file() -> None:
    text = (
        "-- Latest row per id.\n"
        "-- materialize: output\n"
        "-- unique: a, b\n"
        "WITH x AS (SELECT * FROM src_t) SELECT a, b FROM x JOIN other USING (a)\n"
    )
    model = parse_model("m", text)
    assert model.materialize is Materialize.OUTPUT
    assert model.unique == ("a", "b")
    assert model.depends == ("other", "src_t")  # the CTE is not a dependency
    assert model.description == "Latest row per id."


def test_order_puts_readers_after_what_they_read_and_names_sources() -> None:
    models = models_from_mapping(
        {
            "c": "-- materialize: output\nSELECT * FROM b JOIN a USING (k)",
            "b": "SELECT * FROM a",
            "a": "SELECT * FROM src_x",
        }
    )
    assert [m.name for m in models] == ["a", "b", "c"]
    assert models.sources == ("src_x",)
    assert models.outputs == ("c",)
    assert [m.name for m in models.select(["b"])] == ["a", "b"]


def test_cycle_is_refused() -> None:
    with pytest.raises(SchemaError, match="cycle"):
        models_from_mapping({"a": "SELECT * FROM b", "b": "SELECT * FROM a"})


def test_declared_depends_must_match_the_query() -> None:
    with pytest.raises(SchemaError, match="'-- depends: y' but the query reads x"):
        parse_model("m", "-- depends: y\nSELECT * FROM x")
    assert parse_model("m", "-- depends: x\nSELECT * FROM x").depends == ("x",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT * FROM t; SELECT 1", "one statement per model"),
        ("SELEC * FROM t", "not valid DuckDB SQL"),
        ("-- materialize: cube\nSELECT 1", "materialize 'cube'"),
        ("INSERT INTO t VALUES (1)", "one SELECT query"),
        ("SELECT * FROM m", "reads itself"),
    ],
)
def test_bad_models_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as err:
        parse_model("m", text, "models/m.sql")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("models/m.sql")


def test_semicolon_inside_a_string_is_fine() -> None:
    assert parse_model("m", "SELECT ';' AS x FROM t;").depends == ("t",)


def test_load_models_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT * FROM src")
    (tmp_path / "b.sql").write_text("-- materialize: output\nSELECT * FROM a")
    (tmp_path / "notes.txt").write_text("ignored")
    models = load_models(tmp_path)
    assert [m.name for m in models] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match=r"holds no \.sql models"):
        load_models(tmp_path / "empty")


def test_bad_model_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Bad-Name.sql").write_text("SELECT 1")
    with pytest.raises(SchemaError, match="lower-case letters"):
        load_models(tmp_path)


def test_goodreads_models_ship_and_load() -> None:
    models = load_models("headwater.goodreads.models")
    assert set(models.sources) == {"src_author", "src_book", "src_user", "src_reviews"}
    assert set(models.outputs) == {
        "dim_author",
        "dim_book",
        "dim_user",
        "dim_date",
        "fact_reviews",
        "book_authors",
    }
    order = [m.name for m in models]
    assert order.index("fact_reviews") < order.index("dim_date")
    assert all(models.get(name).unique for name in models.outputs)


def test_table_references_ignore_cte_names() -> None:
    assert table_references("WITH a AS (SELECT 1) SELECT * FROM a, b") == ("b",)
