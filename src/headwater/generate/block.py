"""One block of one table: its columns, revision rows, partition keys, aggregate partials and,
in dirty mode, its injected defects. Everything here depends only on (seed, table, block index)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.generate.columns import (
    BlockContext,
    ParentTable,
    arrow_type,
    generate_column,
)
from headwater.schema import model as m
from headwater.schema.loader import column_order
from headwater.schema.model import NUMERIC, TEMPORAL, ColumnType, TableSpec


class Defect(StrEnum):
    """Kinds of deliberate dirt that ``--dirty`` injects, one per affected row."""

    NULL_REQUIRED = "null_required"
    OUT_OF_RANGE = "out_of_range"
    MALFORMED_DATE = "malformed_date"
    DUPLICATE_KEY = "duplicate_key"
    ORPHAN_FK = "orphan_fk"
    RAGGED_ROW = "ragged_row"


RAGGED_COLUMN = "*"
TIME_FORMAT = {ColumnType.DATE: "%Y-%m-%d", ColumnType.TIMESTAMP: "%Y-%m-%d %H:%M:%S"}
MALFORMED = ("2021-02-30 25:61:00", "31/12/2021", "not-a-date", "2021-13-01", "20210101T", "yesterday")


@dataclass
class Block:
    """A generated block. ``clean`` holds the base rows' columns before revisions and defects
    (what other tables reference); ``defects`` rows index into ``batch``."""

    batch: pa.RecordBatch
    clean: dict[str, pa.Array]
    partition_keys: np.ndarray | None
    aggregates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    defects: list[tuple[int, str, Defect]] = field(default_factory=list)
    base_rows: int = 0
    source_rows: np.ndarray | None = None
    """For each output row, the base row it repeats (None when the table has no revisions)."""


@dataclass(frozen=True)
class AggregateTarget:
    """A parent's aggregate column fed by this (child) table."""

    parent: str
    parent_column: str
    via: str
    column: str | None
    parent_rows: int


def output_schema(spec: TableSpec, dirty: bool) -> pa.Schema:
    """The Arrow schema a table is written with: hidden columns left out; dates with a ``format``
    as text; in dirty mode every date as text, so that some can be malformed."""
    fields = []
    for name, col in spec.columns.items():
        if col.hidden:
            continue
        as_text = col.format is not None or (dirty and col.type in TEMPORAL)
        fields.append(pa.field(name, pa.string() if as_text else arrow_type(col)))
    return pa.schema(fields)


def partition_key(values: pa.Array, layout: str) -> np.ndarray:
    """yyyymmdd-style integer keys of a date/timestamp column, at the layout's finest level."""
    days = (
        pc.cast(pc.cast(values, pa.date32()), pa.int32())
        .to_numpy(zero_copy_only=False)
        .astype("datetime64[D]")
    )
    y = days.astype("datetime64[Y]").astype(np.int64) + 1970
    mth = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    if "{dd}" in layout:
        d = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
        return np.asarray(y * 10000 + mth * 100 + d)
    if "{mm}" in layout:
        return np.asarray(y * 10000 + mth * 100)
    return np.asarray(y * 10000)


