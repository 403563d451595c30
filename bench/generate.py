"""Benchmark: how fast headwater generates synthetic CSV, next to Faker, Mimesis and tpchgen-cli.

Every tool writes the same 10-column table (int id, uuid, full name, email derived from the name,
timestamp, weighted category, lognormal price with 2 decimals, int quantity, bool, 5-word text) as CSV
to a temporary folder, and the script prints rows/s and MB/s (1 MB = 10**6 bytes) for:

1. headwater, library API, with 1 and with 2 worker processes, up to ``--size`` bytes
   (schema: ``bench/schemas/bench10.yaml``);
2. Faker, one call per value in a Python row loop, written with the ``csv`` module
   (``--faker-rows`` rows; the rate extrapolates). This loop is tuned (names drawn once per row, the
   e-mail built from them, the price from ``random``): it is the peer of the 200x goal. The row
   "Faker idiomatic" is the loop most people write (``fake.name()``, ``fake.email()``,
   ``fake.pydecimal()``, ``fake.sentence()``; half as many rows), for reference;
3. Mimesis through its documented bulk path, ``Schema(schema=..., iterations=N).create()`` with
   ``Field`` lookups, and (row "Mimesis direct") through its provider methods called directly, which
   skips ``Field``'s per-call name lookup and is faster; both written with the ``csv`` module
   (``--mimesis-rows`` rows each);
4. ``tpchgen-cli csv -s 1`` (the Rust TPC-H generator) as the native reference: all eight TPC-H
   tables at scale factor 1, sized by the total bytes of the files it writes.

Timings use ``time.perf_counter`` and include writing the files (not an fsync). Each run's output is
deleted before the next. "CPU s" is the whole machine's busy time during the run (``/proc/stat``:
every process and the kernel), split into user and system time: on a virtual machine, writing through
the page cache or touching fresh memory can cost several system seconds per GB, which shows there.
The closing table gives headwater (2 workers) / tpchgen-cli and headwater (2 workers) / Faker, and
whether the goals of issue 2 are met: headwater with 2 workers at least as fast as tpchgen-cli in
MB/s, and at least 200 times Faker (the tuned loop).

Run it with ``./dev.sh bench generate`` (installs the ``bench`` extra first), or directly::

    .venv/bin/python bench/generate.py [--size 1GB] [--faker-rows 50000] [--mimesis-rows 200000]
                                       [--out DIR] [--json] [--repeat N]

This is a script, not a timed test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from headwater.generate import GenerateOptions, generate
from headwater.schema import load_schema

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "schemas" / "bench10.yaml"
SEED = 42
MB = 1_000_000
GOAL_VS_FAKER = 200.0

# The Python loops mirror bench10.yaml: same columns, same kinds of values.
HEADER = [
    "id",
    "uuid",
    "full_name",
    "email",
    "created_at",
    "category",
    "price",
    "quantity",
    "in_stock",
    "note",
]
CATEGORIES = ["books", "electronics", "clothing", "home", "garden", "toys", "sports", "grocery"]
CATEGORY_WEIGHTS = [25.0, 20.0, 15.0, 12.0, 10.0, 8.0, 6.0, 4.0]
PRICE_MU, PRICE_SIGMA = 3.0, 1.0
QUANTITY_MIN, QUANTITY_MAX = 1, 20
IN_STOCK_P = 0.8
START, END = dt.datetime(2020, 1, 1), dt.datetime(2024, 1, 1)
MAIL_DOMAINS = ["mail.example.com", "users.example.org", "post.example.net", "example.com"]

Row = list[Any]


@dataclass
class Result:
    tool: str
    rows: int
    bytes: int
    seconds: float
    note: str = ""
    cpu_user: float = 0.0
    cpu_sys: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_s": self.rows_per_s, "mb_per_s": self.mb_per_s}


# ------------------------------------------------------------------------------------------ helpers
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """``1000000``, ``500MB``, ``1GB`` (powers of 10) or ``1GiB`` (powers of 2) to bytes."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 1GB, 500MB, 1GiB or bytes")
    unit = (m.group(2) or "").lower()
    factor = 1024 ** "bkmgt".index(unit[0]) if "i" in unit else _UNITS[unit[:1]]
    value = int(float(m.group(1)) * factor)
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def positive_int(text: str) -> int:
    value = int(text.replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def fresh_dir(base: Path, name: str) -> Path:
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:,.1f}{unit}" if unit else f"{n:,.0f}"
        n /= 1000
    return f"{n:,.1f}T"


