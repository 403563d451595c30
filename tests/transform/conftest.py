"""Fixtures for transform tests: one local SparkSession for the whole test run (shared through
``getOrCreate`` with every other test folder that asks for one), and a tiny typed input table."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import require_service


def start_spark() -> Any:
    """The shared local session; skips (fails under CI=true) when PySpark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        require_service("PySpark", "pip install 'headwater[spark]'", "pyspark is not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        require_service(
            "Java 17", "install a JDK 17 (apt-get install openjdk-17-jre-headless)", "java not found"
        )
    from headwater.transform.spark import spark_session

    try:
        return spark_session("local[2]", shuffle_partitions=2, driver_memory="1g")
    except Exception as exc:
        require_service("Spark", "install a JDK 17 and PySpark", str(exc).splitlines()[0])
        raise


@pytest.fixture(scope="session")
def spark() -> Any:
    """One SparkSession for every test that needs it (~10-20 s to start). Not stopped here: other
    folders share it, and the JVM ends with the test process."""
    return start_spark()


SAMPLE = """
SELECT * FROM (VALUES
    (1, '  Ada   Lovelace ', 'Tue Feb 11 18:08:25 -0800 2020', 5, 4.25, TIMESTAMP '2020-02-12 02:08:25', DATE '2020-02-11', true, '7, 8,9'),
    (2, 'tab' || chr(9) || 'and' || chr(10) || 'newline', 'Sat Feb 29 00:00:00 +0530 2020', 1, -1.5, TIMESTAMP '2020-02-28 18:30:00', DATE '2020-02-29', false, '10'),
    (3, '', 'Thu Dec 31 23:59:59 +1400 2015', 3, 0.0, TIMESTAMP '2015-12-31 09:59:59', DATE '2015-12-31', NULL, NULL),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ''),
    (5, 'Émile Zola (Les Rougon-Macquart, #20)', 'Mon Jan 05 08:00:00 -0000 1970', 4, 1e6, TIMESTAMP '1970-01-05 08:00:00', DATE '1970-01-05', true, '3,3'),
    (5, 'duplicate id', 'Sun Jan 04 08:00:00 -0000 1970', 2, 2.5, TIMESTAMP '1970-01-04 08:00:00', DATE '1969-12-28', false, '1')
) AS t(id, s, when_text, rating, x, ts, d, flag, list)
"""


def write_sample(folder: Path) -> Path:
    """The sample table as one Parquet file (typed by DuckDB: BIGINT ids, TIMESTAMP, DATE, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "t.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT CAST(id AS BIGINT) AS id, s, when_text, CAST(rating AS BIGINT) AS rating, "
        f"CAST(x AS DOUBLE) AS x, ts, d, flag, list FROM ({SAMPLE})) TO '{path}' (FORMAT parquet)"
    )
    con.close()
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "in")
