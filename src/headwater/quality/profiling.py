"""Profile a new source: per column type, nulls, distinct values, min/max/mean/quantiles, top values,
histograms, duplicates and anomalies, plus checks the data suggests. All in DuckDB SQL aggregates:

* **pass 1**, one aggregate over every column: counts, distinct estimates, min/max/mean/std, string
  lengths; quantiles, top-value candidates and value shapes (digits -> ``9``, letters -> ``a``) from a
  random sample;
* **pass 2**, one aggregate that needs pass 1's answers: histogram bins, exact counts of the top values,
  IQR outliers, values off the dominant shape, unparsable and out-of-range dates;
* a **hashing scan** returns one 64-bit hash per row (and per key, and each column that looks unique):
  NumPy sorts them for exact counts of duplicate rows, duplicate keys and distinct values.

CSV that fits a quarter of the memory is parsed once by PyArrow and scanned in place; larger CSV is parsed
once into a temporary DuckDB table that spills to disk. Lines that do not parse are counted, not lost.
Parquet files and Arrow tables are read in place; a warehouse table in place (DuckDB file, attached
read-only) or fetched as Arrow (PostgreSQL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from headwater.errors import DataError, UsageError, WarehouseBusyError
from headwater.progress import Progress, no_progress
from headwater.quality.suggest import shape_regex, suggest_checks
from headwater.quality.targets import refuse_empty
from headwater.sqltext import quote_identifier as _q
from headwater.sqltext import sql_string as _s

if TYPE_CHECKING:
    from headwater.warehouse import Warehouse

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SHAPE_MAX_LEN = 64  # longer strings are free text: no shape
EXACT_DISTINCT_ROWS = 200_000  # up to this many rows distinct counts are exact (HyperLogLog above)
SAMPLE_ROWS = 200_000  # about this many rows feed the quantile and top-value sketches
VALUE_SAMPLE_ROWS = 50_000  # values per column sampled for top-value candidates and value shapes
SHAPE_SHARE = 0.5  # a shape this common in the sample is "dominant": values off it are anomalies
CSV_BLOCK = 16 << 20  # PyArrow CSV block: 16 MiB parsed ~1.6x faster than the 1 MiB default here
TOP_EXACT_SHARE = 0.1  # top values are counted exactly when distinct values are at most this share of rows
LOW_CARDINALITY = 50  # at most this many distinct values: count them all exactly
DATE_FLOOR = dt.datetime(1900, 1, 1)


def value_shapes(values: Sequence[str], top: int = 5) -> list[tuple[str, float]]:
    """The most common shapes (digits -> ``9``, letters -> ``a``) among ``values`` with their share;
    values longer than ``SHAPE_MAX_LEN`` (free text) have no shape and count against every share."""
    if not values:
        return []
    arr = pa.array(values, pa.string())
    short = pc.if_else(pc.less_equal(pc.utf8_length(arr), SHAPE_MAX_LEN), arr, pa.scalar(None, pa.string()))
    shaped = pc.replace_substring_regex(pc.replace_substring_regex(short, "[0-9]", "9"), "[A-Za-z]", "a")
    counts = pc.value_counts(shaped.drop_null())
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda kv: -kv[1],
    )
    return [(str(k), round(int(v) / len(values), 4)) for k, v in pairs[:top]]


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
        return "other"  # nested values: counted, not summarised
    if t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                     "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")):  # fmt: skip
        return "numeric"
    if t.startswith(("DATE", "TIMESTAMP")):
        return "temporal"
    if t.startswith("BOOL"):
        return "boolean"
    if t.startswith("VARCHAR"):
        return "string"
    return "other"


@dataclass
class ColumnProfile:
    """What one column holds. Values are JSON-friendly (dates as ISO text)."""

    name: str
    type: str
    kind: str
    count: int = 0
    nulls: int = 0
    null_pct: float = 0.0
    distinct: int = 0
    distinct_exact: bool = False
    unique: bool = False
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, Any] = field(default_factory=dict)
    top: list[tuple[Any, int]] = field(default_factory=list)
    top_exact: bool = True  # False: counts estimated from a sample (free text)
    histogram: list[tuple[Any, Any, int]] = field(default_factory=list)
    min_length: int | None = None
    max_length: int | None = None
    mean_length: float | None = None
    true_count: int | None = None
    patterns: list[tuple[str, float]] = field(default_factory=list)  # value shapes, share of a sample
    dominant_shape_count: int | None = None  # exact number of values with the first shape
    outliers: int = 0
    outlier_bounds: tuple[float, float] | None = None
    off_pattern: int = 0
    off_pattern_examples: list[str] = field(default_factory=list)
    out_of_range_dates: int = 0
    unparsable_dates: int = 0
    anomalies: list[str] = field(default_factory=list)


@dataclass
class Profile:
    """A profile of one table or file set."""

    source: str
    table: str
    rows: int
    columns: list[ColumnProfile]
    bytes: int | None = None
    duplicate_rows: int = 0
    key: list[str] = field(default_factory=list)
    duplicate_keys: int | None = None
    rejected_lines: int = 0
    elapsed: float = 0.0
    passes: int = 2
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    suggested_checks: list[dict[str, Any]] = field(default_factory=list)

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def missing_cells(self) -> int:
        return sum(c.nulls for c in self.columns)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "as_tuple"):  # Decimal
        return float(value)
    return value


# -------------------------------------------------------------------------------------------- sources
@contextlib.contextmanager
def _unraisable_kept(kept: list[BaseException]) -> Iterator[None]:
    """Keep, instead of printing, what Python reports as 'Exception ignored' meanwhile: PyArrow builds the
    row it hands to an invalid-row handler as text, and a row that is not UTF-8 fails there, outside the
    handler, with a traceback on standard error."""
    previous = sys.unraisablehook

    def keep(unraisable: Any) -> None:
        if unraisable.exc_value is not None:
            kept.append(unraisable.exc_value)

    sys.unraisablehook = keep
    try:
        yield
    finally:
        sys.unraisablehook = previous


class _Source:
    """An in-process DuckDB connection with the data under one relation name."""

    def __init__(self, threads: int | None, memory_limit: str | None, temp_dir: Path | None) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = {_s(memory_limit)}")
        if temp_dir:
            self.con.execute(f"SET temp_directory = {_s(temp_dir)}")
        self.relation = "hw_profile"
        self.rejected = 0
        self.bytes: int | None = None
        self._keep: list[Any] = []
        self._undecodable = ""  # why PyArrow could not decode a line as UTF-8, if it could not

    def arrow(self, table: pa.Table) -> None:
        self._keep.append(table)
        self.con.register(self.relation, table)

    def files(self, files: list[Path]) -> None:
        """Parquet: read in place. CSV up to a quarter of the memory: parsed once by PyArrow's multi-threaded
        reader (about 3x DuckDB's here) and scanned in place; larger CSV, or CSV whose later values break
        the types inferred from the first block: parsed once into a temporary DuckDB table, which spills
        to disk beyond memory. Either way lines that do not parse are counted, never silently lost."""
        listing = "[" + ", ".join(_s(f) for f in files) + "]"
        refuse_empty(files)
        self.bytes = sum(f.stat().st_size for f in files)
        try:
            if all(f.name.lower().endswith((".parquet", ".pq")) for f in files):
                self.con.execute(
                    f"CREATE TEMP VIEW {self.relation} AS SELECT * FROM read_parquet({listing}, union_by_name = true)"
                )
                return
            if self.bytes <= _memory_budget() and self._arrow_csv(files):
                return
            self.con.execute(
                f"CREATE TEMP TABLE {self.relation} AS SELECT * FROM read_csv({listing}, header = true, "
                "store_rejects = true, rejects_table = 'hw_rejects', rejects_scan = 'hw_reject_scans', "
                "rejects_limit = 0)"
            )
            row = self.con.execute(
                "SELECT count(*) FROM (SELECT DISTINCT file_id, line FROM hw_rejects)"
            ).fetchone()
            self.rejected = int(row[0]) if row else 0
        except duckdb.Error as exc:
            if self._undecodable:
                raise DataError(
                    f"{files[0]}: cannot read: not UTF-8 text ({self._undecodable}); "
                    "profile reads UTF-8 CSV and Parquet"
                ) from exc
            raise DataError(f"{files[0]}: cannot read: {str(exc).splitlines()[0]}") from exc

    def _arrow_csv(self, files: list[Path]) -> bool:
        """Read ``files`` with PyArrow (types from the first file); False when a value breaks those types."""
        rejected = 0

        def skip(row: pacsv.InvalidRow) -> str:
            nonlocal rejected
            rejected += 1
            return "skip"

        parse = pacsv.ParseOptions(invalid_row_handler=skip)
        tables: list[pa.Table] = []
        types: dict[str, pa.DataType] = {}
        undecodable: list[BaseException] = []
        try:
            with _unraisable_kept(undecodable):
                for f in files:
                    convert = pacsv.ConvertOptions(strings_can_be_null=True, column_types=types)
                    read = pacsv.ReadOptions(block_size=CSV_BLOCK)
                    tables.append(
                        pacsv.read_csv(f, read_options=read, parse_options=parse, convert_options=convert)
                    )
                    if not types:
                        types = {
                            fld.name: fld.type for fld in tables[0].schema if not pa.types.is_null(fld.type)
                        }
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            bad = next((e for e in undecodable if isinstance(e, UnicodeDecodeError)), None)
            self._undecodable = f"a line holds byte 0x{bad.object[bad.start]:02x}" if bad else ""
            return False
        self.rejected = rejected
        self.arrow(table)
        return True

    def estimate_rows(self) -> int:
        """Rows to size the pass-1 sample (a metadata read for Parquet and tables)."""
        row = self.con.execute(f"SELECT count(*) FROM {self.relation}").fetchone()
        return int(row[0]) if row else 0

    def duckdb_file(self, path: Path, table: str) -> None:
        try:
            self.con.execute(f"ATTACH {_s(path)} AS hw_wh (READ_ONLY)")
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():
                raise WarehouseBusyError(
                    f"{path}: another process holds the warehouse for writing; profile again when it is done"
                ) from exc
            raise DataError(f"{path}: cannot open: {str(exc).splitlines()[0]}") from exc
        self.relation = f"hw_wh.{_q(table)}"

    def query(self, sql: str) -> dict[str, Any]:
        try:
            rows = self.con.execute(sql).fetchall()
            names = [d[0] for d in self.con.description or []]
        except duckdb.Error as exc:
            raise DataError(f"profile: {str(exc).splitlines()[0]}") from exc
        return dict(zip(names, rows[0], strict=True))


def _memory_budget() -> int:
    """A quarter of the machine's memory: CSV up to this size is parsed into Arrow in memory."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 4
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def _data_files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.name.lower().endswith((".csv", ".parquet", ".pq", ".csv.gz"))
            )
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or folder")
    if not out:
        raise UsageError(f"{', '.join(map(str, paths))}: no CSV or Parquet files to profile")
    return out


