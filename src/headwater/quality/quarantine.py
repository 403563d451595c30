"""Quarantine: rows held back from a batch, with the reason for each, until a person releases or drops them.

Layout under the storage root (a local folder or an ``s3://``/``gs://`` URL, through the storage layer)::

    quarantine/<dataset>/<yyyy>/<mm>/<dd>/<batch_id>/<entry_id>.parquet   the rows, one entry per call
    quarantine/<dataset>/<yyyy>/<mm>/<dd>/<batch_id>/<entry_id>.raw.txt   raw lines that did not parse
    quarantine/_ledger/<dataset>/<entry_id>.json                          the entry record (write-once)
    quarantine/_ledger/<dataset>/<entry_id>.resolved.json                 release or drop (write-once)
    quarantine/_ledger/<dataset>/_releases/<release_batch>.json           a released batch (write-once)
    quarantine/_ledger/<dataset>/_releases/<release_batch>.done.json      the pipeline took it (write-once)

Every row file carries the quarantined columns plus ``_hw_reason`` (why, per row), ``_hw_check`` (which
check or step held it), and where known ``_hw_line`` (line in the source file) and ``_hw_raw`` (the raw
text of a line that did not parse). The ledger is never rewritten: an entry is *held* until exactly one
write-once resolution object says *released* or *dropped*, so two people cannot resolve it twice.

**Release** (after a fix): the entry's rows (or replacement rows the person supplies) are written as a new
batch to ``working/<dataset>/<yyyy>/<mm>/<dd>/<release_batch>/rows.parquet`` with a ``manifest.json``. A
pipeline picks released batches up with :func:`released_batches`, runs them through its checks again
(a row that still fails is quarantined again, under the release batch id) and, once loaded, calls
:func:`mark_release_done`. **Drop** deletes the entry's row files and keeps the ledger record with the
reason, who dropped it, and the sha256 of what was deleted. Nothing is deleted any other way.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from headwater.config import Settings
from headwater.errors import DataError, StorageError, UsageError, WriteOnceError
from headwater.manifest import FileRecord, Manifest
from headwater.progress import no_progress
from headwater.storage import (
    Scheme,
    Store,
    StoreOptions,
    Zone,
    build_batch_prefix,
    open_store,
    parse_location,
)

LINE_COLUMN = "_hw_line"
REASON_COLUMN = "_hw_reason"
RAW_COLUMN = "_hw_raw"
CHECK_COLUMN = "_hw_check"
CHECK_SEPARATOR = "; "  # a row held by several checks lists them all in _hw_check
INTERNAL_PREFIX = "_hw_"
LEDGER = f"{Zone.QUARANTINE}/_ledger"
TOP_REASONS = 20
RELEASE_FILE = "rows.parquet"


class EntryState(StrEnum):
    """Where a quarantine entry stands. ``held`` until released or dropped, each at most once."""

    HELD = "held"
    RELEASED = "released"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Resolution:
    """How an entry left the *held* state: by whom, when, why, and (release) into which batch."""

    action: EntryState
    at: str
    by: str
    note: str
    release_batch: str | None = None
    dropped_sha256: str | None = None


@dataclass(frozen=True)
class QuarantineEntry:
    """One set of rows held back from one batch by one call."""

    entry_id: str
    dataset: str
    batch_id: str
    source: str
    check: str | None
    reason: str
    rows: int
    bytes: int
    sha256: str
    key: str
    uri: str
    created_at: str
    columns: tuple[str, ...] = ()
    reasons: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    raw_key: str | None = None
    resolution: Resolution | None = None

    @property
    def state(self) -> EntryState:
        return self.resolution.action if self.resolution else EntryState.HELD

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuarantineEntry:
        data = {k: v for k, v in data.items() if k != "state"}
        res = data.pop("resolution", None)
        data["columns"] = tuple(data.get("columns", ()))
        entry = cls(**data)
        if res:
            res["action"] = EntryState(res["action"])
            entry = replace(entry, resolution=Resolution(**res))
        return entry


@dataclass(frozen=True)
class ReleasedBatch:
    """Rows released from quarantine as a new batch in the working zone, for the pipeline to re-run."""

    dataset: str
    batch_id: str
    entries: tuple[str, ...]
    rows: int
    key: str
    uri: str
    manifest_key: str
    released_at: str
    by: str
    note: str
    done_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> datetime:
    return datetime.now(UTC)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def store_options(settings: Settings) -> StoreOptions:
    cfg = settings.storage
    return StoreOptions(
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=cfg.allow_insecure_http,
        ca_bundle=cfg.ca_bundle,
    )


class QuarantineStore:
    """The quarantine zone of one storage root. Settings-free: build it from a root URL or path."""

    def __init__(self, root: str | Path, options: StoreOptions | None = None) -> None:
        self.location = parse_location(root)
        self.store: Store = open_store(self.location, options)

    @classmethod
    def from_settings(cls, settings: Settings) -> QuarantineStore:
        return cls(settings.storage_root, store_options(settings))

    # -- paths ----------------------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        if self.location.scheme is Scheme.FILE:
            assert self.location.path is not None
            return str(self.location.path / key)
        return f"{self.location.scheme}://{self.location.bucket}/{self.location.child(key)}"

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the root is a local folder."""
        if self.location.scheme is Scheme.FILE:
            assert self.location.path is not None
            return self.location.path / key
        return None

    # -- small JSON objects ---------------------------------------------------------------------------
    def _get_json(self, key: str) -> dict[str, Any] | None:
        if self.store.head(key) is None:
            return None
        data: dict[str, Any] = json.loads(self.store.get_bytes(key))
        return data

    def _put_json(self, key: str, data: dict[str, Any]) -> None:
        self.store.put_bytes(key, (json.dumps(data, indent=2, default=str) + "\n").encode(), write_once=True)

    def _put_table(self, key: str, table: pa.Table) -> tuple[int, str]:
        """Write ``table`` as Parquet to ``key`` (write-once); its size and sha256."""
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        data = buf.getvalue()
        if len(data) > 64 << 20:
            with tempfile.TemporaryDirectory(prefix="hw-quarantine-") as tmp:
                path = Path(tmp) / "rows.parquet"
                path.write_bytes(data)
                self.store.put_file(key, path, write_once=True, progress=no_progress, task="quarantine bytes")
        else:
            self.store.put_bytes(key, data, write_once=True)
        return len(data), hashlib.sha256(data).hexdigest()

    def read_table(self, key: str) -> pa.Table:
        path = self.local_path(key)
        if path is not None:
            if not path.is_file():
                raise StorageError(f"{path}: not found")
            return pq.read_table(path)
        return pq.read_table(io.BytesIO(self.store.get_bytes(key)))

    # -- entries --------------------------------------------------------------------------------------
    def add(
        self,
        *,
        dataset: str,
        batch_id: str,
        rows: pa.Table,
        reason: str | pa.Array | pa.ChunkedArray,
        source: str,
        check: str | None = None,
    ) -> QuarantineEntry:
        """Hold ``rows`` back. Idempotent: the same rows of the same batch and check give the same entry."""
        day = _now()
        prefix = build_batch_prefix(Zone.QUARANTINE, dataset, day.date(), batch_id)
        table = _normalise(rows, reason, check)
        digest = _content_hash(table, dataset, batch_id, source, check)
        entry_id = f"q-{digest[:16]}"
        existing = self.get(dataset, entry_id, missing_ok=True)
        if existing is not None:
            return existing
        created = day.isoformat()
        key = prefix.key(f"{entry_id}.parquet")
        raw_key: str | None = None
        size, sha = (0, "") if table.num_rows == 0 else self._put_table(key, table)
        if RAW_COLUMN in table.column_names and table.num_rows:
            raw = table.column(RAW_COLUMN).drop_null()
            if len(raw):
                raw_key = prefix.key(f"{entry_id}.raw.txt")
                text = "\n".join(str(v) for v in raw.to_pylist()) + "\n"
                self.store.put_bytes(raw_key, text.encode("utf-8", "replace"), write_once=True)
        fallback = reason if isinstance(reason, str) else "per-row reason"
        entry = QuarantineEntry(
            entry_id=entry_id,
            dataset=dataset,
            batch_id=batch_id,
            source=source,
            check=check,
            reason=fallback,
            rows=table.num_rows,
            bytes=size,
            sha256=sha,
            key=key if table.num_rows else "",
            uri=self.uri(key) if table.num_rows else "",
            created_at=created,
            columns=tuple(c for c in table.column_names if not c.startswith(INTERNAL_PREFIX)),
            reasons=_top_counts(table.column(REASON_COLUMN)),
            checks=_top_counts(
                pc.list_flatten(pc.split_pattern(table.column(CHECK_COLUMN), CHECK_SEPARATOR))
            ),
            raw_key=raw_key,
        )
        if table.num_rows == 0:
            return entry
        try:
            self._put_json(f"{LEDGER}/{dataset}/{entry_id}.json", entry.to_json())
        except WriteOnceError:  # a concurrent run recorded the same rows first
            found = self.get(dataset, entry_id)
            assert found is not None
            return found
        return entry

    def get(self, dataset: str, entry_id: str, *, missing_ok: bool = False) -> QuarantineEntry | None:
        data = self._get_json(f"{LEDGER}/{dataset}/{entry_id}.json")
        if data is None:
            if missing_ok:
                return None
            raise UsageError(
                f"quarantine entry {dataset}/{entry_id}: not found; see 'headwater quarantine list'"
            )
        entry = QuarantineEntry.from_json(data)
        res = self._get_json(f"{LEDGER}/{dataset}/{entry_id}.resolved.json")
        if res:
            res["action"] = EntryState(res["action"])
            entry = replace(entry, resolution=Resolution(**res))
        return entry

    def find(self, entry_id: str) -> QuarantineEntry:
        """An entry by id alone (ids are unique across datasets); ``dataset/id`` also accepted."""
        if "/" in entry_id:
            dataset, _, eid = entry_id.partition("/")
            found = self.get(dataset, eid)
            assert found is not None
            return found
        matches = [e for e in self.entries() if e.entry_id == entry_id or e.entry_id.startswith(entry_id)]
        if not matches:
            raise UsageError(f"quarantine entry {entry_id}: not found; see 'headwater quarantine list'")
        if len(matches) > 1:
            raise UsageError(
                f"quarantine entry {entry_id}: ambiguous prefix ({len(matches)} entries); give more"
            )
        return matches[0]

    def entries(
        self,
        dataset: str | None = None,
        *,
        batch_id: str | None = None,
        check: str | None = None,
        state: EntryState | None = None,
    ) -> list[QuarantineEntry]:
        """Every entry recorded in the ledger (oldest first), filtered."""
        prefix = f"{LEDGER}/{dataset}/" if dataset else f"{LEDGER}/"
        records: dict[tuple[str, str], dict[str, Any]] = {}
        resolved: dict[tuple[str, str], dict[str, Any]] = {}
        for info in self.store.list_keys(prefix):
            rel = info.key[len(LEDGER) + 1 :]
            ds, _, name = rel.partition("/")
            if "/" in name or not name.endswith(".json"):
                continue
            if name.endswith(".resolved.json"):
                data = json.loads(self.store.get_bytes(info.key))
                resolved[(ds, name.removesuffix(".resolved.json"))] = data
            else:
                records[(ds, name.removesuffix(".json"))] = json.loads(self.store.get_bytes(info.key))
        out = []
        for ident, data in records.items():
            entry = QuarantineEntry.from_json(data)
            if ident in resolved:
                res = resolved[ident]
                res["action"] = EntryState(res["action"])
                entry = replace(entry, resolution=Resolution(**res))
            if batch_id and entry.batch_id != batch_id:
                continue
            if check and check != entry.check and check not in entry.checks:
                continue
            if state and entry.state is not state:
                continue
            out.append(entry)
        return sorted(out, key=lambda e: (e.created_at, e.entry_id))

    def rows(self, entry: QuarantineEntry, limit: int | None = None) -> pa.Table:
        """The rows an entry holds (with their ``_hw_*`` columns); empty once dropped."""
        if entry.state is EntryState.DROPPED or not entry.key:
            return pa.table({})
        table = self.read_table(entry.key)
        return table.slice(0, limit) if limit is not None else table

    # -- resolution -----------------------------------------------------------------------------------
    def _resolve(self, entry: QuarantineEntry, resolution: Resolution) -> QuarantineEntry:
        key = f"{LEDGER}/{entry.dataset}/{entry.entry_id}.resolved.json"
        data = asdict(resolution)
        data["action"] = resolution.action.value
        try:
            self._put_json(key, data)
        except WriteOnceError as exc:
            now = self.get(entry.dataset, entry.entry_id)
            assert now is not None
            raise UsageError(
                f"quarantine entry {entry.entry_id}: already {now.state.value}"
                + (f" by {now.resolution.by} at {now.resolution.at}" if now.resolution else "")
            ) from exc
        return replace(entry, resolution=resolution)

    def release(
        self,
        entry_ids: Sequence[str],
        *,
        note: str = "",
        replacement: pa.Table | None = None,
        by: str | None = None,
    ) -> ReleasedBatch:
        """Release held entries (all of one dataset) into one new working batch. ``replacement`` stands in
        for the rows of a single entry: the fixed rows a person prepared (columns as the original)."""
        if not entry_ids:
            raise UsageError("quarantine release: name at least one entry id")
        entries = [self.find(i) for i in entry_ids]
        datasets = {e.dataset for e in entries}
        if len(datasets) > 1:
            raise UsageError(
                f"quarantine release: entries span datasets {sorted(datasets)}; release each alone"
            )
        for e in entries:
            if e.state is not EntryState.HELD:
                raise UsageError(f"quarantine entry {e.entry_id}: already {e.state.value}; nothing released")
        if replacement is not None and len(entries) != 1:
            raise UsageError("quarantine release --with: replacement rows stand in for exactly one entry")
        dataset = entries[0].dataset
        if replacement is not None:
            parts = [_with_lineage(replacement, entries[0].entry_id)]
        else:
            parts = [_with_lineage(self.rows(e), e.entry_id) for e in entries]
        table = pa.concat_tables(parts, promote_options="permissive")
        table = table.drop_columns([c for c in (REASON_COLUMN, CHECK_COLUMN) if c in table.column_names])
        when = _now()
        ident = hashlib.sha256("|".join(sorted(e.entry_id for e in entries)).encode()).hexdigest()[:12]
        batch_id = f"release-{when:%Y%m%dT%H%M%S}-{ident}"
        prefix = build_batch_prefix(Zone.WORKING, dataset, when.date(), batch_id)
        key = prefix.key(RELEASE_FILE)
        size, sha = self._put_table(key, table)
        manifest = Manifest(
            files=[FileRecord(path=RELEASE_FILE, bytes=size, sha256=sha, rows=table.num_rows, table=dataset)],
            meta={"dataset": dataset, "released_from": [e.entry_id for e in entries], "note": note},
        )
        manifest_key = prefix.key("manifest.json")
        self.store.put_bytes(manifest_key, manifest.to_json().encode(), write_once=True)
        who = by or _user()
        release = ReleasedBatch(
            dataset=dataset,
            batch_id=batch_id,
            entries=tuple(e.entry_id for e in entries),
            rows=table.num_rows,
            key=key,
            uri=self.uri(key),
            manifest_key=manifest_key,
            released_at=when.isoformat(),
            by=who,
            note=note,
        )
        for e in entries:
            self._resolve(
                e, Resolution(EntryState.RELEASED, when.isoformat(), who, note, release_batch=batch_id)
            )
        self._put_json(f"{LEDGER}/{dataset}/_releases/{batch_id}.json", release.to_json())
        return release

    def drop(self, entry_id: str, *, reason: str, by: str | None = None) -> QuarantineEntry:
        """Drop a held entry: record why (required), then delete its row files. The record stays."""
        if not reason.strip():
            raise UsageError("quarantine drop: give a reason (--reason); it is kept in the ledger")
        entry = self.find(entry_id)
        if entry.state is not EntryState.HELD:
            raise UsageError(
                f"quarantine entry {entry.entry_id}: already {entry.state.value}; nothing dropped"
            )
        resolved = self._resolve(
            entry,
            Resolution(
                EntryState.DROPPED, _now().isoformat(), by or _user(), reason, dropped_sha256=entry.sha256
            ),
        )
        for key in (entry.key, entry.raw_key):
            if key:
                self.store.delete(key)
        return resolved

    # -- released batches -----------------------------------------------------------------------------
    def released_batches(self, dataset: str, *, pending: bool = True) -> list[ReleasedBatch]:
        prefix = f"{LEDGER}/{dataset}/_releases/"
        found: dict[str, dict[str, Any]] = {}
        done: dict[str, str] = {}
        for info in self.store.list_keys(prefix):
            name = info.key[len(prefix) :]
            if name.endswith(".done.json"):
                data = json.loads(self.store.get_bytes(info.key))
                done[name.removesuffix(".done.json")] = str(data.get("at"))
            elif name.endswith(".json"):
                found[name.removesuffix(".json")] = json.loads(self.store.get_bytes(info.key))
        out = []
        for batch_id, data in found.items():
            data["entries"] = tuple(data["entries"])
            batch = ReleasedBatch(**{**data, "done_at": done.get(batch_id)})
            if pending and batch.done_at:
                continue
            out.append(batch)
        return sorted(out, key=lambda b: b.released_at)

    def mark_release_done(self, dataset: str, batch_id: str, note: str = "") -> None:
        key = f"{LEDGER}/{dataset}/_releases/{batch_id}.done.json"
        if self.store.head(f"{LEDGER}/{dataset}/_releases/{batch_id}.json") is None:
            raise UsageError(f"released batch {dataset}/{batch_id}: not found")
        try:
            self._put_json(key, {"at": _now().isoformat(), "note": note})
        except WriteOnceError:
            return  # already marked: idempotent


