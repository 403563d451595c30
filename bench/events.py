"""Benchmark: one month of events (default 2 GB of CSV) processed by headwater's ``run_month`` against
the seed's own stack at its best (pandas with the pyarrow CSV engine), Polars streaming (as its users run
it, writing zstd, and writing snappy like headwater), and raw DuckDB running the same SQL without
headwater. The table shows wall and CPU seconds, peak RSS and the size of the Parquet written. Each
contender runs in a fresh process, so its peak RSS is its own, starts with the CSV in the page cache
(read once, untimed, before each: the generator writes with direct I/O, so a fresh file is not cached and
whoever read it first would pay for the disk), and writes where no output of an earlier run exists.
Imports are done before each contender's timer starts (headwater's lazy imports of its quality gate and
of its compiled reader of plain lines included), as a long-running process pays them once; the bench
prints each contender's import time too, and the ratio with imports counted.

Every contender does the same job: parse the month with declared types, timestamps to UTC, drop duplicate
event_ids keeping the first, write Parquet, and compute events per day and the top 10 users and companies.

    ./dev.sh bench events                   # 2 GB month, all contenders
    ./dev.sh bench events --size 200MB      # a quick run
    ./dev.sh bench events --size 10GB --only headwater,polars   # the memory bound on a 10 GB month
    ./dev.sh bench events --only headwater,polars,polars-snappy --repeat 3   # rounds, medians in the table
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from headwater.units import format_bytes, parse_size

CONTENDERS = ("headwater", "pandas", "polars", "polars-snappy", "duckdb")
PEERS = ("pandas", "polars")
"""The issue's goal is 2x the faster of these, each as its users would run it (Polars writes zstd by
default). ``polars-snappy`` is Polars writing headwater's codec, for the like-for-like figure."""

# Peak RSS of the contender's own process image: VmHWM resets at exec (ru_maxrss would include the
# driver's memory from before the exec).
PRELUDE = """
import time as _time
_T0 = _time.perf_counter()  # what each contender imports before its timer starts is reported apart

def _hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

import resource as _resource
def _cpu():
    r = _resource.getrusage(_resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
"""

HEADWATER = """
import json, sys, time
from pathlib import Path
from headwater.config import load_settings
from headwater.events import Month, analyse, run_month
import headwater.quality  # run_month imports the quality gate when it first runs; imports are untimed for all
import headwater.events.plain  # and the compiled reader of plain lines (Numba), for a month this large
settings = load_settings(Path(sys.argv[1]), env={})
t, c = time.perf_counter(), _cpu()
report = run_month(settings, "2021-01", sys.argv[2], load=False, force=True)
result = analyse(settings, [Month.parse("2021-01")], top_n=10)
seconds, cpu = time.perf_counter() - t, _cpu() - c
out = Path(report.processed_uri)
size = sum(p.stat().st_size for p in out.parent.iterdir() if p.is_file())  # the month and its counts
print(json.dumps({"seconds": seconds, "cpu": cpu, "rows": report.rows_out, "top_user": int(result.top_users["user_id"][0]), "peak_rss": _hwm(), "imports": t - _T0,
                  "output": size, "stages": {s.name: round(s.seconds, 2) for s in report.stages}}))
"""

PANDAS = """
import json, os, sys, time
import pandas as pd
t, c = time.perf_counter(), _cpu()
df = pd.read_csv(sys.argv[1], engine="pyarrow", dtype={"event_id": "int64", "user_id": "int64", "company_id": "int64",
                 "event_type": "string", "properties": "string"})
df["event_time"] = pd.to_datetime(df["event_time"], format="ISO8601", utc=True)
df = df.drop_duplicates(subset="event_id", keep="first")
per_day = df.groupby(df["event_time"].dt.date).size()
top_users = df["user_id"].value_counts().head(10)
top_companies = df["company_id"].value_counts().head(10)
df.to_parquet(sys.argv[2], index=False)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "rows": len(df), "top_user": int(top_users.index[0]), "peak_rss": _hwm(), "imports": t - _T0,
                  "output": os.path.getsize(sys.argv[2])}))
"""

POLARS = """
import json, os, sys, time
import polars as pl
t, c = time.perf_counter(), _cpu()
lf = pl.scan_csv(sys.argv[1], schema={"event_id": pl.Int64, "event_time": pl.String, "user_id": pl.Int64,
                 "company_id": pl.Int64, "event_type": pl.String, "properties": pl.String})
lf = lf.with_columns(pl.col("event_time").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC"))
lf = lf.unique(subset="event_id", keep="first", maintain_order=True)
lf.sink_parquet(sys.argv[2], compression=sys.argv[3])
out = pl.scan_parquet(sys.argv[2])
per_day = out.group_by(pl.col("event_time").dt.date()).len().collect(engine="streaming")
top_users = out.group_by("user_id").len().sort("len", descending=True).head(10).collect(engine="streaming")
top_companies = out.group_by("company_id").len().sort("len", descending=True).head(10).collect(engine="streaming")
rows = out.select(pl.len()).collect().item()
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "rows": rows, "top_user": int(top_users["user_id"][0]), "peak_rss": _hwm(), "imports": t - _T0,
                  "output": os.path.getsize(sys.argv[2])}))
"""

