"""Dirty mode: the defects ledger lists exactly the defects present in the files."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from headwater.generate import GenerateOptions, GenerateResult, generate, load_dataset


@pytest.fixture(scope="module")
def dirty_events(tmp_path_factory: pytest.TempPathFactory) -> GenerateResult:
    out = tmp_path_factory.mktemp("dirty")
    opts = GenerateOptions(rows=60_000, dirty=0.02, seed=5, table_rows={"users": 3000, "companies": 200})
    return generate(load_dataset("events"), out, opts)


def _ledger(out: Path) -> dict[tuple[str, int], tuple[str, str]]:
    with (out / "defects.csv").open() as fh:
        return {(r["file"], int(r["row"])): (r["column"], r["defect"]) for r in csv.DictReader(fh)}


def _parse_time(text: str) -> bool:
    try:
        dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _defects_found(
    path: Path, rel: str, keys: set[str], users: set[str], ncols: int
) -> dict[tuple[str, int], tuple[str, str]]:
    """Check every row of an events file independently of the generator; return what is wrong."""
    found: dict[tuple[str, int], tuple[str, str]] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for i, row in enumerate(reader, start=1):
            if len(row) != ncols:
                found[(rel, i)] = ("*", "ragged_row")
                continue
            rec = dict(zip(header, row, strict=True))
            for col in ("event_id", "event_time", "user_id", "company_id", "event_type"):
                if rec[col] == "":
                    found[(rel, i)] = (col, "null_required")
            if rec["event_time"] and not _parse_time(rec["event_time"]):
                found[(rel, i)] = ("event_time", "malformed_date")
            if rec["user_id"] and rec["user_id"] not in users:
                found[(rel, i)] = ("user_id", "orphan_fk")
            if rec["event_id"]:
                if rec["event_id"] in keys:
                    found[(rel, i)] = ("event_id", "duplicate_key")
                keys.add(rec["event_id"])
    return found


def test_ledger_matches_the_defects_present(dirty_events: GenerateResult) -> None:
    out = dirty_events.out
    ledger = {k: v for k, v in _ledger(out).items() if k[0].startswith("2021/")}
    with (out / "users.csv").open() as fh:
        users = {r["user_id"] for r in csv.DictReader(fh) if r["user_id"]}
    found: dict[tuple[str, int], tuple[str, str]] = {}
    keys: set[str] = set()
    for path in sorted(out.glob("2021/*/events.csv")):
        found |= _defects_found(path, path.relative_to(out).as_posix(), keys, users, ncols=6)
    # duplicates: the checker flags the later copy; the ledger flags the row whose key was replaced
    # (which may come first in file order), so compare duplicate keys by count and the rest exactly
    dup_ledger = {k for k, v in ledger.items() if v[1] == "duplicate_key"}
    dup_found = {k for k, v in found.items() if v[1] == "duplicate_key"}
    assert len(dup_found) == len(dup_ledger) > 0
    rest_ledger = {k: v for k, v in ledger.items() if v[1] != "duplicate_key"}
    rest_found = {k: v for k, v in found.items() if v[1] != "duplicate_key" and k not in dup_ledger}
    assert rest_found == rest_ledger
    kinds = Counter(v[1] for v in ledger.values())
    assert set(kinds) == {"null_required", "malformed_date", "duplicate_key", "orphan_fk", "ragged_row"}
    share = len(ledger) / sum(f.rows or 0 for f in dirty_events.manifest.files if f.table == "events")
    assert 0.015 < share < 0.025


def test_clean_run_has_no_ledger_and_no_defects(events_small: GenerateResult) -> None:
    out = events_small.out
    assert not (out / "defects.csv").exists()
    with (out / "users.csv").open() as fh:
        users = {r["user_id"] for r in csv.DictReader(fh)}
    keys: set[str] = set()
    for path in sorted(out.glob("2021/*/events.csv")):
        assert _defects_found(path, path.name, keys, users, ncols=6) == {}


def test_out_of_range_defects_in_dimension_tables(tmp_path: Path) -> None:
    opts = GenerateOptions(rows=1000, dirty=0.2, seed=2, table_rows={"author": 400, "book": 400, "user": 400})
    result = generate(load_dataset("goodreads"), tmp_path, opts)
    ledger = _ledger(result.out)
    out_of_range = [(f, r, c) for (f, r), (c, d) in ledger.items() if d == "out_of_range"]
    assert out_of_range
    rows = {}
    for name in {f for f, _, _ in out_of_range}:
        with (result.out / name).open(newline="") as fh:
            rows[name] = list(csv.DictReader(fh))
    for f, r, c in out_of_range:
        value = float(rows[f][r - 1][c])
        bounds = {"average_rating": (1, 5), "num_pages": (12, 2400), "publication_year": (1950, 2020)}.get(c)
        if bounds is not None:
            assert not bounds[0] <= value <= bounds[1], (f, r, c, value)