# -- helpers ----------------------------------------------------------------------------------------------
def _normalise(rows: pa.Table, reason: str | pa.Array | pa.ChunkedArray, check: str | None) -> pa.Table:
    """``rows`` with a non-null string ``_hw_reason`` and ``_hw_check``, ``_hw_line`` as int64."""
    n = rows.num_rows
    if isinstance(reason, str):
        fallback = pa.repeat(pa.scalar(reason, pa.string()), n)
    else:
        if len(reason) != n:
            raise DataError(f"quarantine: {len(reason)} reasons for {n} rows; give one reason per row")
        fallback = pc.cast(reason, pa.string())
        fallback = pc.fill_null(fallback, "unspecified")
    table = rows
    if REASON_COLUMN in table.column_names:
        given = pc.cast(table.column(REASON_COLUMN), pa.string())
        merged = pc.coalesce(given, fallback)
        table = table.set_column(table.column_names.index(REASON_COLUMN), REASON_COLUMN, merged)
    else:
        table = table.append_column(REASON_COLUMN, fallback)
    check_value = check or "unspecified"
    checks = pa.repeat(pa.scalar(check_value, pa.string()), n)
    if CHECK_COLUMN in table.column_names:
        merged = pc.coalesce(pc.cast(table.column(CHECK_COLUMN), pa.string()), checks)
        table = table.set_column(table.column_names.index(CHECK_COLUMN), CHECK_COLUMN, merged)
    else:
        table = table.append_column(CHECK_COLUMN, checks)
    for name, typ in ((LINE_COLUMN, pa.int64()), (RAW_COLUMN, pa.string())):
        if name in table.column_names:
            try:
                col = pc.cast(table.column(name), typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"quarantine: column {name} must be {typ}: {exc}") from exc
            table = table.set_column(table.column_names.index(name), name, col)
    return table.combine_chunks()


