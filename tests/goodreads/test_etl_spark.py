"""DuckDB and Spark parity: the whole Goodreads model set on the same working batch gives identical rows
on both engines, and a cycle run with the Spark engine loads the same warehouse as one run with DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.goodreads.etl import goodreads_models, run_cycle
from headwater.goodreads.etl_ledger import BatchState
from headwater.goodreads.etl_schema import Entity
from headwater.goodreads.etl_zones import BatchRef, Zones
from headwater.storage import Zone
from headwater.transform import DuckDBEngine, SparkEngine
from headwater.warehouse import warehouse_from_settings
from tests.goodreads.conftest import STAR_TABLES, land, make_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def rows(files: tuple[Path, ...]) -> pa.Table:
    table = pa.concat_tables([pq.read_table(f) for f in files])
    schema = pa.schema([pa.field(f.name, f.type) for f in table.schema])  # nullability and metadata aside
    table = pa.Table.from_arrays(table.columns, schema=schema)
    return table.sort_by([(c, "ascending") for c in table.column_names])


def test_models_give_identical_rows_on_duckdb_and_spark(spark: Any, dirty_data: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "p")
    key = land(settings, dirty_data, "b1")  # dirty input: NULLs, revisions, odd text reach the models
    report = run_cycle(settings)
    working = Zones(settings).local_input(Zone.WORKING, BatchRef.parse(key))
    assert report.batches[0].stages[0].stage == "ingest"
    sources = {e.source: sorted((working / e.value).glob("*.parquet")) for e in Entity}
    models = goodreads_models()
    duck = DuckDBEngine().run(models, sources, tmp_path / "duckdb")
    sparked = SparkEngine(session=spark).run(models, sources, tmp_path / "spark")
    assert set(duck.outputs) == set(sparked.outputs) == set(models.outputs)
    for name in models.outputs:
        a, b = rows(duck.outputs[name].files), rows(sparked.outputs[name].files)
        assert a.schema == b.schema, name
        assert a.num_rows == b.num_rows > 0, name
        assert a.equals(b), name


def test_a_spark_cycle_loads_what_a_duckdb_cycle_loads(spark: Any, clean_data: Path, tmp_path: Path) -> None:
    on_duckdb = make_settings(tmp_path / "duck")
    on_spark = make_settings(tmp_path / "spark", {"goodreads": {"engine": "spark"}})
    for settings in (on_duckdb, on_spark):
        land(settings, clean_data, "b1")
    run_cycle(on_duckdb).raise_for_failures()
    report = run_cycle(on_spark, spark=spark)
    report.raise_for_failures()
    assert report.engine == "spark"
    assert report.batches[0].state is BatchState.LOADED
    a, b = warehouse_from_settings(on_duckdb), warehouse_from_settings(on_spark)
    for table in STAR_TABLES:
        left = a.query(f'SELECT * FROM "{table}"').to_pandas()
        right = b.query(f'SELECT * FROM "{table}"').to_pandas()
        key = list(left.columns)
        left = left.sort_values(key).reset_index(drop=True)
        right = right[key].sort_values(key).reset_index(drop=True)
        assert left.equals(right), table  # surrogate keys too: both assign them in natural-key order