def write_csv(path: Path, rows: Iterator[Row]) -> int:
    """Write the header and ``rows`` with the csv module; return the rows written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def email_from(first: str, last: str, n: int, domain: str) -> str:
    return f"{first}.{last}{n}@{domain}".lower().replace(" ", "").replace("'", "")


# ------------------------------------------------------------------------------------------ tools
def bench_headwater(workers: int, size: int, out: Path) -> Result:
    schema = load_schema(SCHEMA_PATH)
    t0 = time.perf_counter()
    result = generate(schema, out, GenerateOptions(size=size, workers=workers, seed=SEED))
    seconds = time.perf_counter() - t0
    csv_bytes = tree_bytes(out) - sum(p.stat().st_size for p in out.glob("manifest.json"))
    return Result(
        f"headwater {workers}w",
        result.rows,
        csv_bytes,
        seconds,
        f"library API, CSV, engine-reported {result.seconds:.1f}s / {human(result.bytes)}B",
    )


def faker_rows(n: int) -> Iterator[Row]:
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(SEED)
    total = sum(CATEGORY_WEIGHTS)
    categories = OrderedDict((c, w / total) for c, w in zip(CATEGORIES, CATEGORY_WEIGHTS, strict=True))
    rnd = fake.random
    for i in range(1, n + 1):
        first, last = fake.first_name(), fake.last_name()
        yield [
            i,
            fake.uuid4(),
            f"{first} {last}",
            email_from(first, last, fake.random_int(100, 999), fake.random_element(MAIL_DOMAINS)),
            fake.date_time_between(start_date=START, end_date=END).isoformat(sep=" ", timespec="seconds"),
            fake.random_element(categories),
            f"{rnd.lognormvariate(PRICE_MU, PRICE_SIGMA):.2f}",
            fake.random_int(QUANTITY_MIN, QUANTITY_MAX),
            fake.pybool(truth_probability=int(IN_STOCK_P * 100)),
            " ".join(fake.words(nb=5)),
        ]


def faker_idiomatic_rows(n: int) -> Iterator[Row]:
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(SEED)
    for i in range(1, n + 1):
        yield [
            i,
            fake.uuid4(),
            fake.name(),
            fake.email(),
            fake.date_time_between(start_date=START, end_date=END),
            fake.random_element(CATEGORIES),
            fake.pydecimal(left_digits=5, right_digits=2, positive=True),
            fake.random_int(QUANTITY_MIN, QUANTITY_MAX),
            fake.pybool(),
            fake.sentence(nb_words=5),
        ]


def bench_faker_idiomatic(n: int, out: Path) -> Result:
    path = out / "faker-idiomatic.csv"
    t0 = time.perf_counter()
    rows = write_csv(path, faker_idiomatic_rows(n))
    seconds = time.perf_counter() - t0
    note = f"fake.name(), fake.email(), ... + csv module, {n:,} rows (reference, not the goal's peer)"
    return Result("Faker idiomatic", rows, path.stat().st_size, seconds, note)


def bench_faker(n: int, out: Path) -> Result:
    path = out / "faker.csv"
    t0 = time.perf_counter()
    rows = write_csv(path, faker_rows(n))
    seconds = time.perf_counter() - t0
    return Result("Faker", rows, path.stat().st_size, seconds, f"row loop + csv module, {n:,} rows")


def mimesis_schema() -> Callable[[int], list[dict[str, Any]]]:
    """The documented bulk path: a ``Schema`` over ``Field`` lookups, made ``iterations`` rows at a time."""
    from mimesis import Field, Locale
    from mimesis.schema import Schema

    field = Field(Locale.EN, seed=SEED)
    rnd = field.get_random_instance()

    def row() -> dict[str, Any]:
        first, last = field("person.first_name"), field("person.last_name")
        return {
            "id": field("numeric.increment"),
            "uuid": field("cryptographic.uuid"),
            "full_name": f"{first} {last}",
            "email": email_from(
                first,
                last,
                field("numeric.integer_number", start=100, end=999),
                field("choice", items=MAIL_DOMAINS),
            ),
            "created_at": field("datetime.datetime", start=START.year, end=END.year - 1).isoformat(
                sep=" ", timespec="seconds"
            ),
            "category": rnd.choices(CATEGORIES, CATEGORY_WEIGHTS)[0],
            "price": round(rnd.lognormvariate(PRICE_MU, PRICE_SIGMA), 2),
            "quantity": field("numeric.integer_number", start=QUANTITY_MIN, end=QUANTITY_MAX),
            "in_stock": rnd.random() < IN_STOCK_P,
            "note": " ".join(field("text.words", quantity=5)),
        }

    def make(n: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = Schema(schema=row, iterations=n).create()
        return rows

    return make


def mimesis_direct_rows(n: int) -> Iterator[Row]:
    """The same row from Mimesis provider methods called directly (``Generic().person.first_name()``),
    skipping ``Field``'s per-call name lookup: Mimesis's fastest path, though not its bulk API."""
    from mimesis import Generic, Locale

    gen = Generic(Locale.EN, seed=SEED)
    rnd = gen.random
    person, numeric, text = gen.person, gen.numeric, gen.text
    for i in range(1, n + 1):
        first, last = person.first_name(), person.last_name()
        yield [
            i,
            gen.cryptographic.uuid(),
            f"{first} {last}",
            email_from(first, last, numeric.integer_number(100, 999), rnd.choice(MAIL_DOMAINS)),
            gen.datetime.datetime(start=START.year, end=END.year - 1).isoformat(sep=" ", timespec="seconds"),
            rnd.choices(CATEGORIES, CATEGORY_WEIGHTS)[0],
            round(rnd.lognormvariate(PRICE_MU, PRICE_SIGMA), 2),
            numeric.integer_number(QUANTITY_MIN, QUANTITY_MAX),
            rnd.random() < IN_STOCK_P,
            " ".join(text.words(quantity=5)),
        ]


def bench_mimesis(n: int, out: Path, batch: int = 50_000) -> Result:
    import mimesis

    make = mimesis_schema()

    def rows() -> Iterator[Row]:
        done = 0
        while done < n:
            k = min(batch, n - done)
            for item in make(k):
                yield list(item.values())
            done += k

    path = out / "mimesis.csv"
    t0 = time.perf_counter()
    count = write_csv(path, rows())
    seconds = time.perf_counter() - t0
    note = f"mimesis {mimesis.__version__}: Schema(iterations={min(batch, n):,}).create() + csv module, {n:,} rows"
    return Result("Mimesis", count, path.stat().st_size, seconds, note)


def bench_mimesis_direct(n: int, out: Path) -> Result:
    path = out / "mimesis-direct.csv"
    t0 = time.perf_counter()
    count = write_csv(path, mimesis_direct_rows(n))
    seconds = time.perf_counter() - t0
    return Result(
        "Mimesis direct", count, path.stat().st_size, seconds, f"provider methods + csv module, {n:,} rows"
    )


def tpchgen_binary() -> str | None:
    local = Path(sys.executable).parent / "tpchgen-cli"
    return str(local) if local.exists() else shutil.which("tpchgen-cli")


def count_lines(root: Path) -> int:
    lines = 0
    for path in root.rglob("*.csv"):
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                lines += chunk.count(b"\n")
        lines -= 1  # header
    return lines


def bench_tpchgen(out: Path) -> Result | None:
    binary = tpchgen_binary()
    if binary is None:
        return None
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    t0 = time.perf_counter()
    subprocess.run([binary, "csv", "-s", "1", "--output-dir", str(out)], check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    size = tree_bytes(out)
    rows = count_lines(out)  # counted after timing; TPC-H text fields contain no newlines
    return Result(
        "tpchgen-cli", rows, size, seconds, f"{version or 'tpchgen-cli'} csv -s 1, 8 tables, default threads"
    )


# ------------------------------------------------------------------------------------------ report
def print_result(r: Result) -> None:
    per_row = r.bytes / r.rows if r.rows else 0.0
    print(
        f"  {r.tool:<15} {r.rows:>12,} rows {r.bytes / MB:>9,.1f} MB {r.seconds:>8.2f} s"
        f" {r.rows_per_s:>12,.0f} rows/s {r.mb_per_s:>8.2f} MB/s  ({per_row:.0f} B/row)"
        f"  CPU {r.cpu_user:.1f} user + {r.cpu_sys:.1f} sys s  {r.note}",
        flush=True,
    )


def summarise(results: list[Result]) -> dict[str, Any]:
    by = {r.tool: r for r in results}
    hw2, tpch, faker = by.get("headwater 2w"), by.get("tpchgen-cli"), by.get("Faker")
    idiomatic = by.get("Faker idiomatic")
    out: dict[str, Any] = {}
    if hw2 and tpch:
        out["hw2_vs_tpchgen_mb"] = hw2.mb_per_s / tpch.mb_per_s
        out["hw2_vs_tpchgen_rows"] = hw2.rows_per_s / tpch.rows_per_s
        out["goal_tpchgen_met"] = hw2.mb_per_s >= tpch.mb_per_s
    if hw2 and faker:
        out["hw2_vs_faker_mb"] = hw2.mb_per_s / faker.mb_per_s
        out["hw2_vs_faker_rows"] = hw2.rows_per_s / faker.rows_per_s
        out["goal_faker_met"] = (
            out["hw2_vs_faker_mb"] >= GOAL_VS_FAKER and out["hw2_vs_faker_rows"] >= GOAL_VS_FAKER
        )
    if hw2 and idiomatic:
        out["hw2_vs_faker_idiomatic_mb"] = hw2.mb_per_s / idiomatic.mb_per_s
    return out


def print_summary(results: list[Result], ratios: dict[str, Any]) -> None:
    print()
    print(
        f"{'tool':<15} {'MB/s':>10} {'rows/s':>14} {'B/row':>7} {'seconds':>9} {'CPU s user':>11} {'sys':>6}"
    )
    print("-" * 77)
    for r in results:
        per_row = r.bytes / r.rows if r.rows else 0.0
        print(
            f"{r.tool:<15} {r.mb_per_s:>10.2f} {r.rows_per_s:>14,.0f} {per_row:>7.0f} {r.seconds:>9.2f}"
            f" {r.cpu_user:>11.1f} {r.cpu_sys:>6.1f}"
        )
    print()
    if "hw2_vs_tpchgen_mb" in ratios:
        met = "MET" if ratios["goal_tpchgen_met"] else "NOT MET"
        print(
            f"headwater 2w / tpchgen-cli: {ratios['hw2_vs_tpchgen_mb']:.2f}x MB/s"
            f" ({ratios['hw2_vs_tpchgen_rows']:.2f}x rows/s; TPC-H rows differ in width)"
            f"  goal >= 1.00x MB/s: {met}"
        )
    else:
        print("headwater 2w / tpchgen-cli: not measured (tpchgen-cli not found)")
    if "hw2_vs_faker_mb" in ratios:
        met = "MET" if ratios["goal_faker_met"] else "NOT MET"
        print(
            f"headwater 2w / Faker:       {ratios['hw2_vs_faker_mb']:.0f}x MB/s, {ratios['hw2_vs_faker_rows']:.0f}x rows/s"
            f"  goal >= {GOAL_VS_FAKER:.0f}x: {met}"
        )
    if "hw2_vs_faker_idiomatic_mb" in ratios:
        print(
            f"headwater 2w / Faker idiomatic: {ratios['hw2_vs_faker_idiomatic_mb']:.0f}x MB/s"
            "  (reference: the loop most people write)"
        )


def machine_cpu() -> tuple[float, float]:
    """The machine's busy CPU seconds so far, (user + nice, system + irq + softirq), from /proc/stat
    (zeros where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice) / tick, (system + irq + softirq) / tick


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--size", type=parse_size, default=10**9, help="headwater target size (default 1GB)")
    parser.add_argument(
        "--faker-rows", type=positive_int, default=50_000, help="rows for Faker (default 50k)"
    )
    parser.add_argument(
        "--mimesis-rows", type=positive_int, default=200_000, help="rows for Mimesis (default 200k)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="scratch folder (default: a temp dir, removed)"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="rounds of every tool, one after the other (default 1); the summary gives each round's ratios "
        "and those of the median run of each tool",
    )
    args = parser.parse_args(argv)

    own_tmp = args.out is None
    base = Path(tempfile.mkdtemp(prefix="headwater-bench-")) if own_tmp else args.out
    base.mkdir(parents=True, exist_ok=True)
    print(f"bench/generate.py: 10-column CSV; {machine()}")
    print(f"scratch: {base}  (each run's files deleted before the next)", flush=True)

    steps: list[tuple[str, Callable[[Path], Result | None]]] = [
        ("headwater-1w", lambda d: bench_headwater(1, args.size, d)),
        ("headwater-2w", lambda d: bench_headwater(2, args.size, d)),
        ("tpchgen", bench_tpchgen),
        ("faker", lambda d: bench_faker(args.faker_rows, d)),
        ("faker-idiomatic", lambda d: bench_faker_idiomatic(max(1, args.faker_rows // 2), d)),
        ("mimesis", lambda d: bench_mimesis(args.mimesis_rows, d)),
        ("mimesis-direct", lambda d: bench_mimesis_direct(args.mimesis_rows, d)),
    ]
    rounds: list[list[Result]] = []
    try:
        for k in range(args.repeat):
            if args.repeat > 1:
                print(f"round {k + 1} of {args.repeat}", flush=True)
            results: list[Result] = []
            for name, step in steps:
                where = fresh_dir(base, name)
                before = machine_cpu()
                try:
                    result = step(where)
                    if result is not None:
                        after = machine_cpu()
                        result.cpu_user, result.cpu_sys = after[0] - before[0], after[1] - before[1]
                finally:
                    shutil.rmtree(where, ignore_errors=True)
                if result is None:
                    print(f"  {name:<14} skipped: not installed", flush=True)
                    continue
                results.append(result)
                print_result(result)
            rounds.append(results)
    finally:
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)

    medians = median_results(rounds)
    ratios = summarise(medians)
    if len(rounds) > 1:
        print()
        for k, results in enumerate(rounds, 1):
            each = summarise(results)
            print(
                f"round {k}: headwater 2w / tpchgen-cli {each.get('hw2_vs_tpchgen_mb', float('nan')):.2f}x MB/s, "
                f"/ Faker {each.get('hw2_vs_faker_mb', float('nan')):.0f}x MB/s"
            )
        print(f"(the table below: each tool's median run of {len(rounds)})")
    print_summary(medians, ratios)
    if args.json:
        payload = {
            "machine": machine(),
            "results": [r.as_dict() for r in medians],
            "rounds": [[r.as_dict() for r in results] for results in rounds],
            **ratios,
        }
        print(json.dumps(payload, indent=2))
    return 0


def median_results(rounds: list[list[Result]]) -> list[Result]:
    """Each tool's run with the median MB/s over the rounds (the lower middle one for an even count)."""
    tools: dict[str, list[Result]] = {}
    for results in rounds:
        for r in results:
            tools.setdefault(r.tool, []).append(r)
    return [sorted(runs, key=lambda r: r.mb_per_s)[(len(runs) - 1) // 2] for runs in tools.values()]


if __name__ == "__main__":
    sys.exit(main())