def _content_hash(table: pa.Table, *parts: str | None) -> str:
    h = hashlib.sha256("|".join(p or "" for p in parts).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()


def _top_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    if len(column) == 0:
        return {}
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = pc.value_counts(values)
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda kv: (-kv[1], str(kv[0])),
    )
    return {str(k): int(v) for k, v in pairs[:TOP_REASONS]}


def _with_lineage(table: pa.Table, entry_id: str) -> pa.Table:
    col = "_hw_quarantine_id"
    if col in table.column_names:
        table = table.drop_columns([col])
    return table.append_column(col, pa.repeat(pa.scalar(entry_id, pa.string()), table.num_rows))


def strip_internal(table: pa.Table) -> pa.Table:
    """``table`` without headwater's ``_hw_*`` bookkeeping columns (before loading released rows)."""
    return table.drop_columns([c for c in table.column_names if c.startswith(INTERNAL_PREFIX)])


# -- settings-level API (what pipelines, the CLI and the orchestrator call) -------------------------------
def quarantine_rows(
    settings: Settings,
    *,
    dataset: str,
    batch_id: str,
    rows: pa.Table,
    reason: str | pa.Array | pa.ChunkedArray,
    source: str,
    check: str | None = None,
) -> QuarantineEntry:
    """Hold ``rows`` of ``batch_id`` back in the project's quarantine zone and record why.

    ``rows`` may carry ``_hw_line`` (line in the source), ``_hw_reason`` (per-row reason; ``reason`` fills
    its gaps), ``_hw_check`` and ``_hw_raw`` (raw text of lines that did not parse). ``reason`` is one
    string for every row or an array with one reason per row. Calling again with the same rows returns
    the entry already recorded. An empty ``rows`` stores nothing and returns an entry with ``rows == 0``."""
    return QuarantineStore.from_settings(settings).add(
        dataset=dataset, batch_id=batch_id, rows=rows, reason=reason, source=source, check=check
    )


