"""Quality fixtures: a project folder with settings, warehouses on DuckDB and PostgreSQL, and one shared
SparkSession per test session (local mode, loopback; starting it takes ~20 s)."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from headwater.config import Settings
from headwater.warehouse import Warehouse, open_warehouse
from tests.conftest import require_service
from tests.warehouse.conftest import pg_url


def make_settings(project: Path, **sections: Any) -> Settings:
    """Settings for a project in ``project`` (zones under data/, a DuckDB warehouse file)."""
    return Settings.model_validate({"project_dir": project, **sections})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh PostgreSQL schema for one test, dropped afterwards."""
    url = pg_url()
    if url is None:
        require_service("PostgreSQL", "pg_ctlcluster 15 main start", "cannot connect to 127.0.0.1:5432/test")
        raise AssertionError("unreachable")
    schema = f"hw_q_{uuid.uuid4().hex[:12]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    """An empty warehouse on each backend."""
    if request.param == "duckdb":
        return open_warehouse(tmp_path / "warehouse.duckdb", lock_timeout=5)
    url, schema = request.getfixturevalue("pg_schema")
    return open_warehouse(url, schema=schema)


@contextlib.contextmanager
def quiet_spark() -> Iterator[None]:
    """PySpark warns about pandas 3 and logs analysis errors with Java stacks; keep tests readable."""
    names = ("py4j", "pyspark")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for the whole test session (marker ``spark`` on the tests using it)."""
    try:
        with quiet_spark():
            from pyspark.sql import SparkSession
    except ImportError:
        require_service("PySpark", "pip install 'headwater[spark]'", "pyspark is not installed")
        raise AssertionError("unreachable") from None
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with quiet_spark():
        try:
            session = (
                SparkSession.builder.master("local[1]")
                .appName("headwater-quality-tests")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "1")
                # tiny test data: compiling code for each query costs more than it saves (~2x faster)
                .config("spark.sql.codegen.wholeStage", "false")
                .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
                .config("spark.sql.adaptive.enabled", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .getOrCreate()
            )
        except Exception as exc:
            require_service("Spark (Java 17)", "install a JDK 17 and PySpark", str(exc).splitlines()[0])
            raise AssertionError("unreachable") from exc
        session.sparkContext.setLogLevel("OFF")
    yield session
    with quiet_spark():
        session.stop()
