"""Goodreads ETL load test: one cycle over generated bulk landing files, DuckDB beside Spark local.

    ./dev.sh bench goodreads [--size 10GB] [--spark-size 1GB] [--skip-spark] [--workdir DIR]
    .venv/bin/python bench/goodreads.py --size 500MB        # the quick run

Generates the ``goodreads`` dataset at ``--size`` (reused by later runs of the same size), lands it as one
batch of a scratch project and times one ``headwater goodreads etl`` cycle with DuckDB; then the same at
``--spark-size`` (default: the smaller of --size and 1GB, Spark local mode on this machine) with Spark.
Prints rows, bytes, seconds and MB/s per stage and end to end. Goal: >= 38 MB/s of raw CSV end to end with
DuckDB (11.4 GB in 5 minutes, what the original pipeline ran per 10-minute run on a 3-node EMR cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from headwater.config import load_settings
from headwater.goodreads.loadtest import LoadTestReport, run_loadtest
from headwater.units import format_bytes, parse_size

GOAL_MB_S = 38.0


def describe(report: LoadTestReport) -> list[str]:
    cycle = report.cycle
    lines = [
        f"{report.engine:6s} {format_bytes(cycle.landing_bytes)} of raw CSV ({report.generated_rows:,} rows): "
        f"{cycle.seconds:.1f} s = {cycle.mb_per_s:.1f} MB/s end to end"
    ]
    for s in cycle.stage_totals():
        lines.append(
            f"       {s.stage:10s} {s.rows_in:>13,} rows in {s.rows_out:>13,} out {format_bytes(s.bytes):>10s} "
            f"{s.seconds:8.1f} s {s.mb_per_s:8.1f} MB/s  (CPU {s.cpu_seconds:.1f} s)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="10GB", help="raw CSV for the DuckDB run (default 10GB)")
    parser.add_argument(
        "--spark-size", default=None, help="raw CSV for the Spark run (default min(size, 1GB))"
    )
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument(
        "--also-without-text",
        action="store_true",
        help="also time DuckDB with goodreads.load_review_text off (texts stay in processed/)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/goodreads"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    size = parse_size(args.size, "--size")
    spark_size = parse_size(args.spark_size, "--spark-size") if args.spark_size else min(size, 1_000_000_000)
    settings = load_settings(env={})
    print(f"goodreads load test, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    duck = run_loadtest(settings, size=size, engine="duckdb", workdir=args.workdir / "duckdb")
    results["duckdb"] = duck.to_json()
    for line in describe(duck):
        print(line)
    verdict = "meets" if duck.cycle.mb_per_s >= GOAL_MB_S else "misses"
    print(f"       {verdict} the goal of {GOAL_MB_S:.0f} MB/s end to end")
    if args.also_without_text:
        lean = run_loadtest(
            settings, size=size, engine="duckdb", workdir=args.workdir / "duckdb", load_review_text=False
        )
        results["duckdb_without_text"] = lean.to_json()
        print("       ... and with review texts left in processed/ (goodreads.load_review_text: false):")
        for line in describe(lean):
            print(line)
    if not args.skip_spark:
        spark = run_loadtest(settings, size=spark_size, engine="spark", workdir=args.workdir / "spark")
        results["spark"] = spark.to_json()
        for line in describe(spark):
            print(line)
        if spark_size != size:
            print(
                f"       (Spark measured at {format_bytes(spark_size)}, not {format_bytes(size)}: local mode on 2 cores)"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {time.perf_counter() - t0:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
