"""spark-submit entry point: run a model set on whatever cluster spark-submit targets.

    spark-submit --master yarn --deploy-mode client \\
        --py-files headwater.zip  $(python -c 'import headwater.transform.spark_job as j; print(j.__file__)') \\
        --models headwater.goodreads.models \\
        --source src_reviews=s3a://lake/hw/working/goodreads/2024/05/01/b1/reviews \\
        --source src_book=s3a://lake/hw/working/goodreads/2024/05/01/b1/book ... \\
        --out s3a://lake/hw/processed/goodreads/2024/05/01/b1

The session comes from spark-submit (master, executors, credentials); headwater only adds the settings that
keep Spark's results identical to DuckDB's (UTC, TIMESTAMP_NTZ, INT64 timestamps). Locally,
``python -m headwater.transform.spark_job ... --master local[2]`` does the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from headwater.transform.model import load_models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="headwater.transform.spark_job", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", required=True, help="a package (headwater.goodreads.models) or a folder")
    parser.add_argument(
        "--source", action="append", default=[], metavar="NAME=PATH", help="a source and its Parquet path"
    )
    parser.add_argument("--out", required=True, help="folder or URI for the output models")
    parser.add_argument("--master", default=None, help="only when not started by spark-submit")
    parser.add_argument("--output", action="append", default=[], help="run only these outputs")
    args = parser.parse_args(argv)

    sources: dict[str, list[str]] = {}
    for item in args.source:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--source {item!r}: expected NAME=PATH")
        sources.setdefault(name, []).append(path)
    models = load_models(Path(args.models) if "/" in args.models else args.models)
    if args.output:
        models = models.select(args.output)

    from headwater.transform.spark import run_models_on_spark, spark_session

    if args.master:
        spark = spark_session(args.master, app_name="headwater-spark-job")
    else:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("headwater-spark-job").getOrCreate()
    missing = [s for s in models.sources if s not in sources]
    if missing:
        parser.error(f"models read {', '.join(missing)}: give --source for each")
    written = run_models_on_spark(spark, models, sources, args.out)
    json.dump({name: path for name, (path, _s) in written.items()}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
