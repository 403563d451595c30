"""Recall and precision against the generator's ``--dirty`` mode and its defects ledger.

The generator injects known defects (null_required, out_of_range, malformed_date, duplicate_key,
orphan_fk, ragged_row) and lists each in ``defects.csv``. Read the files independently of the generator
(ragged lines set aside like a parser would), run the checks a pipeline would declare, and require:
every defect of a kind the checks cover is flagged by the check for its column (recall 100%); every
flagged row is explained by a ledger defect (precision); on clean data nothing is flagged.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater.generate import GenerateOptions, generate, load_dataset
from headwater.quality import BatchTarget, Check, parse_checks, run_checks
from headwater.quality.checks import (
    CastableCheck,
    NotNullCheck,
    RangeCheck,
    RelationshipsCheck,
    UniqueCheck,
)
from headwater.quality.runner import failing_row_ids
from headwater.schema import load_schema_text

EVENT_CHECKS: list[dict[str, Any]] = [
    {"type": "not_null", "column": c} for c in ("event_id", "event_time", "user_id", "company_id", "event_type")
] + [
    {"type": "unique", "column": "event_id"},
    {"type": "castable", "column": "event_time", "to": "timestamp"},
    {"type": "relationships", "column": "user_id", "to": "users.user_id"},
    {"type": "accepted_values", "column": "event_type", "values": [
        "page_view", "click", "search", "login", "logout", "add_to_cart", "purchase", "share", "comment", "error",
    ]},
]  # fmt: skip

SALES_SCHEMA = """
tables:
  shops:
    rows: 40
    primary_key: shop_id
    columns:
      shop_id: {type: int, generator: sequence}
      name: {type: string, generator: company}
  sales:
    rows: 6000
    main: true
    primary_key: sale_id
    columns:
      sale_id: {type: int, generator: sequence}
      shop_id: {type: int, generator: foreign_key, references: shops.shop_id}
      quantity: {type: int, generator: uniform, min: 1, max: 20}
      price: {type: float, generator: normal, mean: 10, std: 2, min: 1, max: 50, decimals: 2}
      sold_at: {type: timestamp, generator: timestamp, start: 2021-01-01, end: 2021-02-01}
      channel: {type: string, generator: choice, values: [web, shop]}
"""
SALES_CHECKS: list[dict[str, Any]] = [
    {"type": "not_null", "column": c}
    for c in ("sale_id", "shop_id", "quantity", "price", "sold_at", "channel")
] + [
    {"type": "unique", "column": "sale_id"},
    {"type": "range", "column": "quantity", "min": 1, "max": 20},
    {"type": "range", "column": "price", "min": 1, "max": 50},
    {"type": "castable", "column": "sold_at", "to": "timestamp"},
    {"type": "relationships", "column": "shop_id", "to": "shops.shop_id"},
    {"type": "accepted_values", "column": "channel", "values": ["web", "shop"]},
]

KIND_OF = {
    NotNullCheck: "null_required",
    UniqueCheck: "duplicate_key",
    RangeCheck: "out_of_range",
    CastableCheck: "malformed_date",
    RelationshipsCheck: "orphan_fk",
}


def read_csvs(
    root: Path, files: list[Path], numeric: tuple[str, ...] = ()
) -> tuple[pa.Table, set[tuple[str, int]]]:
    """Rows of ``files`` as text (empty = NULL) with ``_file`` and ``_row`` (1-based data row), lines with
    the wrong number of fields set aside (returned as ragged); ``numeric`` columns cast to numbers."""
    cols: dict[str, list[Any]] = defaultdict(list)
    ragged: set[tuple[str, int]] = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            for i, row in enumerate(reader, start=1):
                if len(row) != len(header):
                    ragged.add((rel, i))
                    continue
                for name, value in zip(header, row, strict=True):
                    cols[name].append(value if value != "" else None)
                cols["_file"].append(rel)
                cols["_row"].append(i)
    table = pa.table({k: pa.array(v, pa.int64() if k == "_row" else pa.string()) for k, v in cols.items()})
    for name in numeric:
        table = table.set_column(
            table.column_names.index(name), name, pc.cast(table.column(name), pa.float64())
        )
    return table, ragged


def parent_keys(path: Path, column: str) -> pa.Table:
    """The key column of a parent table, from every line: a ragged line still names its key first (the
    generator keeps referenced columns clean), so the key exists for its children."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        assert header[0] == column
        return pa.table({column: pa.array([row[0] for row in reader if row], pa.string())})


def ledger(root: Path) -> list[tuple[str, int, str, str]]:
    with (root / "defects.csv").open() as fh:
        return [(r["file"], int(r["row"]), r["column"], r["defect"]) for r in csv.DictReader(fh)]