# -------------------------------------------------------------------------------------------- profile
def profile(
    source: str | Path | Sequence[Path] | pa.Table,
    *,
    table: str | None = None,
    warehouse: Warehouse | None = None,
    key: Sequence[str] = (),
    top_n: int = 10,
    bins: int = 20,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_dir: Path | None = None,
    now: dt.datetime | None = None,
    progress: Progress = no_progress,
) -> Profile:
    """Profile CSV or Parquet files (a path, a folder or a list), an Arrow table, or with ``warehouse``
    the warehouse table named by ``source``. ``key`` names the columns whose duplicates are counted
    (default: the columns that turn out unique)."""
    t0 = time.perf_counter()
    src = _Source(threads, memory_limit, temp_dir)
    try:
        label = _open(src, source, warehouse)
        name = table or (
            Path(label).stem if warehouse is None and not isinstance(source, pa.Table) else label
        )
        progress("profile", 0, 3)
        types = {
            # (DuckDB quotes the type of a column without values: "NULL")
            str(r[0]): str(r[1]).strip('"')
            for r in src.con.execute(f"DESCRIBE SELECT * FROM {src.relation}").fetchall()
        }
        for k in key:
            if k not in types:
                raise UsageError(f"--key {k}: no such column; columns: {', '.join(types)}")
        cols = [ColumnProfile(name=n, type=t, kind=_kind(t)) for n, t in types.items()]
        estimate = src.estimate_rows()
        sample_p = min(1.0, SAMPLE_ROWS / max(estimate, 1))
        exact = estimate <= EXACT_DISTINCT_ROWS
        first = src.query(_pass1_sql(src.relation, cols, sample_p, exact))
        rows = int(first["n"] or 0)
        _apply_pass1(cols, first, rows, exact, top_n)
        progress("profile", 1, 3)
        second = src.query(_pass2_sql(src.relation, cols, bins, now or dt.datetime.now(dt.UTC)))
        _apply_pass2(cols, second, bins, top_n)
        distinct_rows, distinct_keys, keyed = _hash_pass(src, cols, list(key))
        progress("profile", 1, 3)
        prof = Profile(
            source=label,
            table=name,
            rows=rows,
            columns=cols,
            bytes=src.bytes,
            duplicate_rows=rows - distinct_rows,
            key=list(key) or [c.name for c in cols if c.unique][:1],
            rejected_lines=src.rejected,
        )
        if key:
            prof.duplicate_keys = keyed - distinct_keys
        elif prof.key:
            prof.duplicate_keys = 0
        for c in cols:
            c.anomalies = _anomalies(c)
        prof.suggested_checks = suggest_checks(prof)
        progress("profile", 1, 3)
        prof.elapsed = time.perf_counter() - t0
        return prof
    finally:
        src.con.close()