def list_quarantine(
    settings: Settings,
    dataset: str | None = None,
    *,
    batch_id: str | None = None,
    check: str | None = None,
    state: EntryState | None = None,
) -> list[QuarantineEntry]:
    """Entries recorded in the quarantine ledger, oldest first."""
    return QuarantineStore.from_settings(settings).entries(
        dataset, batch_id=batch_id, check=check, state=state
    )


def show_quarantine(
    settings: Settings, entry_id: str, limit: int | None = 20
) -> tuple[QuarantineEntry, pa.Table]:
    """An entry and (up to ``limit``) of its rows with their reasons."""
    qs = QuarantineStore.from_settings(settings)
    entry = qs.find(entry_id)
    return entry, qs.rows(entry, limit)


def release_quarantine(
    settings: Settings,
    entry_ids: Sequence[str],
    *,
    note: str = "",
    replacement: pa.Table | None = None,
    by: str | None = None,
) -> ReleasedBatch:
    """Release held entries into a new working batch that the pipeline checks and loads again."""
    return QuarantineStore.from_settings(settings).release(
        entry_ids, note=note, replacement=replacement, by=by
    )


def drop_quarantine(
    settings: Settings, entry_id: str, *, reason: str, by: str | None = None
) -> QuarantineEntry:
    """Delete a held entry's rows, keeping its ledger record with ``reason``."""
    return QuarantineStore.from_settings(settings).drop(entry_id, reason=reason, by=by)


