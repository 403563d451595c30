"""The scale-out engine: the same models, transpiled from DuckDB SQL to Spark SQL by sqlglot.

PySpark is an optional extra (``pip install headwater[spark]``) and is imported only inside these
functions, so ``import headwater`` never needs it. Locally the engine starts (or reuses) a session in
``local[N]`` mode; on a cluster ``python -m headwater.transform.spark_job`` is the spark-submit entry point
(see docs/transform.md).

Session settings that make Spark agree with DuckDB, set for the length of each run (and put back after,
since a session is shared by everything in the process): UTC session time zone; ``TIMESTAMP_NTZ`` as the
default timestamp type, so ``CAST(x AS TIMESTAMP)`` and Parquet timestamps are plain wall-clock UTC values
as on DuckDB; Parquet timestamps written as INT64 microseconds (not INT96).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.errors import DataError, UsageError
from headwater.manifest import publish_folder
from headwater.progress import Progress, no_progress
from headwater.transform.base import EngineKind, TransformResult, check_sources, describe_output
from headwater.transform.model import Materialize, ModelSet
from headwater.transform.subset import transpile

#: settings every headwater Spark session carries (see the module doc)
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionOverwriteMode": "static",
}

#: extra settings for local mode: small shuffles, no UI, loopback only
LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}

_QUIET_LOGGERS = ("py4j", "pyspark", "SQLQueryContextLogger", "DataFrameQueryContextLogger")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """PySpark warns about pandas 3 and logs every analysis error with its Java stack; headwater raises
    its own one-line error instead, so both are silenced while Spark runs."""
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def spark_session(
    master: str = "local[2]",
    *,
    app_name: str = "headwater",
    shuffle_partitions: int = 4,
    driver_memory: str = "2g",
    conf: Mapping[str, str] | None = None,
) -> Any:
    """A SparkSession with headwater's settings (reused when one is already running in this process).

    Local mode binds to loopback (``SPARK_LOCAL_IP=127.0.0.1``). Starting one takes ~10-20 s."""
    try:
        with _quiet():
            from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError("the Spark engine needs PySpark: pip install 'headwater[spark]'") from exc
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        **(LOCAL_CONF if master.startswith("local") else {}),
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.driver.memory": driver_memory,
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _quiet():
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("OFF")
    return session


@contextlib.contextmanager
def session_conf(spark: Any, conf: Mapping[str, str]) -> Iterator[None]:
    """Set SQL settings on a (possibly shared) session for the length of a run, then put back what was
    there, so other users of the same session see their own settings."""
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_models_on_spark(
    spark: Any,
    models: ModelSet,
    sources: Mapping[str, Sequence[str]],
    out: str,
    progress: Progress = no_progress,
) -> dict[str, tuple[str, float]]:
    """Run ``models`` on ``spark``: sources are read from Parquet paths or URIs, each output model written
    to ``<out>/<model>`` and read back from there. Returns ``{model: (path, seconds)}``. This is the part
    that runs unchanged under spark-submit."""
    written: dict[str, tuple[str, float]] = {}
    cached: list[Any] = []
    with _quiet(), session_conf(spark, SESSION_CONF):
        for name in models.sources:
            spark.read.parquet(*[str(p) for p in sources[name]]).createOrReplaceTempView(name)
        for model in models:
            t0 = time.perf_counter()
            where = model.path or model.name
            sql = transpile(model.sql, "spark", where)
            try:
                frame = spark.sql(sql)
                if model.materialize is Materialize.TABLE:
                    frame = frame.persist()
                    cached.append(frame)
                if not model.is_output:
                    frame.createOrReplaceTempView(model.name)
                    continue
                target = f"{out.rstrip('/')}/{model.name}"
                frame.write.mode("overwrite").parquet(target)
                spark.read.parquet(target).createOrReplaceTempView(model.name)
            except Exception as exc:  # py4j/pyspark raise many types; translate them all at this boundary
                if type(exc).__module__.startswith(("pyspark", "py4j")):
                    raise DataError(f"{where}: Spark failed: {_error_line(exc)}") from exc
                raise
            written[model.name] = (target, time.perf_counter() - t0)
            progress(f"{model.name} models", 1)
        for frame in cached:
            frame.unpersist()
    return written


@dataclass(frozen=True)
class SparkEngine:
    """Run models with PySpark. Without ``session`` a local session is started (or reused)."""

    master: str = "local[2]"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    conf: Mapping[str, str] = field(default_factory=dict)
    session: Any = None
    kind: EngineKind = EngineKind.SPARK

    def spark(self) -> Any:
        if self.session is not None:
            return self.session
        return spark_session(
            self.master,
            shuffle_partitions=self.shuffle_partitions,
            driver_memory=self.driver_memory,
            conf=self.conf,
        )

    def run(
        self,
        models: ModelSet,
        sources: Mapping[str, Sequence[Path]],
        out: Path,
        progress: Progress = no_progress,
    ) -> TransformResult:
        check_sources(models, sources)
        started = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        staging = out / ".spark.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            written = run_models_on_spark(
                self.spark(),
                models,
                {k: [str(p) for p in v] for k, v in sources.items()},
                str(staging),
                progress,
            )
            result = TransformResult(EngineKind.SPARK)
            for name, (path, seconds) in written.items():
                folder = Path(path)
                for extra in folder.iterdir():  # _SUCCESS and .crc files: not data
                    if not extra.name.endswith(".parquet") or extra.name.startswith("."):
                        extra.unlink()
                final = out / name
                shutil.rmtree(final, ignore_errors=True)
                publish_folder(folder, final)
                result.outputs[name] = describe_output(name, final, seconds)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.seconds = time.perf_counter() - started
        return result