def _open(src: _Source, source: str | Path | Sequence[Path] | pa.Table, warehouse: Warehouse | None) -> str:
    if isinstance(source, pa.Table):
        src.arrow(source)
        return "arrow table"
    if warehouse is not None:
        name = str(source)
        path = getattr(warehouse, "path", None)
        if isinstance(path, Path):
            src.duckdb_file(path, name)
        else:
            src.arrow(warehouse.query(f"SELECT * FROM {_q(name)}"))
        return name
    paths = [Path(source)] if isinstance(source, str | Path) else [Path(p) for p in source]
    src.files(_data_files(paths))
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1})"


def _pass1_sql(rel: str, cols: list[ColumnProfile], sample_p: float, exact: bool = False) -> str:
    """Exact counts, distinct estimates, min/max/mean/std and string lengths over every row; quantiles,
    top-value candidates and value shapes over a random sample of about ``SAMPLE_ROWS`` rows (their
    exact counts come in pass 2)."""
    exprs = ["count(*) AS n"]
    qs = "[" + ", ".join(str(q) for q in QUANTILES) + "]"
    sampled = "FILTER (WHERE hw_s)"
    for i, c in enumerate(cols):
        col = _q(c.name)
        distinct = f"count(DISTINCT {col})" if exact else f"approx_count_distinct({col})"
        exprs += [f"count({col}) AS c{i}_count", f"{distinct} AS c{i}_distinct"]
        if c.kind in ("numeric", "temporal", "string"):
            exprs += [f"min({col}) AS c{i}_min", f"max({col}) AS c{i}_max"]
        if c.kind == "numeric":
            exprs += [
                f"avg(CAST({col} AS DOUBLE)) AS c{i}_mean",
                f"stddev_samp(CAST({col} AS DOUBLE)) AS c{i}_std",
                f"approx_quantile({col}, {qs}) {sampled} AS c{i}_q",
                f"list({col}) FILTER (WHERE hw_v AND {col} IS NOT NULL) AS c{i}_sample",
            ]
        elif c.kind == "temporal":
            exprs.append(f"approx_quantile({col}, {qs}) {sampled} AS c{i}_q")
        elif c.kind == "string":
            exprs += [
                f"min(hw_len{i}) AS c{i}_minlen",
                f"max(hw_len{i}) AS c{i}_maxlen",
                f"avg(hw_len{i}) AS c{i}_meanlen",
                f"list({col}) FILTER (WHERE hw_v AND {col} IS NOT NULL) AS c{i}_sample",
            ]
        elif c.kind == "boolean":
            exprs.append(f"count_if({col}) AS c{i}_true")
    value_p = sample_p * VALUE_SAMPLE_ROWS / SAMPLE_ROWS
    lengths = "".join(
        f", length({_q(c.name)}) AS hw_len{i}" for i, c in enumerate(cols) if c.kind == "string"
    )
    inner = f"(SELECT *, random() AS hw_r{lengths} FROM {rel}) AS hw_i"
    source = f"(SELECT *, hw_r < {sample_p!r} AS hw_s, hw_r < {value_p!r} AS hw_v FROM {inner}) AS hw_p"
    return f"SELECT {', '.join(exprs)} FROM {source}"


