"""The Spark engine and the spark-submit entry point, in local mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from headwater.errors import DataError
from headwater.transform import EngineKind, SparkEngine, models_from_mapping, spark_job

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_engine_writes_clean_parquet_folders(spark: Any, sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping(
        {
            "latest": "SELECT id, rating FROM t QUALIFY row_number() OVER (PARTITION BY id ORDER BY ts DESC) = 1",
            "o": "-- materialize: output\nSELECT id, CAST(coalesce(rating, 0) AS BIGINT) AS rating FROM latest",
        }
    )
    before = spark.conf.get("spark.sql.timestampType", None)
    result = SparkEngine(session=spark).run(models, {"t": [sample]}, tmp_path / "out")
    assert result.engine is EngineKind.SPARK
    folder = tmp_path / "out" / "o"
    assert all(p.suffix == ".parquet" and not p.name.startswith(".") for p in folder.iterdir())
    rows = sorted(r["id"] for f in result.outputs["o"].files for r in pq.read_table(f).to_pylist())
    assert rows == [1, 2, 3, 4, 5]
    assert not (tmp_path / "out" / ".spark.tmp").exists()
    assert spark.conf.get("spark.sql.timestampType", None) == before  # the shared session is left as found


def test_spark_failure_is_one_line(spark: Any, sample: Path, tmp_path: Path) -> None:
    models = models_from_mapping({"bad": "-- materialize: output\nSELECT no_such_column FROM t"})
    with pytest.raises(DataError, match=r"^bad.sql: Spark failed: .*no_such_column") as err:
        SparkEngine(session=spark).run(models, {"t": [sample]}, tmp_path / "out")
    assert "\n" not in str(err.value)


def test_spark_job_entry_point(
    spark: Any, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "o.sql").write_text("-- materialize: output\nSELECT id, s FROM t WHERE id > 2")
    code = spark_job.main(
        [
            "--models",
            str(folder),
            "--source",
            f"t={sample}",
            "--out",
            str(tmp_path / "job"),
            "--master",
            "local[2]",
        ]
    )
    assert code == 0
    written = json.loads(capsys.readouterr().out)
    assert written == {"o": str(tmp_path / "job" / "o")}
    rows = pq.read_table(tmp_path / "job" / "o").num_rows
    assert rows == 4
