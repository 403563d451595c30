"""Where checks run: the rows being checked and the engine that reads them.

* :class:`BatchTarget` - a batch before it is published: an Arrow table, Parquet or CSV files, read by an
  in-memory DuckDB. Rows carry a stable id (``_hw_row``) so failing rows can be quarantined exactly.
* :class:`WarehouseTarget` - a table (or one partition of it) in the warehouse, DuckDB file or PostgreSQL;
  the SQL runs inside the warehouse.
* :class:`SparkTarget` - a Spark DataFrame; the SQL is transpiled to Spark SQL and runs on the cluster.

A relationships check needs the referenced table on the same engine: a batch target takes it from
``refs`` (Arrow or files) or fetches the referenced column's distinct values from ``warehouse``; a
warehouse target reads it from the same warehouse; a Spark target from ``refs`` (DataFrames) or the
session's catalog.
"""

from __future__ import annotations

import csv
import itertools
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from headwater.errors import DataError, UsageError
from headwater.quality.sql import ROW_ID, Engine, literal, quote, transpile
from headwater.sqltext import sql_string as _sql_path

if TYPE_CHECKING:
    from headwater.warehouse import Warehouse

RefSource: TypeAlias = pa.Table | Path | Sequence[Path]
_ids = itertools.count()


class CheckTarget(Protocol):
    """What checks need from the rows they check."""

    name: str
    engine: Engine
    relation: str
    has_row_ids: bool

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` (DuckDB dialect; transpiled for the engine) and return its rows."""
        ...

    def ref_relation(self, table: str, column: str) -> str:
        """A FROM item holding ``table`` (at least ``column``) on this target's engine."""
        ...

    def close(self) -> None: ...


def _path_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(_sql_path(p) for p in paths) + "]"


class BatchTarget:
    """A batch read by an in-memory DuckDB: build with :meth:`from_arrow` or :meth:`from_files`."""

    engine = Engine.DUCKDB
    has_row_ids = True

    def __init__(
        self,
        name: str,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        *,
        refs: Mapping[str, RefSource] | None = None,
        warehouse: Warehouse | None = None,
        rows: int | None = None,
        parquet_files: Sequence[Path] | None = None,
    ) -> None:
        self.name = name
        self.parquet_files = list(parquet_files or [])  # the batch's files, when it is Parquet read in place
        self.con = con
        self.relation = relation
        self.refs = dict(refs or {})
        self.warehouse = warehouse
        self.rows = rows
        self._registered: dict[tuple[str, str], str] = {}

    @staticmethod
    def _connect(threads: int | None) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {"threads": threads} if threads else {}
        con = duckdb.connect(config=config)
        con.execute("SET enable_progress_bar = false")  # it would write to stdout (and spoil --json)
        return con

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        name: str = "batch",
        *,
        refs: Mapping[str, RefSource] | None = None,
        warehouse: Warehouse | None = None,
        threads: int | None = None,
    ) -> BatchTarget:
        """Check an Arrow table (row ``i`` gets id ``i``)."""
        if ROW_ID in table.column_names:
            table = table.drop_columns([ROW_ID])
        con = cls._connect(threads)
        con.register(
            "_hw_batch", table.append_column(ROW_ID, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        )
        return cls(name, con, "_hw_batch", refs=refs, warehouse=warehouse, rows=table.num_rows)

    @classmethod
    def from_files(
        cls,
        paths: Path | Sequence[Path],
        name: str | None = None,
        *,
        refs: Mapping[str, RefSource] | None = None,
        warehouse: Warehouse | None = None,
        csv_options: Mapping[str, Any] | None = None,
        threads: int | None = None,
    ) -> BatchTarget:
        """Check Parquet files (read in place) or CSV files (loaded once into a temp table; ``csv_options``
        are passed to DuckDB's ``read_csv``, e.g. ``{"all_varchar": True}``). Ids are stable per file row."""
        files = [paths] if isinstance(paths, Path) else list(paths)
        if not files:
            raise UsageError("nothing to check: no files given")
        for f in files:
            if not f.is_file():
                raise DataError(f"{f}: not found")
        refuse_empty(files)
        name = name or files[0].stem
        is_csv = all(
            f.suffix.lower() in (".csv", ".tsv", ".txt") or f.name.endswith(".csv.gz") for f in files
        )
        if is_csv and set(csv_options or {}) <= {"all_varchar"}:
            table = _read_csv_in_memory(files, bool((csv_options or {}).get("all_varchar")))
            if table is not None:  # the fast path: PyArrow parses ~3x faster than a DuckDB CTAS here
                return cls.from_arrow(table, name, refs=refs, warehouse=warehouse, threads=threads)
        con = cls._connect(threads)
        try:
            if all(f.suffix.lower() == ".parquet" for f in files):
                con.execute(
                    f"CREATE VIEW _hw_batch AS SELECT * EXCLUDE (filename, file_row_number), "
                    f"(list_position({_path_list(files)}, filename) - 1) * CAST(1099511627776 AS BIGINT) "
                    f"+ file_row_number AS {ROW_ID} FROM read_parquet({_path_list(files)}, filename = true, "
                    "file_row_number = true, union_by_name = true)"
                )
            elif is_csv:
                given = dict(csv_options or {})
                if (
                    "delim" not in given and "sep" not in given
                ):  # a declared delimiter: ragged lines fail loudly
                    given["delim"] = "\t" if files[0].suffix.lower() == ".tsv" else ","
                # the first line is the header and no line is skipped: left to itself, DuckDB's sniffer
                # takes the lines above the last ragged one for a preamble and drops them unsaid
                given.setdefault("header", True)
                given.setdefault("skip", 0)
                opts = "".join(f", {k} = {_option(v)}" for k, v in given.items())
                con.execute(
                    f"CREATE TEMP TABLE _hw_batch_data AS SELECT * FROM read_csv({_path_list(files)}, "
                    f"union_by_name = true{opts})"
                )
                con.execute(f"CREATE VIEW _hw_batch AS SELECT *, rowid AS {ROW_ID} FROM _hw_batch_data")
            else:
                raise UsageError(
                    f"{files[0]}: check Parquet or CSV files (one format per batch), got {', '.join(sorted({f.suffix for f in files}))}"
                )
            rows = con.execute("SELECT count(*) FROM _hw_batch").fetchall()[0]
        except duckdb.Error as exc:
            con.close()
            where = _first_ragged_line(files) if is_csv else None
            raise DataError(where or f"{files[0]}: cannot read: {str(exc).splitlines()[0]}") from exc
        parquet = files if all(f.suffix.lower() == ".parquet" for f in files) else None
        return cls(
            name, con, "_hw_batch", refs=refs, warehouse=warehouse, rows=int(rows[0]) if rows else 0,
            parquet_files=parquet,
        )  # fmt: skip

    def query(self, sql: str) -> pa.Table:
        try:
            relation = self.con.sql(sql)
            table: pa.Table = relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            raise DataError(f"{self.name}: {str(exc).strip().splitlines()[0]}") from exc
        return table

    def ref_relation(self, table: str, column: str) -> str:
        key = (table, column)
        if key in self._registered:
            return self._registered[key]
        view = f"_hw_ref_{next(_ids)}"
        source = self.refs.get(table)
        if isinstance(source, pa.Table):
            self.con.register(view, source)
        elif source is not None:
            files = [source] if isinstance(source, Path) else list(source)
            reader = "read_parquet" if files[0].suffix.lower() == ".parquet" else "read_csv"
            self.con.execute(f"CREATE VIEW {view} AS SELECT * FROM {reader}({_path_list(files)})")
        elif self.warehouse is not None:
            values = self.warehouse.query(f"SELECT DISTINCT {quote(column)} FROM {quote(table)}")
            self.con.register(view, values)
        else:
            raise UsageError(
                f"relationships check on {self.name}: table {table} is not available; pass refs= or warehouse="
            )
        self._registered[key] = view
        return view

    def close(self) -> None:
        self.con.close()


def refuse_empty(files: Sequence[Path]) -> None:
    """One error naming the first empty file: it holds no header and no Parquet footer to read."""
    for f in files:
        if f.stat().st_size == 0:
            raise DataError(f"{f}: empty file: a CSV starts with a header line, a Parquet file with PAR1")


def _first_ragged_line(files: list[Path]) -> str | None:
    """``file line N: K fields, the header has M`` for the first line whose field count differs (read only
    after DuckDB refused the files, to say where)."""
    for f in files:
        if f.name.endswith(".gz"):
            continue
        with f.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh, delimiter="\t" if f.suffix.lower() == ".tsv" else ",")
            header = next(reader, [])
            start = reader.line_num + 1  # the line the next record starts on (it may span lines)
            for row in reader:
                if row and len(row) != len(header):
                    return (
                        f"{f} line {start}: {len(row)} fields, the header has {len(header)}; "
                        "fix or remove the line (headwater quarantines such lines when a pipeline reads the file)"
                    )
                start = reader.line_num + 1
    return None


def _read_csv_in_memory(files: list[Path], all_varchar: bool) -> pa.Table | None:
    """CSV files parsed by PyArrow when they fit in a quarter of the memory; None when they do not, or
    when PyArrow refuses them (ragged lines, types that change between files): DuckDB then reads them
    and reports the problem with its line."""
    size = sum(f.stat().st_size for f in files)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 4 << 30
    if size * 3 > memory // 4:
        return None
    tables = []
    types: dict[str, pa.DataType] | None = None
    try:
        for f in files:
            convert = pacsv.ConvertOptions(strings_can_be_null=True, column_types=types or {})
            if all_varchar:
                with pacsv.open_csv(f) as reader:  # reads the first block only, for the header
                    names = reader.schema.names
                convert = pacsv.ConvertOptions(
                    strings_can_be_null=True, column_types={n: pa.string() for n in names}
                )
            table = pacsv.read_csv(f, convert_options=convert)
            types = types or {fld.name: fld.type for fld in table.schema}
            tables.append(table)
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _option(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_sql_path(k)}: {_sql_path(str(v))}" for k, v in value.items()) + "}"
    return _sql_path(str(value))


class WarehouseTarget:
    """A warehouse table, or one partition of it (``partition={"event_month": date(2021, 1, 1)}``)."""

    has_row_ids = False

    def __init__(
        self, warehouse: Warehouse, table: str, *, partition: Mapping[str, Any] | None = None
    ) -> None:
        self.warehouse = warehouse
        self.name = table
        dialect = str(getattr(warehouse, "dialect", "duckdb"))
        self.engine = Engine.POSTGRES if dialect == "postgres" else Engine.DUCKDB
        self.partition = dict(partition or {})
        if self.partition:
            cond = " AND ".join(f"{quote(k)} = {literal(v)}" for k, v in self.partition.items())
            self.relation = f"(SELECT * FROM {quote(table)} WHERE {cond}) AS _hw_p"
        else:
            self.relation = quote(table)

    def query(self, sql: str) -> pa.Table:
        return self.warehouse.query(transpile(sql, self.engine))

    def ref_relation(self, table: str, column: str) -> str:
        return quote(table)

    def close(self) -> None:
        return None


class SparkTarget:
    """A Spark DataFrame (registered as a temp view); ``refs`` maps referenced table names to DataFrames."""

    engine = Engine.SPARK
    has_row_ids = False

    def __init__(
        self, spark: Any, frame: Any, name: str = "batch", *, refs: Mapping[str, Any] | None = None
    ) -> None:
        self.spark = spark
        self.name = name
        self.relation = f"_hw_spark_{next(_ids)}"
        frame.createOrReplaceTempView(self.relation)
        self.refs: dict[str, str] = {}
        for table, df in (refs or {}).items():
            view = f"_hw_spark_ref_{next(_ids)}"
            df.createOrReplaceTempView(view)
            self.refs[table] = view

    def query(self, sql: str) -> pa.Table:
        with warnings.catch_warnings():  # PySpark warns about pandas/NumPy versions on every conversion
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            result: pa.Table = self.spark.sql(transpile(sql, Engine.SPARK)).toArrow()
        return result

    def ref_relation(self, table: str, column: str) -> str:
        return self.refs.get(table, table)

    def close(self) -> None:
        catalog = self.spark.catalog
        for view in [self.relation, *self.refs.values()]:
            catalog.dropTempView(view)