def _apply_pass1(
    cols: list[ColumnProfile], r: dict[str, Any], rows: int, exact: bool = False, top_n: int = 10
) -> None:
    for i, c in enumerate(cols):
        c.distinct_exact = exact
        c.count = int(r[f"c{i}_count"] or 0)
        c.nulls = rows - c.count
        c.null_pct = round(100.0 * c.nulls / rows, 4) if rows else 0.0
        c.distinct = min(int(r[f"c{i}_distinct"] or 0), c.count)
        c.min, c.max = r.get(f"c{i}_min"), r.get(f"c{i}_max")
        if c.kind == "numeric":
            c.mean, c.std = _float(r[f"c{i}_mean"]), _float(r[f"c{i}_std"])
        if f"c{i}_q" in r and r[f"c{i}_q"] is not None:
            c.quantiles = {f"p{round(q * 100):02d}": v for q, v in zip(QUANTILES, r[f"c{i}_q"], strict=True)}
        if c.kind == "string":
            c.min_length, c.max_length = r[f"c{i}_minlen"], r[f"c{i}_maxlen"]
            c.mean_length = _float(r[f"c{i}_meanlen"])
            c.patterns = value_shapes(r[f"c{i}_sample"] or [])
        if r.get(f"c{i}_sample"):  # candidates, counted exactly in pass 2 unless the column is free text
            c.top = _estimated_top(r[f"c{i}_sample"], c.count, top_n)
            c.top_exact = False
        if c.kind == "boolean":
            c.true_count = int(r[f"c{i}_true"] or 0)
            c.top = [(True, c.true_count), (False, c.count - c.true_count)]