def flagged(target: BatchTarget, table: pa.Table, checks: list[Check]) -> dict[str, set[tuple[str, int]]]:
    """Per check: the (file, row) of every row it flags."""
    files = table.column("_file").to_numpy(zero_copy_only=False)
    rows = table.column("_row").to_numpy()
    out = {}
    for check in checks:
        ids = failing_row_ids(target, check)
        assert ids is not None
        out[check.label] = {(str(files[i]), int(rows[i])) for i in np.asarray(ids)}
    return out


def assert_recall_and_precision(
    root: Path,
    table: pa.Table,
    ragged: set[tuple[str, int]],
    files: set[str],
    checks: list[Check],
    refs: dict[str, pa.Table],
) -> dict[str, int]:
    defects = [d for d in ledger(root) if d[0] in files]
    target = BatchTarget.from_arrow(table, "t", refs=refs)
    found = flagged(target, table, checks)
    by_column = {(KIND_OF.get(type(c)), col): c.label for c in checks for col in _columns(c)}
    kinds: dict[str, int] = defaultdict(int)
    explained: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for file, row, column, kind in defects:
        kinds[kind] += 1
        if kind == "ragged_row":
            assert (file, row) in ragged  # set aside by parsing, before any check
            continue
        label = by_column[(kind, column)]
        assert (file, row) in found[label], f"missed {kind} in {column} at {file} row {row}"
        explained[label].add((file, row))
    for check in checks:
        extra = found[check.label] - explained[check.label]
        if isinstance(check, UniqueCheck):  # the other copies of a duplicated key are flagged too
            keys = _values(table, check.columns[0], explained[check.label])
            extra = {fr for fr in extra if _values(table, check.columns[0], {fr}) - keys}
        assert not extra, f"{check.label} flags rows the ledger does not list: {sorted(extra)[:5]}"
    assert ragged == {(f, r) for f, r, _, k in defects if k == "ragged_row"}
    return dict(kinds)


def _columns(check: Check) -> list[str]:
    return (
        list(check.columns)
        if isinstance(check, NotNullCheck | UniqueCheck)
        else [getattr(check, "column", "")]
    )


def _values(table: pa.Table, column: str, where: set[tuple[str, int]]) -> set[Any]:
    keys = zip(table.column("_file").to_pylist(), table.column("_row").to_pylist(), strict=True)
    mask = pa.array([k in where for k in keys])
    return set(table.filter(mask).column(column).to_pylist()) if where else set()


@pytest.fixture(scope="module")
def events_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, dirty in (("dirty", 0.03), ("clean", 0.0)):
        root = tmp_path_factory.mktemp(f"events-{name}")
        opts = GenerateOptions(
            rows=20_000, seed=11, dirty=dirty, table_rows={"users": 2000, "companies": 100}
        )
        generate(load_dataset("events"), root, opts)
        out[name] = root
    return out


def _events(root: Path) -> tuple[pa.Table, set[tuple[str, int]], set[str], dict[str, pa.Table]]:
    files = sorted(root.glob("2021/*/events.csv"))
    table, ragged = read_csvs(root, files)
    users = parent_keys(root / "users.csv", "user_id")
    return table, ragged, {f.relative_to(root).as_posix() for f in files}, {"users": users}


def test_event_checks_find_every_injected_defect_and_nothing_else(events_out: dict[str, Path]) -> None:
    root = events_out["dirty"]
    table, ragged, files, refs = _events(root)
    kinds = assert_recall_and_precision(root, table, ragged, files, parse_checks(EVENT_CHECKS), refs)
    assert set(kinds) == {"null_required", "malformed_date", "duplicate_key", "orphan_fk", "ragged_row"}
    assert sum(kinds.values()) > 300


def test_event_checks_flag_nothing_on_clean_data(events_out: dict[str, Path]) -> None:
    table, ragged, _, refs = _events(events_out["clean"])
    assert not ragged
    report = run_checks(BatchTarget.from_arrow(table, "events", refs=refs), parse_checks(EVENT_CHECKS))
    assert report.rows == 20_000
    assert [r.name for r in report.results if not r.passed] == []


@pytest.mark.parametrize("dirty", [0.04, 0.0])
def test_range_and_other_checks_on_a_schema_with_bounded_numbers(tmp_path: Path, dirty: float) -> None:
    schema = load_schema_text(SALES_SCHEMA)
    generate(schema, tmp_path, GenerateOptions(seed=5, dirty=dirty))
    table, ragged = read_csvs(tmp_path, [tmp_path / "sales.csv"], numeric=("quantity", "price"))
    shops = parent_keys(tmp_path / "shops.csv", "shop_id")
    checks = parse_checks(SALES_CHECKS)
    if dirty == 0:
        report = run_checks(BatchTarget.from_arrow(table, "sales", refs={"shops": shops}), checks)
        assert [r.name for r in report.results if not r.passed] == []
        return
    kinds = assert_recall_and_precision(tmp_path, table, ragged, {"sales.csv"}, checks, {"shops": shops})
    assert set(kinds) == {
        "null_required",
        "out_of_range",
        "malformed_date",
        "duplicate_key",
        "orphan_fk",
        "ragged_row",
    }
