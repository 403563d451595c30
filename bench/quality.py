"""Benchmark: profiling and a 10-check suite on N of ``events`` CSV (default 1 GB), headwater against
ydata-profiling (minimal mode) and a pandas-based validation of the same 10 checks (Pandera).

    ./dev.sh bench quality                       # 1 GB of events, every contender
    ./dev.sh bench quality --size 200MB          # a quick run
    ./dev.sh bench quality --only headwater      # skip the peers

Every contender starts from the same CSV files (six monthly ``YYYY/MM/events.csv`` and ``users.csv``, made by
headwater's generator) in a fresh interpreter, so its time includes reading the text and its peak RSS is its own.
Before each, the input files are read once, untimed, so that every contender finds them in the page cache (the
generator writes with direct I/O: whoever read a fresh file first would pay for the disk).

* **profile**: ``headwater.quality.profile`` (two DuckDB passes) against ``ydata_profiling.ProfileReport(df,
  minimal=True)``. ydata-profiling holds the frame in memory and is slow, so it profiles the first
  ``--sample-rows`` rows; its time (read + profile + HTML) is scaled linearly to the full row count, and the
  output says so. It pins pandas < 3 and numpy < 2.4, so it runs from its own virtualenv,
  ``.venv-bench-peers/``, which this script creates on first use (``pip install ydata-profiling``).
* **10 checks**: not_null x3, unique, accepted_values, range x2, regex, relationships (user_id -> users),
  row_count: ``headwater.quality.run_checks`` against Pandera's ``DataFrameSchema.validate(lazy=True)`` on
  the frame pandas reads with its fastest engine (pyarrow; only the five columns the checks read), the whole
  data set; once from the CSV, once from the same data as Parquet (converted once, untimed), which is what a
  pipeline's gate reads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from headwater.manifest import Manifest
from headwater.units import format_bytes, parse_size

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-bench-peers"
CONTENDERS = ("headwater", "pandera", "ydata")

PRELUDE = """
import json, sys, time
from pathlib import Path
import resource
def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
_cpu0 = _cpu()
def _hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
data = Path(sys.argv[1])
files = sorted(data.glob("2021/*/events.csv"))
"""

CHECKS = [
    {"type": "not_null", "column": "event_id"},
    {"type": "unique", "columns": ["event_id"]},
    {"type": "not_null", "column": "event_time"},
    {"type": "not_null", "column": "user_id"},
    {"type": "accepted_values", "column": "event_type",
     "values": ["page_view", "click", "search", "login", "logout", "add_to_cart", "purchase", "share", "comment", "error"]},
    {"type": "range", "column": "company_id", "min": 1, "max": 2000},
    {"type": "range", "column": "event_time", "min": "2021-01-01 00:00:00", "max": "2021-07-01 00:00:00"},
    {"type": "regex", "column": "event_type", "pattern": "[a-z_]+"},
    {"type": "relationships", "column": "user_id", "to": "users.user_id"},
    {"type": "row_count", "min": 1},
]  # fmt: skip

HEADWATER_PROFILE = """
from headwater.quality import profile
t, _cpu_t = time.perf_counter(), _cpu()
p = profile(files, table="events", temp_dir=Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "rows": p.rows, "peak_rss": _hwm(), "cpu": _cpu() - _cpu_t,
                  "note": f"{len(p.columns)} columns, {len(p.suggested_checks)} suggested checks"}))
"""

HEADWATER_CHECKS = """
from headwater.quality import BatchTarget, parse_checks, run_checks
checks = parse_checks(json.loads(sys.argv[3]))
fmt = sys.argv[4]
if fmt == "parquet":
    files, users = sorted(data.glob("parquet/2021/*/events.parquet")), data / "parquet" / "users.parquet"
else:
    users = data / "users.csv"
t, _cpu_t = time.perf_counter(), _cpu()
target = BatchTarget.from_files(files, "events", refs={"users": users})
report = run_checks(target, checks)
failed = [r.name for r in report.results if not r.passed]
print(json.dumps({"seconds": time.perf_counter() - t, "rows": report.rows, "peak_rss": _hwm(), "cpu": _cpu() - _cpu_t,
                  "note": f"{fmt}; checks {report.elapsed:.2f} s of it; failed: {failed or 'none'}"}))