def _estimated_top(sample: Sequence[Any], count: int, top: int = 10) -> list[tuple[Any, int]]:
    """The most frequent values of a sample with their counts scaled to ``count`` values."""
    counts = pc.value_counts(pa.array(sample))
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda kv: (-kv[1], str(kv[0])),
    )
    scale = count / len(sample)
    return [(v, round(n * scale)) for v, n in pairs[:top]]


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _lit(value: Any, kind: str) -> str:
    if kind == "numeric":
        return repr(float(value)) if isinstance(value, float) else str(value)
    return _s(value)


def _num(col: str, kind: str) -> str:
    """A column as a DOUBLE for binning: epoch seconds for dates and timestamps."""
    return f"epoch(CAST({col} AS TIMESTAMP))" if kind == "temporal" else f"CAST({col} AS DOUBLE)"


def _as_number(value: Any) -> float:
    if isinstance(value, dt.datetime):
        v = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return v.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    return float(value)


def _pass2_sql(rel: str, cols: list[ColumnProfile], bins: int, now: dt.datetime) -> str:
    exprs = ["count(*) AS n"]
    for i, c in enumerate(cols):
        col = _q(c.name)
        low_card = c.distinct <= LOW_CARDINALITY
        if c.kind in ("numeric", "temporal") and c.min is not None and c.max is not None:
            lo, hi = _as_number(c.min), _as_number(c.max)
            width = (hi - lo) / bins if hi > lo else 1.0
            exprs.append(
                f"histogram(least(CAST(floor(({_num(col, c.kind)} - {lo!r}) / {width!r}) AS BIGINT), {bins - 1})) "
                f"FILTER (WHERE {col} IS NOT NULL) AS c{i}_hist"
            )
        if c.kind == "numeric" and "p25" in c.quantiles and c.quantiles["p25"] is not None:
            q1, q3 = float(c.quantiles["p25"]), float(c.quantiles["p75"])
            iqr = q3 - q1
            c.outlier_bounds = (q1 - 1.5 * iqr, q3 + 1.5 * iqr)
            exprs.append(
                f"count_if(CAST({col} AS DOUBLE) < {c.outlier_bounds[0]!r} OR CAST({col} AS DOUBLE) > {c.outlier_bounds[1]!r}) AS c{i}_out"
            )
        if c.kind == "temporal":
            ceiling = (now.replace(tzinfo=None) + dt.timedelta(days=366)).isoformat(sep=" ")
            exprs.append(
                f"count_if(CAST({col} AS TIMESTAMP) < TIMESTAMP '{DATE_FLOOR:%Y-%m-%d}' OR CAST({col} AS TIMESTAMP) > TIMESTAMP '{ceiling}') AS c{i}_dates"
            )
        if (
            c.kind in ("string", "numeric")
            and (c.top or low_card)
            and c.distinct <= TOP_EXACT_SHARE * c.count
        ):
            if low_card:
                exprs.append(f"histogram({col}) AS c{i}_vals")
            else:
                values = ", ".join(_lit(v, c.kind) for v, _ in c.top)
                exprs.append(f"histogram(CASE WHEN {col} IN ({values}) THEN {col} END) AS c{i}_vals")
        if c.kind == "string" and c.patterns and c.patterns[0][1] >= SHAPE_SHARE:
            dominant = c.patterns[0][0]
            ok = f"regexp_full_match({col}, {_s(shape_regex(dominant))})"
            exprs.append(f"count_if({ok}) AS c{i}_dom")
            exprs.append(f"approx_top_k(CASE WHEN NOT {ok} THEN {col} END, 5) AS c{i}_offx")
            if _looks_temporal(dominant):
                exprs.append(
                    f"count_if({col} IS NOT NULL AND TRY_CAST({col} AS TIMESTAMP) IS NULL) AS c{i}_bad_dates"
                )
    return f"SELECT {', '.join(exprs)} FROM {rel}"


