"""SQL transforms: models written once in DuckDB SQL, run by DuckDB (default) or PySpark.

    from headwater.transform import DuckDBEngine, load_models
    models = load_models("headwater.goodreads.models")          # a package or a folder of .sql files
    result = DuckDBEngine().run(models, {"src_reviews": [Path("reviews.parquet")]}, Path("out"))

Spark runs the same models after sqlglot transpiles them (:class:`SparkEngine`); only the SQL subset in
:mod:`headwater.transform.subset`, proven identical on both engines, is accepted. See docs/transform.md.
"""

from __future__ import annotations

from headwater.transform.base import EngineKind, ModelRun, TransformEngine, TransformResult
from headwater.transform.duckdb import DuckDBEngine
from headwater.transform.model import Materialize, Model, ModelSet, load_models, models_from_mapping
from headwater.transform.spark import SparkEngine, spark_session
from headwater.transform.subset import check_subset, transpile

__all__ = [
    "DuckDBEngine",
    "EngineKind",
    "Materialize",
    "Model",
    "ModelRun",
    "ModelSet",
    "SparkEngine",
    "TransformEngine",
    "TransformResult",
    "check_subset",
    "load_models",
    "models_from_mapping",
    "spark_session",
    "transpile",
]
