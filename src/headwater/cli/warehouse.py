"""``headwater warehouse load | sql | tables | backup | restore``: thin wrappers over :mod:`headwater.warehouse`."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import console, print_json
from headwater.errors import IntegrityError, UsageError
from headwater.manifest import Manifest, sha256_file
from headwater.warehouse import LoadMode, LoadRequest, SchemaChangePolicy, Warehouse, open_warehouse
from headwater.warehouse import warehouse_from_settings as _from_settings

warehouse_app = typer.Typer(
    help="Load batches into the warehouse (DuckDB file or PostgreSQL) and look inside it.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


class _Target:
    url: str | None = None
    schema: str = "public"


@warehouse_app.callback()
def _group(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Warehouse URL: a DuckDB file path or postgresql://... (default: headwater.yaml's warehouse).",
            envvar="HEADWATER_WAREHOUSE_URL",
        ),
    ] = None,
    schema: Annotated[str, typer.Option(help="PostgreSQL schema (with --url).")] = "public",
) -> None:
    _Target.url, _Target.schema = url, schema


def _open() -> Warehouse:
    if _Target.url:
        return open_warehouse(_Target.url, schema=_Target.schema)
    return _from_settings(State.settings())


def _files_from_manifest(manifest: Path, table: str) -> list[Path]:
    """The Parquet files a manifest lists (those of ``table`` when it names tables), verified."""
    m = Manifest.read(manifest)
    records = [f for f in m.files if f.path.endswith(".parquet") and f.table in (None, table)]
    files = []
    for record in records:
        path = manifest.parent / record.path
        if sha256_file(path) != record.sha256:
            raise IntegrityError(f"{path}: sha256 differs from {manifest}; re-fetch the batch before loading")
        files.append(path)
    if not files:
        raise UsageError(f"{manifest}: lists no Parquet files for table {table}")
    return files


def load(
    table: Annotated[str, typer.Argument(help="Target table (created on first load).")],
    files: Annotated[list[Path] | None, typer.Argument(help="Parquet files of the batch.")] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="Primary-key column (repeat for a compound key).")
    ] = None,
    mode: Annotated[LoadMode, typer.Option(help="merge (UPSERT by key), replace_partition or append.")] = (
        LoadMode.MERGE
    ),
    partition: Annotated[str | None, typer.Option(help="Partition column for replace_partition.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="The batch's manifest.json: its files are verified and loaded.")
    ] = None,
    batch_id: Annotated[
        str | None, typer.Option(help="Batch id (default: the manifest's sha256, else the files').")
    ] = None,
    on_schema_change: Annotated[
        SchemaChangePolicy,
        typer.Option(help="evolve (add/widen), freeze (never alter) or fail (any change)."),
    ] = SchemaChangePolicy.EVOLVE,
    as_json: JsonOpt = False,
) -> None:
    """Stage a batch and apply it to TABLE in one transaction with its audit row.

    Loading the same batch id again changes nothing. A breaking schema change is refused and nothing is written.
    """
    paths = list(files or [])
    manifest_sha = sha256_file(manifest) if manifest else None
    if manifest and not paths:
        paths = _files_from_manifest(manifest, table)
    if not paths:
        raise UsageError("give Parquet files or --manifest")
    if batch_id is None:
        digest = hashlib.sha256()
        for p in paths:
            digest.update(sha256_file(p).encode())
        batch_id = manifest_sha or digest.hexdigest()
    request = LoadRequest(
        table,
        batch_id,
        mode,
        primary_key=tuple(key or ()),
        partition_column=partition,
        on_schema_change=on_schema_change,
        manifest_sha256=manifest_sha,
    )
    result = _open().load(paths, request)
    if as_json:
        print_json(asdict(result))
        return
    if result.skipped:
        console.print(f"{table}: batch {batch_id[:16]} already loaded; nothing changed")
        return
    for change in result.changes:
        console.print(f"schema: {change.describe()}", highlight=False)
    console.print(
        f"{table}: {result.rows_in:,} rows in, {result.inserted:,} inserted, {result.updated:,} updated, "
        f"{result.deleted:,} deleted in {result.seconds:.2f}s (schema v{result.schema_version})"
    )


def sql(
    statement: Annotated[str, typer.Argument(help="One SQL statement.")],
    write: Annotated[bool, typer.Option("--write", help="Run on a write connection (DDL, DML).")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Rows shown (not with --json).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Run one SQL statement: read-only unless --write."""
    wh = _open()
    if write:
        count = wh.execute(statement)
        console.print(f"ok ({count} rows)" if count >= 0 else "ok")
        return
    result = wh.query(statement)
    if as_json:
        print_json(result.to_pylist())
        return
    _print_rows(result.column_names, [list(r.values()) for r in result.slice(0, limit).to_pylist()])
    if result.num_rows > limit:
        console.print(f"... {result.num_rows - limit:,} more rows (use --limit or --json)", style="dim")


def tables(
    show_all: Annotated[bool, typer.Option("--all", help="Include headwater's own _hw_ tables.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List tables with row counts, primary keys and columns."""
    infos = _open().tables(include_internal=show_all)
    if as_json:
        print_json(
            [
                {
                    "name": t.name,
                    "rows": t.rows,
                    "primary_key": list(t.primary_key),
                    "columns": {c: str(ty) for c, ty in t.columns.items()},
                }
                for t in infos
            ]
        )
        return
    _print_rows(
        ["table", "rows", "primary key", "columns"],
        [[t.name, f"{t.rows:,}", ", ".join(t.primary_key), len(t.columns)] for t in infos],
    )


def backup(
    dest: Annotated[Path, typer.Argument(help="Folder to write the snapshot folder into.")],
    as_json: JsonOpt = False,
) -> None:
    """Write every table to Parquet under DEST/snapshot-<time>/ with a manifest (rows, sha256)."""
    from headwater.warehouse.backup import backup_warehouse

    summary = backup_warehouse(_open(), dest)
    _print_summary(summary.folder, summary.tables, summary.bytes, summary.seconds, "backed up", as_json)


def restore(
    snapshot: Annotated[Path, typer.Argument(help="A snapshot folder written by 'warehouse backup'.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify a snapshot and recreate its tables in one transaction (tables of the same name are replaced)."""
    from headwater.warehouse.backup import restore_warehouse

    summary = restore_warehouse(_open(), snapshot)
    _print_summary(summary.folder, summary.tables, summary.bytes, summary.seconds, "restored", as_json)


def _print_summary(
    folder: Path, tables: dict[str, int], size: int, seconds: float, verb: str, as_json: bool
) -> None:
    if as_json:
        print_json({"snapshot": str(folder), "tables": tables, "bytes": size, "seconds": round(seconds, 3)})
        return
    console.print(
        f"{verb} {len(tables)} tables ({sum(tables.values()):,} rows, {size / 1e6:.1f} MB) "
        f"in {seconds:.2f}s: {folder}"
    )


def _print_rows(columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(*columns, show_lines=False)
    for row in rows:
        view.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(view)


def register(app: typer.Typer) -> None:
    warehouse_app.command()(load)
    warehouse_app.command()(sql)
    warehouse_app.command()(tables)
    warehouse_app.command()(backup)
    warehouse_app.command()(restore)
    app.add_typer(warehouse_app, name="warehouse")