def _looks_temporal(shape: str) -> bool:
    return shape in {"9999-99-99", "9999-99-99 99:99:99", "9999-99-99T99:99:99", "9999-99-99T99:99:99a",
                     "9999-99-99 99:99:99.999", "9999-99-99T99:99:99.999999", "9999/99/99"}  # fmt: skip


def _apply_pass2(cols: list[ColumnProfile], r: dict[str, Any], bins: int, top_n: int) -> None:
    for i, c in enumerate(cols):
        hist = r.get(f"c{i}_hist")
        if hist is not None and c.min is not None:
            lo, hi = _as_number(c.min), _as_number(c.max)
            width = (hi - lo) / bins if hi > lo else 1.0
            counts = {int(k): int(v) for k, v in dict(hist).items() if k is not None}
            n_bins = bins if hi > lo else 1
            c.histogram = [
                (
                    _from_number(lo + b * width, c),
                    _from_number(lo + (b + 1) * width if hi > lo else hi, c),
                    counts.get(b, 0),
                )
                for b in range(n_bins)
            ]
        c.outliers = int(r.get(f"c{i}_out") or 0)
        c.out_of_range_dates = int(r.get(f"c{i}_dates") or 0)
        vals = r.get(f"c{i}_vals")
        if vals is not None:
            pairs = sorted(
                ((k, int(v)) for k, v in dict(vals).items() if k is not None),
                key=lambda kv: (-kv[1], str(kv[0])),
            )
            c.top = pairs[:top_n] if c.distinct > LOW_CARDINALITY else pairs
            c.top_exact = True
            if c.distinct <= LOW_CARDINALITY:
                c.distinct, c.distinct_exact = len(pairs), True
        if f"c{i}_dom" in r:
            dom = int(r[f"c{i}_dom"] or 0)
            c.dominant_shape_count = dom
            c.off_pattern = c.count - dom
            c.off_pattern_examples = [str(v) for v in (r.get(f"c{i}_offx") or []) if v is not None][:5]
        c.unparsable_dates = int(r.get(f"c{i}_bad_dates") or 0)


