"""Processed -> warehouse: the star schema, the quality gates in front of it, and the loads.

Star schema (dimensions merged on their natural key, each row given a surrogate key; the fact merged on
``review_id`` with its surrogate keys resolved from the dimensions)::

    dim_author (author_sk) --+                        +-- dim_user (user_sk)
                             |                        |
    dim_book (book_sk) ------+--- fact_reviews -------+-- dim_date (date_sk)
         |                        (review_id; review_text loaded when goodreads.load_review_text)
         |
    bridge_book_author
    (book_id, author_id)

Publishing one processed batch:

1. **latest wins across batches**: rows older (``record_create_timestamp``) than the warehouse's row with
   the same key are dropped (they were superseded; counted, not quarantined), so batches may load in any
   order;
2. **orphans**: reviews whose user, book or author is neither in this batch nor in the warehouse are split
   off to quarantine by a SPLIT gate (``fact_reviews_orphans``), the rest goes on;
3. **gates** (HOLD): per table, not-null and unique keys, ratings in 1..5, the row count expected from the
   working batch, plus any ``quality.checks.<table>`` of the project file. One ``error`` failure holds the
   whole batch back: nothing is loaded, its failing rows are quarantined, one alert is sent;
4. **load**: dimensions first, then the bridge and the fact, each a staged merge with its audit row (batch id
   ``goodreads/<yyyy>/<mm>/<dd>/<batch>``), so loading the same batch again changes nothing. Into a table
   that holds none of the batch's keys (a first load) the merge is a plain append: the same result
   without the merge's duplicate check and anti-join (the primary key still refuses a duplicate);
5. **after the load**: each table's audit row count equals what was sent, and no fact row lacks a
   surrogate key (referential integrity inside the warehouse).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.config import Settings
from headwater.errors import WarehouseError
from headwater.goodreads.etl_schema import DATASET
from headwater.progress import Progress, no_progress
from headwater.quality import (
    GateMode,
    GateResult,
    WarehouseTarget,
    checks_for_table,
    gate_batch,
    parse_checks,
)
from headwater.quality import run_checks as run_quality_checks
from headwater.sqltext import quote_identifier, sql_list, sql_string
from headwater.warehouse import LoadMode, LoadRequest, LoadResult, Warehouse
from headwater.warehouse.star import dimension_request, fact_request

VERSION_COLUMN = "record_create_timestamp"
LOOKUP_CHUNK = 20_000


@dataclass(frozen=True)
class StarTable:
    """A warehouse table of the star schema and the processed model it is loaded from."""

    table: str
    model: str
    key: tuple[str, ...]
    surrogate: str | None = None
    versioned: bool = False
    references: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # fact column -> (dim, key)
    not_null: tuple[str, ...] = ()

    @property
    def is_dimension(self) -> bool:
        return self.surrogate is not None


FACT = StarTable(
    "fact_reviews",
    "fact_reviews",
    ("review_id",),
    versioned=True,
    references={
        "user_id": ("dim_user", "user_id"),
        "book_id": ("dim_book", "book_id"),
        "author_id": ("dim_author", "author_id"),
    },
    not_null=("user_id", "book_id", "author_id", "date_key", "review_added_at", "review_rating"),
)
# the texts are a column of the fact, left out of its load when goodreads.load_review_text is off
TEXT_COLUMN = "review_text"
STAR: tuple[StarTable, ...] = (
    StarTable("dim_author", "dim_author", ("author_id",), "author_sk", versioned=True),
    StarTable("dim_book", "dim_book", ("book_id",), "book_sk", versioned=True),
    StarTable("dim_user", "dim_user", ("user_id",), "user_sk", versioned=True),
    StarTable("dim_date", "dim_date", ("date_key",), "date_sk"),
    StarTable("bridge_book_author", "book_authors", ("book_id", "author_id")),
    FACT,
)
ORPHANS_GATE = f"{FACT.table}_orphans"
"""The gate that splits reviews whose user, book or author is unknown off to quarantine."""
GATED_TABLES: tuple[str, ...] = (ORPHANS_GATE, *(t.table for t in STAR))
"""Every gate a batch passes before its load, in order (the Dagster asset checks, one per gate)."""
SURROGATES = {t.table: t.surrogate for t in STAR if t.surrogate}
FACT_KEYS = {"user_sk": ("dim_user", "user_id"), "book_sk": ("dim_book", "book_id"),
             "author_sk": ("dim_author", "author_id"), "date_sk": ("dim_date", "date_key")}  # fmt: skip


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def warehouse_batch_id(batch_key: str) -> str:
    """The batch id the warehouse audit records: ``goodreads/<yyyy>/<mm>/<dd>/<batch>``."""
    return f"{DATASET}/{batch_key}"


@dataclass
class TableOutcome:
    """One star table of one batch: rows in processed, dropped as superseded or orphaned, loaded."""

    table: str
    processed: int = 0
    superseded: int = 0
    orphaned: int = 0
    load: LoadResult | None = None

    @property
    def sent(self) -> int:
        return self.processed - self.superseded - self.orphaned


@dataclass
class PublishResult:
    """What publishing one processed batch did."""

    tables: dict[str, TableOutcome] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    held: bool = False
    check_seconds: float = 0.0
    load_seconds: float = 0.0
    check_cpu_seconds: float = 0.0
    load_cpu_seconds: float = 0.0

    @property
    def held_reasons(self) -> list[str]:
        return [g.summary() for g in self.gates if g.held]

    @property
    def loaded_rows(self) -> int:
        return sum(t.load.rows_in for t in self.tables.values() if t.load is not None)

    @property
    def quarantined_rows(self) -> int:
        return sum(g.quarantined_rows for g in self.gates)


def _table_exists(wh: Warehouse, table: str) -> bool:
    try:
        wh.query(f"SELECT 1 FROM {quote_identifier(table)} LIMIT 0")
    except WarehouseError:
        return False
    return True


def _lookup(wh: Warehouse, table: str, key: str, values: pa.Array, columns: Sequence[str]) -> pa.Table:
    """Rows of warehouse ``table`` whose ``key`` is among ``values`` (asked in chunks), ``columns`` only."""
    cols = ", ".join(quote_identifier(c) for c in columns)
    parts = []
    for start in range(0, len(values), LOOKUP_CHUNK):
        chunk = values.slice(start, LOOKUP_CHUNK).to_pylist()
        parts.append(
            wh.query(
                f"SELECT {cols} FROM {quote_identifier(table)} WHERE {quote_identifier(key)} IN (SELECT unnest(?))",
                [chunk],
            )
        )
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([]) for c in columns})


class Publisher:
    """Publishes one processed batch into the warehouse (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        *,
        batch_key: str,
        landing_sha256: str,
        processed: Path,
        scratch: Path,
        expected_rows: Mapping[str, int],
        load_text: bool = True,
        progress: Progress = no_progress,
    ) -> None:
        self.settings = settings
        self.load_text = load_text
        self.wh = warehouse
        self.batch_key = batch_key
        self.batch_id = warehouse_batch_id(batch_key)
        self.gate_id = batch_key.rsplit("/", 1)[-1]  # quarantine and checks history use the landing batch id
        self.landing_sha256 = landing_sha256
        self.processed = processed
        self.scratch = scratch
        self.expected_rows = dict(expected_rows)
        self.progress = progress
        self.con = duckdb.connect(config={"preserve_insertion_order": False})
        self.sources: dict[str, list[Path]] = {}
        self.result = PublishResult()
        # tables holding none of this batch's keys: a plain append equals the merge there, without the
        # merge's duplicate check and anti-join (what a first load of a large batch spends most time on)
        self.fresh: set[str] = set()

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------------------------------ helpers
    def _files(self, model: str) -> list[Path]:
        return sorted((self.processed / model).glob("*.parquet"))

    def _rows(self, files: Sequence[Path]) -> int:
        return sum(pq.read_metadata(f).num_rows for f in files)

    def _relation(self, table: str) -> str:
        return f"read_parquet({sql_list(self.sources[table])})"

    def _write(self, table: str, sql: str) -> None:
        """Replace ``table``'s source with the rows of ``sql`` (written to the scratch folder)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        target = self.scratch / f"{table}.parquet"
        tmp = self.scratch / f".{table}.tmp.parquet"
        self.con.execute(f"COPY ({sql}) TO {sql_string(tmp)} (FORMAT parquet, COMPRESSION snappy)")
        tmp.replace(target)
        self.sources[table] = [target]

    # ------------------------------------------------------------------------------------------ steps
    def drop_superseded(self, spec: StarTable) -> None:
        """Step 1: leave out rows the warehouse already holds in a newer version."""
        outcome = self.result.tables[spec.table]
        if not _table_exists(self.wh, spec.table):
            self.fresh.add(spec.table)
            return
        if not spec.versioned or outcome.processed == 0:
            return
        (key,) = spec.key
        keys = self.con.sql(
            f"SELECT {quote_identifier(key)} FROM {self._relation(spec.table)}"
        ).to_arrow_table()
        current = _lookup(self.wh, spec.table, key, keys.column(0).combine_chunks(), [key, VERSION_COLUMN])
        if current.num_rows == 0:
            self.fresh.add(spec.table)
            return
        self.con.register("_hw_current", current)
        try:
            k, v = quote_identifier(key), quote_identifier(VERSION_COLUMN)
            newer = f"EXISTS (SELECT 1 FROM _hw_current AS c WHERE c.{k} = b.{k} AND c.{v} > b.{v})"
            stale = self.con.execute(
                f"SELECT count(*) FROM {self._relation(spec.table)} AS b WHERE {newer}"
            ).fetchall()[0][0]
            if stale:
                self._write(spec.table, f"SELECT * FROM {self._relation(spec.table)} AS b WHERE NOT {newer}")
                outcome.superseded = int(stale)
        finally:
            self.con.unregister("_hw_current")

    def known_keys(self, dim: str, key: str) -> pa.Table:
        """Natural keys the fact may reference: this batch's dimension rows plus, for the keys the batch
        lacks, those the warehouse already holds."""
        fact = self._relation(FACT.table)
        batch = self._relation(dim)
        k = quote_identifier(key)
        own = self.con.sql(f"SELECT DISTINCT {k} FROM {batch}").to_arrow_table()
        missing = self.con.sql(
            f"SELECT DISTINCT f.{k} FROM {fact} AS f WHERE f.{k} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {batch} AS d WHERE d.{k} = f.{k})"
        ).to_arrow_table()
        if missing.num_rows == 0 or not _table_exists(self.wh, dim):
            return own
        found = _lookup(self.wh, dim, key, missing.column(0).combine_chunks(), [key])
        return pa.concat_tables([own, found.cast(own.schema)])

    def split_orphans(self) -> GateResult | None:
        """Step 2: reviews that reference no known user, book or author go to quarantine."""
        outcome = self.result.tables[FACT.table]
        if outcome.processed - outcome.superseded == 0:
            return None
        refs = {dim: self.known_keys(dim, key) for dim, key in FACT.references.values()}
        checks = parse_checks(
            [
                {"type": "relationships", "column": col, "to": f"{dim}.{key}"}
                for col, (dim, key) in FACT.references.items()
            ],
            "goodreads orphan checks",
        )
        clean = self.scratch / "fact_reviews.clean.parquet"
        self.scratch.mkdir(parents=True, exist_ok=True)
        gate = gate_batch(
            self.settings,
            ORPHANS_GATE,
            self.sources[FACT.table],
            dataset=DATASET,
            batch_id=self.gate_id,
            checks=checks,
            refs=refs,
            mode=GateMode.SPLIT,
            clean_path=clean,
            source=f"processed/{DATASET}/{self.batch_key}/{FACT.model}",
            warehouse=self.wh,
        )
        self.result.gates.append(gate)
        if gate.quarantined_rows:
            self.sources[FACT.table] = [clean]
            outcome.orphaned = gate.quarantined_rows
        return gate

    def checks_for(self, spec: StarTable) -> list[Any]:
        """The built-in checks of a star table, then the project's own for it."""
        items: list[dict[str, Any]] = [
            {"type": "not_null", "columns": list(spec.key) + list(spec.not_null), "name": "keys not null"},
            {"type": "unique", "columns": list(spec.key), "name": "key unique"},
        ]
        if spec is FACT:
            items.append(
                {"type": "range", "column": "review_rating", "min": 1, "max": 5, "name": "rating in 1..5"}
            )
        expected = self.expected_rows.get(spec.table)
        if expected is not None:
            outcome = self.result.tables[spec.table]
            n = expected - outcome.superseded - outcome.orphaned
            items.append({"type": "row_count", "min": n, "max": n, "name": "rows as in the working batch"})
        return parse_checks(items, f"goodreads checks for {spec.table}") + checks_for_table(
            self.settings, spec.table
        )

    def gate(self) -> bool:
        """Step 3: run every table's gate; True when all pass (nothing is loaded otherwise)."""
        passed = True
        for spec in STAR:
            if self.result.tables[spec.table].sent == 0 and spec.table not in self.expected_rows:
                continue
            gate = gate_batch(
                self.settings,
                spec.table,
                self.sources[spec.table],
                dataset=DATASET,
                batch_id=self.gate_id,
                checks=self.checks_for(spec),
                mode=GateMode.HOLD,
                alert=False,  # one alert for the whole batch, sent by the cycle
                source=f"processed/{DATASET}/{self.batch_key}/{spec.model}",
                warehouse=self.wh,
            )
            self.result.gates.append(gate)
            passed = passed and gate.publish
        return passed

    def load(self) -> None:
        """Step 4: dimensions, bridge, fact; each one transaction with its audit row."""
        for spec in STAR:
            outcome = self.result.tables[spec.table]
            if outcome.sent == 0:
                continue
            if spec is FACT and not self.load_text:  # the texts stay in processed/ (and landing)
                fact = self._relation(FACT.table)
                self._write(FACT.table, f"SELECT * EXCLUDE ({quote_identifier(TEXT_COLUMN)}) FROM {fact}")
            request = self._request(spec)
            outcome.load = self.wh.load(self.sources[spec.table], request)
            self.progress("load rows", outcome.sent)

    def _request(self, spec: StarTable) -> LoadRequest:
        if spec.surrogate is not None:
            return dimension_request(
                spec.table,
                self.batch_id,
                spec.key,
                surrogate_key=spec.surrogate,
                manifest_sha256=self.landing_sha256,
            )
        mode = LoadMode.APPEND if spec.table in self.fresh else LoadMode.MERGE
        if spec is FACT:
            return fact_request(
                spec.table,
                self.batch_id,
                {sk: (dim, [key]) for sk, (dim, key) in FACT_KEYS.items()},
                primary_key=spec.key,
                mode=mode,
                surrogate_keys=SURROGATES,
                manifest_sha256=self.landing_sha256,
            )
        return LoadRequest(
            spec.table, self.batch_id, mode, primary_key=spec.key, manifest_sha256=self.landing_sha256
        )

    def verify(self) -> list[str]:
        """Step 5: problems found after the load (empty when none)."""
        problems = []
        for spec in STAR:
            outcome = self.result.tables[spec.table]
            if outcome.load is not None and outcome.load.rows_in != outcome.sent:
                problems.append(
                    f"{spec.table}: the audit records {outcome.load.rows_in:,} rows for batch {self.batch_id}, "
                    f"{outcome.sent:,} were sent"
                )
        if _table_exists(self.wh, FACT.table):
            checks = parse_checks(
                [
                    {
                        "type": "not_null",
                        "columns": list(FACT_KEYS),
                        "name": "fact_reviews surrogate keys resolved",
                    }
                ],
                "goodreads post-load checks",
            )
            report = run_quality_checks(WarehouseTarget(self.wh, FACT.table), checks, sample_rows=5)
            problems += [f"{FACT.table}: {r.name}: {r.message}" for r in report.failed_errors]
        return problems

    def run(self) -> PublishResult:
        for spec in STAR:
            self.sources[spec.table] = self._files(spec.model)
            self.result.tables[spec.table] = TableOutcome(spec.table, self._rows(self.sources[spec.table]))
        t0, c0 = time.perf_counter(), _cpu()
        for spec in STAR:
            self.drop_superseded(spec)
        self.split_orphans()
        passed = self.gate()
        self.result.check_seconds = time.perf_counter() - t0
        self.result.check_cpu_seconds = _cpu() - c0
        if not passed:
            self.result.held = True
            return self.result
        t1, c1 = time.perf_counter(), _cpu()
        self.load()
        problems = self.verify()
        self.result.load_seconds = time.perf_counter() - t1
        self.result.load_cpu_seconds = _cpu() - c1
        if problems:
            raise WarehouseError(
                f"batch {self.batch_id} loaded but failed its post-load checks: {'; '.join(problems)}"
            )
        return self.result


def publish_batch(
    settings: Settings,
    warehouse: Warehouse,
    *,
    batch_key: str,
    landing_sha256: str,
    processed: Path,
    scratch: Path,
    expected_rows: Mapping[str, int],
    load_text: bool = True,
    progress: Progress = no_progress,
) -> PublishResult:
    """Gate and load one processed batch (see the module doc). ``expected_rows`` maps star tables to the
    row counts the working batch implies (distinct keys), checked by the gates."""
    publisher = Publisher(
        settings,
        warehouse,
        batch_key=batch_key,
        landing_sha256=landing_sha256,
        processed=processed,
        scratch=scratch,
        expected_rows=expected_rows,
        load_text=load_text,
        progress=progress,
    )
    try:
        return publisher.run()
    finally:
        publisher.close()