"""

PANDERA_CHECKS = """
import warnings
warnings.simplefilter("ignore")
import pandas as pd
import pandera.pandas as pa
spec = {c["type"] + ":" + c.get("column", ",".join(c.get("columns", []))): c for c in json.loads(sys.argv[3])}
fmt = sys.argv[4]
needed = ["event_id", "event_time", "user_id", "company_id", "event_type"]  # only what the checks read
t, _cpu_t = time.perf_counter(), _cpu()
if fmt == "parquet":
    files = sorted(data.glob("parquet/2021/*/events.parquet"))
    df = pd.concat([pd.read_parquet(f, columns=needed) for f in files], ignore_index=True)
    users = pd.read_parquet(data / "parquet" / "users.parquet", columns=["user_id"])
else:
    df = pd.concat([pd.read_csv(f, engine="pyarrow", usecols=needed) for f in files], ignore_index=True)
    users = pd.read_csv(data / "users.csv", engine="pyarrow", usecols=["user_id"])
df["event_time"] = pd.to_datetime(df["event_time"], format="ISO8601")
t_validate = time.perf_counter()
known = set(users["user_id"].dropna())
accepted = spec["accepted_values:event_type"]["values"]
schema = pa.DataFrameSchema(
    {
        "event_id": pa.Column("int64", nullable=False, unique=True),
        "event_time": pa.Column(
            df["event_time"].dtype,
            nullable=False,
            checks=pa.Check.in_range(pd.Timestamp("2021-01-01"), pd.Timestamp("2021-07-01")),
        ),
        "user_id": pa.Column("int64", nullable=False, checks=pa.Check(lambda s: s.isin(known), element_wise=False)),
        "company_id": pa.Column("int64", nullable=True, checks=pa.Check.in_range(1, 2000)),
        "event_type": pa.Column(str, nullable=True, checks=[pa.Check.isin(accepted), pa.Check.str_matches(r"^[a-z_]+$")]),
    },
    checks=pa.Check(lambda d: len(d) >= 1),
    strict=False,
)
failed = "none"
try:
    schema.validate(df, lazy=True)
except pa.errors.SchemaErrors as exc:
    failed = str(len(exc.failure_cases))
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df), "peak_rss": _hwm(), "cpu": _cpu() - _cpu_t,
                  "note": f"{fmt}; validate {time.perf_counter() - t_validate:.1f} s of it; failure cases: {failed}"}))
"""

YDATA_PROFILE = """
import warnings
warnings.simplefilter("ignore")
import logging
logging.disable(logging.WARNING)
import pandas as pd
from ydata_profiling import ProfileReport
import ydata_profiling
sample_rows = int(sys.argv[2])
t, _cpu_t = time.perf_counter(), _cpu()
parts, left = [], sample_rows
for f in files:
    if left <= 0:
        break
    part = pd.read_csv(f, nrows=left)
    parts.append(part)
    left -= len(part)
df = pd.concat(parts, ignore_index=True)
df["event_time"] = pd.to_datetime(df["event_time"], format="ISO8601")
report = ProfileReport(df, minimal=True, progress_bar=False, title="events")
report.to_file(Path(sys.argv[3]) / "ydata-events.html")
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df), "peak_rss": _hwm(), "cpu": _cpu() - _cpu_t,
                  "note": f"ydata-profiling {ydata_profiling.__version__}, minimal=True, pandas {pd.__version__}"}))
"""


def _secs(value: float) -> str:
    """Seconds with two decimals under 10 s (checks from Parquet take a fraction of one), else one."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def make_data(folder: Path, size: int) -> Path:
    """Six months of events (``YYYY/MM/events.csv``) plus users and companies, generated once per size."""
    from headwater.generate import GenerateOptions, generate, load_dataset

    target = folder / f"events-{size}"
    if (target / "manifest.json").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    t = time.perf_counter()
    generate(load_dataset("events"), target, GenerateOptions(size=size, seed=8, workers=os.cpu_count() or 1))
    total = sum(f.stat().st_size for f in target.glob("2021/*/events.csv"))
    print(
        f"generated {format_bytes(total)} of events in {time.perf_counter() - t:.1f} s: {target}", flush=True
    )
    return target


