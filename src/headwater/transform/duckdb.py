"""The embedded engine: DuckDB runs the models as written (they are in its dialect).

Sources become views over ``read_parquet``; a ``view`` model becomes a view (DuckDB plans it into each
reader); a ``table`` model a temp table (computed once, spilled past the memory limit); an ``output`` model is written with ``COPY ... TO`` into a
temp folder that is renamed into place, then re-pointed at its own Parquet so later models read the
written rows instead of computing them again. DuckDB streams and spills to ``temp_directory`` past
``memory_limit``, so a batch larger than memory runs out of core.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from headwater.errors import DataError
from headwater.manifest import publish_folder
from headwater.progress import Progress, no_progress
from headwater.sqltext import quote_identifier, sql_list, sql_string
from headwater.transform.base import EngineKind, TransformResult, check_sources, describe_output
from headwater.transform.model import Materialize, ModelSet


@dataclass(frozen=True)
class DuckDBEngine:
    """Run models in an in-memory DuckDB. ``threads`` 0 = DuckDB's default (one per core)."""

    threads: int = 0
    memory_limit: str | None = None
    temp_directory: Path | None = None
    compression: str = "snappy"
    kind: EngineKind = EngineKind.DUCKDB

    def connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {"preserve_insertion_order": False}
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory is not None:
            self.temp_directory.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(self.temp_directory)
        return duckdb.connect(config=config)

    def run(
        self,
        models: ModelSet,
        sources: Mapping[str, Sequence[Path]],
        out: Path,
        progress: Progress = no_progress,
    ) -> TransformResult:
        check_sources(models, sources)
        started = time.perf_counter()
        result = TransformResult(EngineKind.DUCKDB)
        out.mkdir(parents=True, exist_ok=True)
        con = self.connect()
        try:
            for name in models.sources:
                con.execute(
                    f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM read_parquet({sql_list(sources[name])})"
                )
            for model in models:
                t0 = time.perf_counter()
                view = quote_identifier(model.name)
                try:
                    if model.materialize is Materialize.TABLE:
                        con.execute(f"CREATE TEMP TABLE {view} AS {model.sql}")
                        continue
                    con.execute(f"CREATE VIEW {view} AS {model.sql}")
                    if not model.is_output:
                        continue
                    final = out / model.name
                    tmp = out / f".{model.name}.tmp"
                    shutil.rmtree(tmp, ignore_errors=True)
                    tmp.mkdir(parents=True)
                    target = sql_string(tmp / "part-0.parquet")
                    con.execute(
                        f"COPY (SELECT * FROM {view}) TO {target} (FORMAT parquet, COMPRESSION {self.compression})"
                    )
                except duckdb.Error as exc:
                    raise DataError(
                        f"{model.path or model.name}: DuckDB failed: {str(exc).strip().splitlines()[0]}"
                    ) from exc
                shutil.rmtree(final, ignore_errors=True)
                publish_folder(tmp, final)
                run = describe_output(model.name, final, time.perf_counter() - t0)
                result.outputs[model.name] = run
                con.execute(
                    f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({sql_list(run.files)})"
                )
                progress(f"{model.name} rows", run.rows)
        finally:
            con.close()
        result.seconds = time.perf_counter() - started
        return result
