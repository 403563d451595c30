"""Golden tests: every construct of the tested subset gives identical rows on DuckDB and on Spark, and
the constructs the subset refuses really do differ (so the refusals are earned, not guessed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from headwater.transform import DuckDBEngine, SparkEngine, models_from_mapping
from headwater.transform.subset import ALLOWED_FUNCTIONS
from tests.transform.golden import GOLDEN_MODELS

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def normalised(files: tuple[Path, ...]) -> pa.Table:
    """The rows of an output, sorted, with nullability and Spark's metadata set aside."""
    table = pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({})
    schema = pa.schema([pa.field(f.name, f.type) for f in table.schema])
    table = pa.Table.from_arrays(table.columns, schema=schema)
    return table.sort_by([(c, "ascending") for c in table.column_names])


def test_every_allowed_function_is_covered_by_a_golden_model() -> None:
    used = set()
    for sql in GOLDEN_MODELS.values():
        used |= {type(n).__name__ for n in sqlglot.parse_one(sql, read="duckdb").walk()}
    assert ALLOWED_FUNCTIONS - used == set()


def test_golden_models_agree_on_duckdb_and_spark(spark: Any, sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping(GOLDEN_MODELS)
    duck = DuckDBEngine().run(models, {"t": [sample]}, tmp_path / "duckdb")
    sparked = SparkEngine(session=spark).run(models, {"t": [sample]}, tmp_path / "spark")
    assert set(duck.outputs) == set(sparked.outputs) == set(models.outputs)
    assert "kept" not in models.outputs  # a table model: computed once, not written
    for name in models.outputs:
        a, b = normalised(duck.outputs[name].files), normalised(sparked.outputs[name].files)
        assert a.schema == b.schema, name
        assert a.to_pylist() == b.to_pylist(), name
        assert a.num_rows > 0, name


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT dayname(d) AS v FROM t WHERE id = 1", "full day name vs abbreviation"),
        ("SELECT monthname(d) AS v FROM t WHERE id = 1", "full month name vs abbreviation"),
        ("SELECT dayofweek(d) AS v FROM t WHERE id = 1", "0-based vs 1-based"),
        ("SELECT isodow(d) AS v FROM t WHERE id = 1", "wrong formula"),
        ("SELECT regexp_replace(s, ' ', '_') AS v FROM t WHERE id = 1", "first vs every match"),
        ("SELECT regexp_replace(s, '[[:space:]]+', '_', 'g') AS v FROM t WHERE id = 1", "POSIX class"),
        ("SELECT CAST(x AS BIGINT) AS v FROM t WHERE id = 2", "-1.5 rounds on DuckDB, truncates on Spark"),
    ],
)
def test_refused_constructs_really_differ(spark: Any, sample: Path, sql: str, why: str) -> None:
    con = duckdb.connect()
    try:
        on_duckdb = con.execute(sql.replace("FROM t", f"FROM read_parquet('{sample}')")).fetchall()
    finally:
        con.close()
    spark.read.parquet(str(sample)).createOrReplaceTempView("t")
    on_spark = [
        tuple(r) for r in spark.sql(sqlglot.transpile(sql, read="duckdb", write="spark")[0]).collect()
    ]
    assert on_duckdb != on_spark, why


def test_unwrapped_integer_results_differ_in_type(spark: Any, sample: Path, tmp_path: Path) -> None:
    """Why sum() and length() must be cast: DuckDB writes sum(BIGINT) (a HUGEINT) to Parquet as DOUBLE
    and length() as BIGINT; Spark writes BIGINT and INT."""
    con = duckdb.connect()
    out = tmp_path / "duck.parquet"
    try:
        con.execute(
            f"COPY (SELECT sum(rating) AS total, length(max(s)) AS chars FROM read_parquet('{sample}')) "
            f"TO '{out}' (FORMAT parquet)"
        )
    finally:
        con.close()
    spark.read.parquet(str(sample)).createOrReplaceTempView("t")
    frame = spark.sql("SELECT sum(rating) AS total, length(max(s)) AS chars FROM t")
    duck_types = [f.type for f in pq.read_schema(out)]
    assert duck_types == [pa.float64(), pa.int64()]
    assert [f.dataType.simpleString() for f in frame.schema.fields] == ["bigint", "int"]