def make_parquet(data: Path) -> None:
    """The same events and users as Parquet (zstd), once, untimed: what a pipeline's gate reads."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for csv in [*sorted(data.glob("2021/*/events.csv")), data / "users.csv"]:
        rel = csv.relative_to(data).with_suffix(".parquet")
        target = data / "parquet" / rel
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pacsv.read_csv(csv), target, compression="zstd")


def peers_python() -> Path:
    """The interpreter of ``.venv-bench-peers`` (created with ydata-profiling on first use)."""
    python = PEERS_VENV / "bin" / "python"
    probe = [str(python), "-c", "import ydata_profiling, pandas"]
    if python.is_file() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating {PEERS_VENV} with ydata-profiling (it pins pandas < 3, numpy < 2.4) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "ydata-profiling", "pyarrow"], check=True)
    return python


def run(name: str, python: Path | str, code: str, args: list[str]) -> dict[str, object]:
    """One contender in a fresh interpreter; its wall time and peak RSS (VmHWM) measured from inside."""
    print(f"running {name} ...", flush=True)
    for path in sorted(Path(args[0]).rglob("*")):  # the data folder: into the page cache, untimed
        if path.is_file() and path.suffix in (".csv", ".parquet"):
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
    proc = subprocess.run(
        [str(python), "-c", PRELUDE + code, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, object] = json.loads(last)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1GB", help="size of the events CSV (default 1GB)")
    parser.add_argument(
        "--sample-rows", type=int, default=500_000, help="rows ydata-profiling profiles (scaled)"
    )
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated: headwater,pandera,ydata"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "quality", help="data folder")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    data = make_data(args.work, parse_size(args.size))
    nbytes = sum(f.stat().st_size for f in data.glob("2021/*/events.csv"))
    tmp = args.work / "tmp"
    tmp.mkdir(exist_ok=True)
    checks = json.dumps(CHECKS)
    results: dict[tuple[str, str], dict[str, object]] = {}
    if "headwater" in only:
        results[("profile", "headwater")] = run(
            "headwater profile", sys.executable, HEADWATER_PROFILE, [str(data), str(tmp)]
        )
    for fmt in ("csv", "parquet"):
        if fmt == "parquet":
            make_parquet(data)
        task = f"checks/{fmt}"
        if "headwater" in only:
            results[(task, "headwater")] = run(
                f"headwater checks ({fmt})",
                sys.executable,
                HEADWATER_CHECKS,
                [str(data), str(tmp), checks, fmt],
            )
        if "pandera" in only:
            results[(task, "pandera")] = run(
                f"pandera ({fmt})", sys.executable, PANDERA_CHECKS, [str(data), str(tmp), checks, fmt]
            )
    if "ydata" in only:
        results[("profile", "ydata")] = run(
            "ydata-profiling", peers_python(), YDATA_PROFILE, [str(data), str(args.sample_rows), str(tmp)]
        )
    manifest = Manifest.read(data / "manifest.json")
    full_rows = sum(f.rows or 0 for f in manifest.files if f.table == "events")
    print(
        f"\nevents: {format_bytes(nbytes)} of CSV, {full_rows:,} rows, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    head = f"{'task':<16}{'tool':<11}{'rows':>12}{'seconds':>10}{'CPU s':>8}{'MB/s':>8}{'peak RSS':>11}"
    print(f"{head}{'vs headwater':>14}  note")
    for (task, who), r in sorted(results.items()):
        seconds, cpu, rows = float(str(r["seconds"])), float(str(r["cpu"])), int(str(r["rows"]))
        scale = full_rows / rows if who == "ydata" and rows and full_rows else 1.0
        mine = results.get((task, "headwater"))
        ratio = f"{seconds * scale / float(str(mine['seconds'])):.1f}x" if mine and who != "headwater" else ""
        star = "*" if scale != 1.0 else ""
        print(
            f"{task:<16}{who:<11}{rows:>12,}{f'{_secs(seconds * scale)}{star}':>10}{f'{_secs(cpu * scale)}{star}':>8}"
            f"{nbytes / 1e6 / (seconds * scale):>8.0f}{format_bytes(int(str(r['peak_rss']))):>11}{ratio:>14}  {r['note']}"
        )
    print(
        "(CPU s: user + system seconds of the contender's process, less sensitive than wall time to a busy machine)"
    )
    if ("profile", "ydata") in results:
        r = results[("profile", "ydata")]
        print(
            f"* ydata-profiling profiled the first {int(str(r['rows'])):,} rows in {float(str(r['seconds'])):.1f} s; "
            f"its time is scaled linearly to all {full_rows:,} rows."
        )


if __name__ == "__main__":
    main()