def _distinct(values: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    """(non-null values, distinct non-null values), exactly, by sorting: on 10^7 keys NumPy's sort takes
    about a tenth of the time of a hash set (DuckDB's count(DISTINCT) or Arrow's count_distinct) here."""
    arr = values.drop_null() if isinstance(values, pa.Array) else values.combine_chunks().drop_null()
    if len(arr) == 0:
        return 0, 0
    v = np.sort(np.asarray(arr.to_numpy(zero_copy_only=False)))
    return int(v.size), int(np.count_nonzero(v[1:] != v[:-1])) + 1


def _hash_pass(src: _Source, cols: list[ColumnProfile], key: list[str]) -> tuple[int, int, int]:
    """Exact distinct counts: of whole rows (by 64-bit row hash), of ``key``, and of each column that
    looks unique after pass 1 (no nulls, distinct estimate >= 90% of the rows). One scan returns the
    hashes (integer keys as they are); NumPy sorts them. Returns (distinct rows, distinct keys, keyed rows)."""
    exprs = [f"hash({', '.join(_q(c.name) for c in cols)}) AS hw_row"]
    if key:
        present = " AND ".join(f"{_q(k)} IS NOT NULL" for k in key)
        exprs.append(f"CASE WHEN {present} THEN hash({', '.join(_q(k) for k in key)}) END AS hw_key")
    candidates = [
        (i, c) for i, c in enumerate(cols)
        if c.kind in ("numeric", "string") and c.count and c.nulls == 0 and c.distinct >= 0.9 * c.count
        and not c.distinct_exact
    ]  # fmt: skip
    for i, c in candidates:
        integer = c.type.upper().split("(")[0] in {
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
        }
        exprs.append(f"{_q(c.name) if integer else f'hash({_q(c.name)})'} AS hw_c{i}")
    try:
        hashes = src.con.sql(f"SELECT {', '.join(exprs)} FROM {src.relation}").to_arrow_table()
    except duckdb.Error as exc:
        raise DataError(f"profile: {str(exc).splitlines()[0]}") from exc
    names = ["hw_row", *(["hw_key"] if key else []), *(f"hw_c{i}" for i, _ in candidates)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # NumPy's sort releases the GIL
        counted = dict(zip(names, pool.map(lambda n: _distinct(hashes.column(n)), names), strict=True))
    distinct_rows = counted["hw_row"][1]
    keyed, distinct_keys = counted["hw_key"] if key else (0, 0)
    for i, c in candidates:
        c.distinct = counted[f"hw_c{i}"][1]
        c.distinct_exact = True
        c.unique = c.distinct == c.count
    for c in cols:
        if c.distinct_exact and not c.unique and c.kind in ("numeric", "string"):
            c.unique = c.count > 0 and c.nulls == 0 and c.distinct == c.count
    return distinct_rows, distinct_keys, keyed


def _from_number(value: float, c: ColumnProfile) -> Any:
    if c.kind != "temporal":
        return value
    return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)


def _anomalies(c: ColumnProfile) -> list[str]:
    out = []
    if c.outliers and c.outlier_bounds:
        lo, hi = c.outlier_bounds
        out.append(f"{c.outliers} value(s) outside the IQR fences [{lo:.4g}, {hi:.4g}]")
    if c.kind == "string" and c.off_pattern and c.patterns and c.count and c.off_pattern <= 0.1 * c.count:
        ex = ", ".join(repr(v) for v in c.off_pattern_examples[:3])
        out.append(f"{c.off_pattern} value(s) off the dominant shape {c.patterns[0][0]!r} (e.g. {ex})")
    if c.unparsable_dates:
        out.append(f"{c.unparsable_dates} value(s) look like dates but do not parse")
    if c.out_of_range_dates:
        out.append(f"{c.out_of_range_dates} date(s) before {DATE_FLOOR:%Y} or more than a year ahead")
    return out
