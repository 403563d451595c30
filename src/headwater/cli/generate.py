"""``headwater generate``: synthetic data from a built-in dataset or a schema file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, err_console, print_json
from headwater.errors import UsageError
from headwater.generate import BUILT_IN
from headwater.units import format_bytes, format_rate, parse_size

if TYPE_CHECKING:
    from headwater.generate import GenerateResult

HELP = """Generate synthetic data from DATASET_OR_SCHEMA: a built-in dataset (events, goodreads, sessions)
or a YAML schema file. Output is deterministic: the same schema and --seed give byte-identical files
whatever --workers or --chunk-rows.

Examples:

  headwater generate events --out data/events --size 1GB          # YYYY/MM/events.csv, ~1 GB
  headwater generate goodreads --out gr --rows 100000 --format parquet
  headwater generate my_schema.yaml --out out --rows 1e6 --dirty 0.01   # with a defects ledger
  headwater generate sessions --out lab --sessions 10 --size 600MB       # per session

Every run writes manifest.json (path, rows, bytes, sha256 of each file, schema hash, seed).
"""


def _rows(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(float(text.replace("_", "").replace(",", "")))
    except ValueError:
        value = parse_size(text, "--rows")
    if value <= 0:
        raise UsageError(f"--rows must be positive, got {text!r}")
    return value


def _table_rows(pairs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--table-rows expects TABLE=ROWS, got {pair!r}")
        rows = _rows(value)
        assert rows is not None
        out[name] = rows
    return out


def generate_command(
    dataset: Annotated[
        str, typer.Argument(help=f"Built-in dataset ({', '.join(BUILT_IN)}) or a schema YAML file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    rows: Annotated[str | None, typer.Option(help="Rows of the main table, e.g. 1000000 or 1e6.")] = None,
    size: Annotated[
        str | None,
        typer.Option(help="Stop the main table at this size, e.g. 1GB; per session for 'sessions'."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    seed: Annotated[int | None, typer.Option(help="Random seed (default: project's generate.seed).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    chunk_rows: Annotated[int | None, typer.Option(help="Rows per worker chunk; bounds memory.")] = None,
    dirty: Annotated[
        float, typer.Option(help="Share of rows given one known defect, listed in defects.csv.")
    ] = 0.0,
    file_rows: Annotated[int | None, typer.Option(help="Split files after this many rows.")] = None,
    file_size: Annotated[str | None, typer.Option(help="Split CSV files at this size, e.g. 100MB.")] = None,
    table_rows: Annotated[
        list[str], typer.Option(help="Rows of another table: TABLE=ROWS (repeatable).")
    ] = [],  # noqa: B006
    sessions: Annotated[int, typer.Option(help="Number of session folders ('sessions' only).")] = 10,
    overwrite: Annotated[
        bool, typer.Option(help="Write into a folder that already holds generated data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    from headwater.generate import GenerateOptions, generate, load_dataset
    from headwater.generate.sessions import SessionOptions, generate_sessions

    settings = State.settings().generate
    seed = settings.seed if seed is None else seed
    workers = workers or settings.workers or os.cpu_count() or 1
    if dataset == "sessions":
        opts = SessionOptions(
            count=sessions,
            session_bytes=parse_size(size, "--size") if size else 600_000_000,
            seed=seed,
            overwrite=overwrite,
        )
        with ByteProgress(enabled=not as_json) as bar:
            manifest = generate_sessions(out, opts, bar)
        summary = {
            "out": str(out),
            "sessions": sessions,
            "files": len(manifest.files),
            "bytes": manifest.total_bytes,
        }
        if as_json:
            print_json(summary)
        else:
            console.print(f"wrote {sessions} sessions, {len(manifest.files)} files, "
                          f"{format_bytes(manifest.total_bytes)} to [bold]{out}[/]")  # fmt: skip
        return
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, got {fmt!r}")
    schema = load_dataset(dataset)
    options = GenerateOptions(
        seed=seed,
        rows=_rows(rows),
        size=parse_size(size, "--size") if size else None,
        fmt="csv" if fmt == "csv" else "parquet",
        workers=workers,
        chunk_rows=chunk_rows or settings.chunk_rows,
        dirty=dirty,
        file_rows=file_rows,
        file_bytes=parse_size(file_size, "--file-size") if file_size else None,
        overwrite=overwrite,
        table_rows=_table_rows(table_rows),
    )
    with ByteProgress(enabled=not as_json) as bar:
        result = generate(schema, out, options, progress=bar)
    if as_json:
        print_json(summary_dict(result))
    else:
        print_summary(result)


def summary_dict(result: GenerateResult) -> dict[str, object]:
    return {
        "out": str(result.out),
        "seconds": round(result.seconds, 3),
        "rows": result.rows,
        "bytes": result.bytes,
        "mb_per_s": round(result.bytes / 1e6 / max(result.seconds, 1e-9), 1),
        "defects": result.defects,
        "tables": [vars(t) for t in result.tables],
        "manifest": str(result.out / "manifest.json"),
    }


def print_summary(result: GenerateResult) -> None:
    table = Table(title=f"generated into {result.out}", title_justify="left")
    for col in ("table", "rows", "files", "bytes", "defects"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in result.tables:
        table.add_row(t.name, f"{t.rows:,}", str(t.files), format_bytes(t.bytes), f"{t.defects:,}")
    console.print(table)
    rate = format_rate(result.bytes, result.seconds)
    console.print(
        f"{result.rows:,} rows, {format_bytes(result.bytes)} in {result.seconds:.1f} s ({rate}); "
        f"manifest: {result.out / 'manifest.json'}"
    )
    if result.defects:
        err_console.print(f"{result.defects:,} deliberate defects listed in {result.out / 'defects.csv'}")


def register(app: typer.Typer) -> None:
    app.command("generate", help=HELP, no_args_is_help=True)(generate_command)
