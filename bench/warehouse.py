"""Warehouse merge benchmark: headwater against dlt's ``merge`` write disposition, same data, one run.

    ./dev.sh bench warehouse [--duck-rows 10000000] [--pg-rows 1000000] [--skip-dlt]

Each target first holds N rows (ids 0..N-1); the timed step merges a batch of N rows of which half
update existing ids (every value changed) and half insert new ids. Also: backup and restore time per GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa

from headwater.warehouse import LoadRequest, open_warehouse
from headwater.warehouse.backup import backup_warehouse, restore_warehouse

PG_URL = os.environ.get("HEADWATER_BENCH_PG", "postgresql://127.0.0.1:5432/test")


def make_rows(lo: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(lo, lo + n, dtype=np.int64)
    return pa.table(
        {
            "id": ids,
            "user_id": rng.integers(0, 1_000_000, n),
            "amount": np.round(rng.random(n) * 100, 2),
            "status": pa.array(np.array(["new", "paid", "sent", "done"])[rng.integers(0, 4, n)]),
            "at": pa.array(rng.integers(1_600_000_000_000_000, 1_700_000_000_000_000, n)).cast(
                pa.timestamp("us")
            ),
        }
    )


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of ``fn``; its CPU seconds in this process (DuckDB's threads included, the
    PostgreSQL server's work not) are kept in ``CPU`` under the same label."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0


CPU: list[float] = []


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def bench_headwater(url: str, schema: str, base: pa.Table, batch: pa.Table) -> float:
    wh = open_warehouse(url, schema=schema)
    wh.load(base, LoadRequest("orders", "base", primary_key=("id",)))
    seconds = timed(lambda: wh.load(batch, LoadRequest("orders", "batch", primary_key=("id",))))
    check = wh.query("SELECT count(*) AS n FROM orders").to_pylist()[0]["n"]
    assert check == base.num_rows + batch.num_rows // 2, check
    return seconds


def bench_dlt(destination: Any, dataset: str, base: pa.Table, batch: pa.Table, workdir: Path) -> float:
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{dataset}",
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=str(workdir / "dlt"),
    )
    pipeline.run(base, table_name="orders", write_disposition="merge", primary_key="id")
    return timed(
        lambda: pipeline.run(batch, table_name="orders", write_disposition="merge", primary_key="id")
    )


def restore_per_gb(url: str, schema: str, workdir: Path, target_url: str, target_schema: str) -> str:
    source = open_warehouse(url, schema=schema)
    snap = backup_warehouse(source, workdir / "backup")
    restored = restore_warehouse(open_warehouse(target_url, schema=target_schema), snap.folder)
    gb = snap.bytes / 1e9
    rows = sum(snap.tables.values())
    return (
        f"backup {rows:,} rows, {snap.bytes / 1e6:.0f} MB Parquet in {snap.seconds:.1f}s; "
        f"restore {restored.seconds:.1f}s = {restored.seconds / gb:.0f} s/GB of Parquet"
    )


def report(name: str, rows: int, ours: float, peer: float | None, cpu: list[float]) -> None:
    line = f"{name:<10} headwater merge {rows:>11,} rows {ours:7.2f}s {rows / ours:>12,.0f} rows/s"
    if peer is not None:
        line += f" | dlt {peer:7.2f}s {rows / peer:>10,.0f} rows/s | headwater/dlt {peer / ours:5.1f}x"
    where = "process" if name == "duckdb" else "client"
    line += f" | {where} cpu " + " vs ".join(f"{c:.1f}s" for c in cpu)
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duck-rows", type=int, default=10_000_000)
    parser.add_argument("--pg-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-dlt", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    workdir = Path(tempfile.mkdtemp(prefix="hw-bench-"))
    print(f"cores {os.cpu_count()}, work folder {workdir}", flush=True)
    try:
        for name, n in (("duckdb", args.duck_rows), ("postgres", args.pg_rows)):
            base, batch = make_rows(0, n, 1), make_rows(n // 2, n, 2)
            if name == "duckdb":
                ours = bench_headwater(str(workdir / "hw.duckdb"), "public", base, batch)
                peer = None
                if not args.skip_dlt:
                    import dlt

                    dest: Any = dlt.destinations.duckdb(str(workdir / "dlt.duckdb"))
                    peer = bench_dlt(dest, "bench", base, batch, workdir)
            else:
                for schema in ("hw_bench", "hw_bench_restore", "dlt_bench"):
                    drop_pg_schema(schema)
                ours = bench_headwater(PG_URL, "hw_bench", base, batch)
                peer = None
                if not args.skip_dlt:
                    import dlt

                    # dlt insists on a password; trust auth ignores it
                    dest = dlt.destinations.postgres(PG_URL.replace("://", "://root:trust@", 1))
                    peer = bench_dlt(dest, "dlt_bench", base, batch, workdir)
            report(name, n, ours, peer, CPU[-2:] if peer is not None else CPU[-1:])
        print(
            "duckdb    ",
            restore_per_gb(
                str(workdir / "hw.duckdb"), "public", workdir / "d", str(workdir / "r.duckdb"), "public"
            ),
            flush=True,
        )
        print(
            "postgres  ",
            restore_per_gb(PG_URL, "hw_bench", workdir / "p", PG_URL, "hw_bench_restore"),
            flush=True,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for schema in ("hw_bench", "hw_bench_restore", "dlt_bench"):
            drop_pg_schema(schema)


if __name__ == "__main__":
    main()