DUCKDB = """
import json, os, sys, time
import duckdb
t, c = time.perf_counter(), _cpu()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'; SET memory_limit = '1GB'")
con.execute(f'''COPY (SELECT * FROM read_csv('{sys.argv[1]}', header = true, auto_detect = false,
    columns = {{'event_id': 'BIGINT', 'event_time': 'TIMESTAMPTZ', 'user_id': 'BIGINT', 'company_id': 'BIGINT',
               'event_type': 'VARCHAR', 'properties': 'VARCHAR'}})
    QUALIFY row_number() OVER (PARTITION BY event_id) = 1) TO '{sys.argv[2]}' (FORMAT parquet)''')
src = f"read_parquet('{sys.argv[2]}')"
per_day = con.execute(f"SELECT CAST(event_time AS DATE) d, count(*) FROM {src} GROUP BY 1").fetchall()
top_users = con.execute(f"SELECT user_id, count(*) n FROM {src} GROUP BY 1 ORDER BY n DESC LIMIT 10").fetchall()
top_companies = con.execute(f"SELECT company_id, count(*) n FROM {src} GROUP BY 1 ORDER BY n DESC LIMIT 10").fetchall()
rows = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "rows": rows, "top_user": int(top_users[0][0]), "peak_rss": _hwm(), "imports": t - _T0,
                  "output": os.path.getsize(sys.argv[2])}))
"""


def one_month_schema() -> str:
    """The built-in events dataset with every event in January 2021."""
    from headwater.generate.engine import __file__ as engine_file

    text = (Path(engine_file).parent / "datasets" / "events.yaml").read_text(encoding="utf-8")
    return re.sub(r"end: 2021-07-01", "end: 2021-02-01", text)


def make_month(folder: Path, size: int) -> Path:
    from headwater.generate import GenerateOptions, generate
    from headwater.schema.loader import load_schema_text

    target = folder / "events"
    csv = target / "2021" / "01" / "events.csv"
    if csv.is_file() and abs(csv.stat().st_size - size) < size * 0.02:
        return csv
    shutil.rmtree(target, ignore_errors=True)
    schema = load_schema_text(one_month_schema(), "events-one-month.yaml")
    t = time.perf_counter()
    generate(schema, target, GenerateOptions(size=size, seed=1, workers=os.cpu_count() or 1))
    print(
        f"generated {format_bytes(csv.stat().st_size)} in {time.perf_counter() - t:.1f} s: {csv}", flush=True
    )
    return csv


def warm(path: Path) -> None:
    """Read ``path`` once, untimed, so that the next contender finds it in the page cache."""
    with path.open("rb") as fh:
        while fh.read(1 << 24):
            pass


def month_folder(project: Path) -> Path:
    """Where headwater's run publishes the month (the Parquet file and its counts)."""
    from headwater.config import load_settings
    from headwater.events import Month
    from headwater.events.pipeline import processed_uri

    return Path(processed_uri(load_settings(project, env={}), Month.parse("2021-01"))).parent