def released_batches(settings: Settings, dataset: str, *, pending: bool = True) -> list[ReleasedBatch]:
    """Batches released from quarantine for ``dataset`` that the pipeline has not marked done yet
    (``pending=False``: all of them). Read each with :func:`read_released`."""
    return QuarantineStore.from_settings(settings).released_batches(dataset, pending=pending)


def read_released(settings: Settings, batch: ReleasedBatch) -> pa.Table:
    """The rows of a released batch (``_hw_line``, ``_hw_raw`` and ``_hw_quarantine_id`` kept for lineage;
    :func:`strip_internal` removes them before a load)."""
    return QuarantineStore.from_settings(settings).read_table(batch.key)


def mark_release_done(
    settings: Settings, batch: ReleasedBatch | str, *, dataset: str | None = None, note: str = ""
) -> None:
    """Record that the pipeline took a released batch (it is no longer pending). Idempotent."""
    if isinstance(batch, ReleasedBatch):
        dataset, batch_id = batch.dataset, batch.batch_id
    else:
        if dataset is None:
            raise UsageError("mark_release_done: give dataset= with a batch id")
        batch_id = batch
    QuarantineStore.from_settings(settings).mark_release_done(dataset, batch_id, note)


def summarize(entries: Iterable[QuarantineEntry]) -> list[dict[str, Any]]:
    """Counts per dataset, batch, check and state: what the CLI's list prints."""
    groups: Counter[tuple[str, str, str, str]] = Counter()
    n_entries: Counter[tuple[str, str, str, str]] = Counter()
    for e in entries:
        for chk, count in (e.checks or {e.check or "unspecified": e.rows}).items():
            ident = (e.dataset, e.batch_id, chk, e.state.value)
            groups[ident] += count
            n_entries[ident] += 1
    return [
        {"dataset": d, "batch_id": b, "check": c, "state": s, "rows": n, "entries": n_entries[(d, b, c, s)]}
        for (d, b, c, s), n in sorted(groups.items())
    ]
