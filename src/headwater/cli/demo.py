"""``headwater demo``: the main job end to end on the embedded default (local folders, no server)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from headwater.cli.console import ByteProgress, console
from headwater.config import PROJECT_FILE, init_project, load_settings
from headwater.generate import GenerateOptions, generate, load_dataset
from headwater.generate.sessions import SessionOptions, generate_sessions
from headwater.units import format_bytes


def demo(
    project: Annotated[Path, typer.Option(help="Project folder to create or reuse.")] = Path("demo-project"),
    rows: Annotated[int, typer.Option(help="Rows of the events table.")] = 1_000_000,
    fresh: Annotated[bool, typer.Option(help="Delete the project's generated data first.")] = True,
) -> None:
    """Run the main job on the embedded default: create a project, generate the built-in datasets
    (events as YYYY/MM/events.csv, goodreads, recording sessions) into its landing folder, print a summary.

    Later pipelines (transfer, events analyses, sessions catalog, goodreads ETL) extend this same command.
    """
    if not (project / PROJECT_FILE).exists():
        init_project(project, "headwater-demo")
    settings = load_settings(project, env={})
    landing = Path(settings.storage_root) / "landing" / "generated"
    if fresh and landing.exists():
        shutil.rmtree(landing)
    workers = settings.generate.workers or os.cpu_count() or 1
    summary = Table(title=f"headwater demo: {project}", title_justify="left")
    for col in ("dataset", "tables", "rows", "files", "bytes", "seconds"):
        summary.add_column(col, justify="left" if col in ("dataset", "tables") else "right")
    with ByteProgress() as bar:
        for name, rows_main in (("events", rows), ("goodreads", rows // 10)):
            result = generate(
                load_dataset(name),
                landing / name,
                GenerateOptions(rows=rows_main, seed=settings.generate.seed, workers=workers),
                progress=bar,
            )
            summary.add_row(
                name,
                ", ".join(t.name for t in result.tables),
                f"{result.rows:,}",
                str(len(result.manifest.files)),
                format_bytes(result.bytes),
                f"{result.seconds:.1f}",
            )
        manifest = generate_sessions(
            landing / "sessions",
            SessionOptions(count=3, session_bytes=8_000_000, seed=settings.generate.seed),
            bar,
        )
        summary.add_row(
            "sessions",
            "3 session folders",
            "-",
            str(len(manifest.files)),
            format_bytes(manifest.total_bytes),
            "-",
        )
    console.print(summary)
    console.print(f"data in [bold]{landing}[/]; each dataset folder has a manifest.json with sha256 per file")


def register(app: typer.Typer) -> None:
    app.command()(demo)
