"""The DuckDB engine: outputs as Parquet folders, later models read what was written, errors in one line."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater.errors import DataError, UsageError
from headwater.transform import DuckDBEngine, EngineKind, models_from_mapping


def test_outputs_are_written_and_views_are_not(sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping(
        {
            "clean": "SELECT id, nullif(trim(s), '') AS s FROM t",
            "named": "-- materialize: output\nSELECT id, s FROM clean WHERE s IS NOT NULL",
            "counted": "-- materialize: output\nSELECT CAST(count(*) AS BIGINT) AS n FROM named",
        }
    )
    out = tmp_path / "out"
    result = DuckDBEngine(threads=1, memory_limit="256MB", temp_directory=tmp_path / "spill").run(
        models, {"t": [sample]}, out
    )
    assert result.engine is EngineKind.DUCKDB
    assert sorted(result.outputs) == ["counted", "named"]
    assert sorted(p.name for p in out.iterdir()) == ["counted", "named"]  # no temp folders left
    named = pq.read_table(result.outputs["named"].files[0])
    assert result.outputs["named"].rows == named.num_rows == 4
    assert pq.read_table(result.outputs["counted"].files[0]).column("n").to_pylist() == [4]
    assert result.rows == 5
    assert result.bytes > 0


def test_rerun_replaces_outputs(sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping({"o": "-- materialize: output\nSELECT id FROM t"})
    engine = DuckDBEngine()
    engine.run(models, {"t": [sample]}, tmp_path)
    second = engine.run(models, {"t": [sample]}, tmp_path)
    assert len(second.outputs["o"].files) == 1
    assert second.outputs["o"].rows == 6


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    models = models_from_mapping({"o": "-- materialize: output\nSELECT * FROM src_a JOIN src_b USING (k)"})
    with pytest.raises(UsageError, match="src_a, src_b"):
        DuckDBEngine().run(models, {}, tmp_path)


def test_model_failure_names_the_model(sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping({"broken": "-- materialize: output\nSELECT no_such_column FROM t"})
    with pytest.raises(DataError, match=r"^broken.sql: DuckDB failed: .*no_such_column") as err:
        DuckDBEngine().run(models, {"t": [sample]}, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / "broken").exists()


def test_table_models_are_computed_once_for_their_readers(sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping(
        {
            "shared": "-- materialize: table\nSELECT id, rating FROM t WHERE rating IS NOT NULL",
            "a": "-- materialize: output\nSELECT id FROM shared",
            "b": "-- materialize: output\nSELECT CAST(sum(rating) AS BIGINT) AS total FROM shared",
        }
    )
    result = DuckDBEngine().run(models, {"t": [sample]}, tmp_path / "out")
    assert sorted(result.outputs) == ["a", "b"]
    assert result.outputs["a"].rows == 5
    assert pq.read_table(result.outputs["b"].files[0]).column("total").to_pylist() == [15]
    assert not (tmp_path / "out" / "shared").exists()