def clear(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def compile_headwater() -> None:
    """Byte-compile headwater's modules, as installing a package does. The peers come from wheels, whose
    modules pip compiled at install; an editable checkout of headwater is compiled on first import, and
    where PYTHONDONTWRITEBYTECODE is set (these machines) never cached, so each headwater run compiled
    the 19 modules it imports inside the timed region (the quality gate's: ~50 ms) and the peers did
    not. Likewise Numba compiles headwater's reader of plain lines once after an install and caches the
    machine code: that is done here too, before the rounds."""
    import compileall

    import headwater

    compileall.compile_dir(Path(headwater.__file__).parent, quiet=1)
    # Numba compiles the reader of plain lines on its first import after an install and caches it
    subprocess.run([sys.executable, "-c", "import headwater.events.plain"], check=True)


def run(name: str, code: str, args: list[str]) -> dict[str, Any]:
    """Run one contender in a fresh interpreter; wall time and peak RSS (VmHWM) from inside."""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + code, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="2GB", help="size of the month's CSV (default 2GB)")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders")
    parser.add_argument("--work", type=Path, default=None, help="folder for data (default: a temp folder)")
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="rounds of every contender, one after the other; each round's ratio is printed and the table "
        "shows each contender's median run (Polars' time alone moves by a third between runs here)",
    )
    args = parser.parse_args()
    size = parse_size(args.size)
    work = args.work or Path(tempfile.gettempdir()) / "headwater-bench-events"
    work.mkdir(parents=True, exist_ok=True)
    csv = make_month(work, size)
    nbytes = csv.stat().st_size
    project = work / "project"
    if not (project / "headwater.yaml").exists():
        from headwater.config import init_project

        init_project(project, "bench-events")
    codes = {
        "headwater": HEADWATER,
        "pandas": PANDAS,
        "polars": POLARS,
        "polars-snappy": POLARS,
        "duckdb": DUCKDB,
    }
    names = args.only.split(",")
    unknown = sorted(set(names) - set(codes))
    if unknown:
        parser.error(f"--only: no contender {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    compile_headwater()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    published = month_folder(project)
    ratios: list[str] = []
    round_ratios: list[float] = []  # headwater against the fastest peer, round by round
    for round_no in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"round {round_no} of {args.repeat}", flush=True)
        for name in names:
            out = work / f"{name}.parquet"
            argv = [str(project), str(work / "events")] if name == "headwater" else [str(csv), str(out)]
            if name.startswith("polars"):
                argv.append("snappy" if name == "polars-snappy" else "zstd")  # zstd: Polars' default
            print(f"running {name} ...", flush=True)
            # every contender writes where no output exists yet: replacing a 600 MB file costs ext4
            # about 0.1 s of freeing its blocks (headwater paid it whenever an earlier month was there)
            outputs = [published] if name == "headwater" else [out]
            clear(outputs)
            warm(csv)
            runs[name].append(run(name, codes[name], argv))
            clear(outputs)
        latest = {name: r[-1]["seconds"] for name, r in runs.items()}
        if "headwater" in latest and set(PEERS) & set(latest):
            fastest = min(latest[n] for n in PEERS if n in latest)
            round_ratios.append(fastest / latest["headwater"])
            line = (
                f"round {round_no}: headwater {latest['headwater']:.1f} s, fastest of pandas and Polars "
                f"{fastest:.1f} s: {fastest / latest['headwater']:.2f}x"
            )
            if "polars-snappy" in latest:
                snappy = latest["polars-snappy"]
                line += f"; Polars writing snappy {snappy:.1f} s: {snappy / latest['headwater']:.2f}x"
            ratios.append(line)
    results = {name: median_run(r) for name, r in runs.items()}
    if args.repeat > 1:
        print("\n" + "\n".join(ratios))
        print(f"(the table below: each contender's median run of {args.repeat})")
    print(f"\nOne month of events, {format_bytes(nbytes)} of CSV, {os.cpu_count()} cores")
    print(
        f"{'contender':<15}{'seconds':>8}{'CPU-s':>7}{'MB/s':>6}{'peak RSS':>11}{'Parquet':>11}{'rows':>12}  top user"
    )
    for name, r in results.items():
        print(
            f"{name:<15}{r['seconds']:>8.1f}{r['cpu']:>7.1f}{nbytes / 1e6 / r['seconds']:>6.0f}"
            f"{format_bytes(r['peak_rss']):>11}{format_bytes(r['output']):>11}{int(r['rows']):>12,}  {int(r['top_user'])}"
        )
    peers = [results[n]["seconds"] for n in PEERS if n in results]
    if "headwater" in results and peers:
        own = results["headwater"]["seconds"]
        print(f"\nheadwater vs the fastest of pandas and Polars: {min(peers) / own:.2f}x")
        if len(round_ratios) > 1:
            print(
                f"the same, round by round: median {statistics.median(round_ratios):.2f}x, "
                f"{min(round_ratios):.2f}x to {max(round_ratios):.2f}x, "
                f"2x or more in {sum(r >= 2 for r in round_ratios)} of {len(round_ratios)}"
            )
        if "polars-snappy" in results:
            print(
                f"headwater vs Polars writing snappy, headwater's codec: {results['polars-snappy']['seconds'] / own:.2f}x"
            )
    if all("imports" in r for r in results.values()):
        print(
            "imports before the timer (s), not counted above: "
            + ", ".join(f"{name} {r['imports']:.2f}" for name, r in results.items())
        )
        if "headwater" in results and peers:
            own = results["headwater"]["seconds"] + results["headwater"]["imports"]
            best = min(results[n]["seconds"] + results[n]["imports"] for n in PEERS if n in results)
            print(f"headwater vs the fastest of pandas and Polars, imports counted: {best / own:.2f}x")
    if "headwater" in results and "stages" in results["headwater"]:
        print(f"headwater stages (s): {results['headwater']['stages']}")
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"(this driver: {format_bytes(used)} peak RSS)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time (the faster of the two middle ones for an even count)."""
    ordered = sorted(runs, key=lambda r: float(r["seconds"]))
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    main()