def build_block(
    seed: int,
    table: str,
    spec: TableSpec,
    block: int,
    start: int,
    n: int,
    parents: dict[str, ParentTable],
    aggregate_targets: list[AggregateTarget],
    dirty: float,
    csv_format: bool,
    protected: frozenset[str] = frozenset(),
) -> Block:
    """Generate rows ``start .. start+n`` (one block) of ``table``. ``protected`` columns are read by
    other tables (foreign keys): dirty mode never nulls or duplicates them, so a defect in a parent
    never silently turns a child's valid reference into an orphan that the ledger does not list."""
    ctx = BlockContext(seed=seed, table=table, spec=spec, block=block, start=start, n=n, parents=parents)
    for name in column_order(spec):
        ctx.columns[name] = generate_column(name, spec.columns[name], ctx)
    columns = {name: ctx.columns[name] for name in spec.columns}
    base = dict(columns)
    fk_rows = dict(ctx.fk_rows)
    source_rows = None
    if spec.revisions is not None:
        columns, fk_rows, source_rows = _add_revisions(ctx, spec.revisions, columns, fk_rows)
    rows = len(next(iter(columns.values())))
    keys = None
    if spec.partition_by is not None:
        keys = partition_key(columns[spec.partition_by.column], spec.partition_by.layout)
    aggregates = {}
    for target in aggregate_targets:
        parent_rows = fk_rows[target.via]
        if target.column is None:
            weights = None
            valid = np.ones(rows, dtype=bool)
        else:
            vals = columns[target.column]
            valid = ~np.asarray(vals.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            weights = np.nan_to_num(pc.cast(vals, pa.float64()).to_numpy(zero_copy_only=False))
        sums = np.bincount(
            parent_rows, weights=None if weights is None else weights * valid, minlength=target.parent_rows
        )
        counts = np.bincount(parent_rows[valid], minlength=target.parent_rows)
        aggregates[(target.parent, target.parent_column)] = (sums.astype(np.float64), counts.astype(np.int64))
    defects: list[tuple[int, str, Defect]] = []
    if dirty > 0:
        columns, defects = _inject_defects(ctx, spec, columns, parents, dirty, csv_format, protected)
    schema = output_schema(spec, dirty > 0)
    arrays = [_as_output(columns[f.name], spec.columns[f.name], f.type) for f in schema]
    return Block(
        pa.RecordBatch.from_arrays(arrays, schema=schema), base, keys, aggregates, defects, n, source_rows
    )


def _as_output(values: pa.Array, col: m.ColumnSpec, want: pa.DataType) -> pa.Array:
    if values.type == want:
        return values
    if pa.types.is_string(want) and col.type in TEMPORAL:
        if col.timezone:
            values = values.cast(pa.timestamp("s", tz="UTC")).cast(pa.timestamp("s", tz=col.timezone))
        return pc.strftime(values, format=col.format or TIME_FORMAT[col.type])
    return values.cast(want)


def _add_revisions(
    ctx: BlockContext, rev: m.RevisionSpec, columns: dict[str, pa.Array], fk_rows: dict[str, np.ndarray]
) -> tuple[dict[str, pa.Array], dict[str, np.ndarray], np.ndarray]:
    rng = ctx.rng("#revisions")
    picked = np.flatnonzero(rng.random(ctx.n) < rev.rate)
    delay = rng.integers(1, int(m.parse_duration(rev.max_delay)) + 1, len(picked), dtype=np.int64)
    take = pa.array(picked)
    out = {}
    for name, values in columns.items():
        extra = values.take(take)
        if name == rev.column:
            col_type = ctx.spec.columns[name].type
            secs = pc.add(pc.cast(pc.cast(extra, pa.timestamp("s")), pa.int64()), pa.array(delay))
            extra = pc.cast(secs, pa.timestamp("s"))
            if col_type is ColumnType.DATE:
                extra = pc.cast(extra, pa.date32())
        out[name] = pa.concat_arrays([values, extra.cast(values.type)])
    rows = {k: np.concatenate([v, v[picked]]) for k, v in fk_rows.items()}
    return out, rows, np.concatenate([np.arange(ctx.n), picked])


def _range_of(gen: object) -> tuple[float, float] | None:
    lo = getattr(gen, "min", None)
    hi = getattr(gen, "max", None)
    if (
        isinstance(gen, m.UniformGen | m.NormalGen | m.LognormalGen | m.ZipfGen)
        and lo is not None
        and hi is not None
    ):
        return float(lo), float(hi)
    return None


def _eligible(spec: TableSpec, csv_format: bool, protected: frozenset[str]) -> dict[Defect, list[str]]:
    keys = set(spec.primary_key or []) if len(spec.primary_key or []) == 1 else set()
    out: dict[Defect, list[str]] = {kind: [] for kind in Defect}
    for name, col in spec.columns.items():
        g = col.gen
        if col.hidden or name in protected:
            continue
        if col.null_rate == 0 and not isinstance(g, m.AggregateGen):
            out[Defect.NULL_REQUIRED].append(name)
        if col.type in NUMERIC and not col.unique and not isinstance(g, m.ForeignKeyGen) and _range_of(g):
            out[Defect.OUT_OF_RANGE].append(name)
        if col.type in TEMPORAL:
            out[Defect.MALFORMED_DATE].append(name)
        if (col.unique or name in keys) and spec.revisions is None:
            out[Defect.DUPLICATE_KEY].append(name)
        if isinstance(g, m.ForeignKeyGen):
            out[Defect.ORPHAN_FK].append(name)
    if csv_format:
        out[Defect.RAGGED_ROW].append(RAGGED_COLUMN)
    return {k: v for k, v in out.items() if v}


def _inject_defects(
    ctx: BlockContext,
    spec: TableSpec,
    columns: dict[str, pa.Array],
    parents: dict[str, ParentTable],
    rate: float,
    csv_format: bool,
    protected: frozenset[str],
) -> tuple[dict[str, pa.Array], list[tuple[int, str, Defect]]]:
    rng = ctx.rng("#dirty")
    rows = len(next(iter(columns.values())))
    eligible = _eligible(spec, csv_format, protected)
    hit = np.flatnonzero(rng.random(rows) < rate)
    if not eligible or len(hit) == 0:
        return columns, []
    kinds = list(eligible)
    kind_of = rng.integers(0, len(kinds), len(hit))
    col_pick = rng.random(len(hit))
    clean_rows = np.setdiff1d(np.arange(rows), hit)
    out = dict(columns)
    temporal_text: dict[str, np.ndarray] = {}
    defects: list[tuple[int, str, Defect]] = []
    by_column: dict[tuple[Defect, str], list[int]] = {}
    for row, k, pick in zip(hit.tolist(), kind_of.tolist(), col_pick.tolist(), strict=True):
        kind = kinds[k]
        names = eligible[kind]
        name = names[int(pick * len(names))]
        defects.append((row, name, kind))
        by_column.setdefault((kind, name), []).append(row)
    # malformed dates last: they turn the column into text, which must carry the nulls set before
    for (kind, name), rows_hit in sorted(by_column.items(), key=lambda kv: kv[0][0] is Defect.MALFORMED_DATE):
        idx = np.asarray(rows_hit, dtype=np.int64)
        if kind is Defect.RAGGED_ROW:
            continue  # applied to the encoded text
        col = spec.columns[name]
        if kind is Defect.MALFORMED_DATE:
            text = temporal_text.get(name)
            if text is None:
                text = np.asarray(
                    _as_output(out[name], col, pa.string()).to_numpy(zero_copy_only=False), dtype=object
                )
                temporal_text[name] = text
            text[idx] = np.asarray(MALFORMED, dtype=object)[rng.integers(0, len(MALFORMED), len(idx))]
            continue
        values = out[name]
        mask = np.zeros(rows, dtype=bool)
        mask[idx] = True
        if kind is Defect.NULL_REQUIRED:
            replacement = pa.nulls(rows, values.type)
        elif kind is Defect.OUT_OF_RANGE:
            lo, hi = _range_of(col.gen) or (0.0, 0.0)
            bad = np.where(rng.random(rows) < 0.5, lo - (hi - lo) - 1, hi + (hi - lo) + 1)
            replacement = pa.array(np.rint(bad).astype(np.int64) if col.type is ColumnType.INT else bad).cast(
                values.type, safe=False
            )
        elif kind is Defect.DUPLICATE_KEY:
            source = (
                clean_rows[rng.integers(0, len(clean_rows), rows)]
                if len(clean_rows)
                else np.zeros(rows, np.int64)
            )
            replacement = values.take(pa.array(source))
        else:  # ORPHAN_FK
            replacement = _orphans(spec.columns[name], parents, rows, rng)
        out[name] = pc.if_else(pa.array(mask), replacement, values)
    for name, text in temporal_text.items():
        out[name] = pa.array(text, pa.string())
    defects.sort()
    return out, defects


def _orphans(
    col: m.ColumnSpec, parents: dict[str, ParentTable], n: int, rng: np.random.Generator
) -> pa.Array:
    g = col.gen
    assert isinstance(g, m.ForeignKeyGen)
    keys = parents[g.table].columns[g.column]
    if col.type is ColumnType.INT:
        top = pc.max(keys).as_py() or 0
        return pa.array(top + 1 + rng.integers(0, 1_000_000, n, dtype=np.int64))
    if col.type in NUMERIC:
        top = float(pc.max(keys).as_py() or 0)
        return pa.array(top + 1 + rng.random(n) * 1000).cast(arrow_type(col), safe=False)
    suffix = pc.cast(pa.array(rng.integers(0, 1 << 40, n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise("orphan-", suffix, "").cast(arrow_type(col))
