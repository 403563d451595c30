"""Backup and restore: every table to Parquet under a snapshot folder with a manifest (rows,
bytes, sha256, column types, primary keys); restore verifies the files and recreates the tables
in one transaction. A snapshot taken from one backend restores into the other."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from headwater.errors import IntegrityError, WarehouseError
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest, sha256_file
from headwater.progress import Progress, no_progress
from headwater.warehouse.audit import KEYS_TABLE
from headwater.warehouse.base import TableData, Warehouse
from headwater.warehouse.types import parse_sql_type

SNAPSHOT_KIND = "warehouse-snapshot"


@dataclass(frozen=True)
class SnapshotSummary:
    folder: Path
    tables: dict[str, int]  # name -> rows
    bytes: int
    seconds: float


def backup_warehouse(warehouse: Warehouse, dest: Path, progress: Progress = no_progress) -> SnapshotSummary:
    """Write every table (the warehouse's own audit and history tables too; each table's primary key
    goes into the manifest) under
    ``dest/snapshot-<UTC time>/``; the manifest is written last, so a snapshot without one is incomplete."""
    started = dt.datetime.now(dt.UTC)
    folder = dest / f"snapshot-{started:%Y%m%dT%H%M%S%fZ}"
    if folder.exists():
        raise WarehouseError(f"{folder}: already exists; choose another destination")
    infos = {t.name: t for t in warehouse.tables(include_internal=True) if t.name != KEYS_TABLE}
    exported = warehouse.export_tables(list(infos), folder / "tables")
    manifest = Manifest(
        meta={
            "kind": SNAPSHOT_KIND,
            "created_at": started.isoformat(),
            "tables": {
                name: {
                    "columns": {c: str(t) for c, t in info.columns.items()},
                    "primary_key": list(info.primary_key),
                }
                for name, info in infos.items()
            },
        }
    )
    for name, (path, rows) in exported.items():
        size = path.stat().st_size
        manifest.files.append(
            FileRecord(
                path=path.relative_to(folder).as_posix(),
                bytes=size,
                sha256=sha256_file(path),
                rows=rows,
                table=name,
            )
        )
        progress("backup", size)
    manifest.write(folder / MANIFEST_NAME)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return SnapshotSummary(folder, {n: r for n, (_, r) in exported.items()}, manifest.total_bytes, seconds)


def read_snapshot(folder: Path, verify: bool = True) -> tuple[Manifest, list[TableData]]:
    """The snapshot's manifest and tables, after checking every file's size and sha256."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise WarehouseError(f"{folder}: no {MANIFEST_NAME}; not a snapshot, or an incomplete one")
    manifest = Manifest.read(path)
    if manifest.meta.get("kind") != SNAPSHOT_KIND:
        raise WarehouseError(f"{path}: not a warehouse snapshot (kind {manifest.meta.get('kind')!r})")
    tables = []
    for record in manifest.files:
        file = folder / record.path
        if verify:
            size = file.stat().st_size if file.is_file() else -1
            if size != record.bytes or sha256_file(file) != record.sha256:
                raise IntegrityError(
                    f"{file}: expected {record.bytes} bytes with sha256 {record.sha256[:12]}..., the file differs "
                    "or is missing; restore from another snapshot"
                )
        name = record.table or file.stem
        spec = manifest.meta["tables"][name]
        columns = {c: parse_sql_type(t, name, c) for c, t in spec["columns"].items()}
        tables.append(TableData(name, columns, tuple(spec["primary_key"]), [file]))
    return manifest, tables


def restore_warehouse(
    warehouse: Warehouse, snapshot: Path, progress: Progress = no_progress
) -> SnapshotSummary:
    """Recreate every table of ``snapshot`` (replacing tables of the same name; others stay) in one
    transaction: a failed restore leaves the warehouse as it was."""
    started = dt.datetime.now(dt.UTC)
    manifest, tables = read_snapshot(snapshot)
    warehouse.replace_tables(tables, progress)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    rows = {f.table or f.path: f.rows or 0 for f in manifest.files}
    return SnapshotSummary(snapshot, rows, manifest.total_bytes, seconds)
