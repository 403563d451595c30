"""``headwater demo``: the main job end to end on the embedded default (local folders, no server)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from headwater.cli.console import ByteProgress, console
from headwater.units import format_bytes

if TYPE_CHECKING:
    from headwater.config import Settings


def demo(
    project: Annotated[Path, typer.Option(help="Project folder to create or reuse.")] = Path("demo-project"),
    rows: Annotated[int, typer.Option(help="Rows of the events table.")] = 1_000_000,
    fresh: Annotated[bool, typer.Option(help="Delete the project's generated data first.")] = True,
) -> None:
    """Run the main job on the embedded default: create a project, generate the built-in datasets
    (events as YYYY/MM/events.csv, goodreads, recording sessions), then run the monthly events pipeline
    over every month (processed Parquet, quarantine, warehouse fact_events) and print its report.
    """
    from headwater.config import PROJECT_FILE, init_project, load_settings
    from headwater.generate import GenerateOptions, generate, load_dataset
    from headwater.generate.sessions import SessionOptions, generate_sessions

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
    events_source = settings.resolve(settings.events.source)
    if fresh and events_source.exists():
        shutil.rmtree(events_source)
    with ByteProgress() as bar:
        for name, rows_main in (("events", rows), ("goodreads", rows // 10)):
            result = generate(
                load_dataset(name),
                events_source if name == "events" else landing / name,
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
    _events_pipeline(settings, events_source)
    _sessions_pipeline(settings, landing / "sessions")
    _goodreads_pipeline(settings, landing / "goodreads")


def _sessions_pipeline(settings: Settings, lab: Path) -> None:
    """The lab's daily flow: checked upload to the write-once raw zone, catalog, preprocessing, a query."""
    from headwater.sessions import preprocess_pending, query, upload_sessions

    with ByteProgress() as bar:
        uploaded = upload_sessions(settings, lab, progress=bar)
        results = preprocess_pending(settings, progress=bar)
    ready = query(settings, "fatigue_level >= 0")
    console.print(
        f"sessions: {len(uploaded.sessions)} checked and uploaded to raw/sessions, "
        f"{sum(r.ran for r in results)} preprocessed now, {len(ready)} in the catalog "
        f'(try: headwater sessions query "fatigue_level >= 3")'
    )


def _goodreads_pipeline(settings: Settings, generated: Path) -> None:
    """The Goodreads ETL: the generated tables landed as one verified batch, one cycle into the star
    schema, then the predefined analytics."""
    from datetime import UTC, date, datetime

    from headwater.goodreads.analytics import Window, build_report
    from headwater.goodreads.etl import run_cycle
    from headwater.storage import Zone, build_batch_prefix, open_store, parse_location, push_batch
    from headwater.warehouse import warehouse_from_settings

    batch = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    prefix = build_batch_prefix(Zone.LANDING, "goodreads", datetime.now(UTC).date(), batch)
    store = open_store(parse_location(f"{settings.storage_root}/{prefix}"))
    with ByteProgress() as bar:
        push_batch(generated, store, write_once=True, progress=bar)
        cycle = run_cycle(settings, progress=bar)
    cycle.raise_for_failures()
    stages = ", ".join(f"{s.stage} {s.rows_out:,} rows" for s in cycle.stage_totals())
    console.print(
        f"goodreads: landed batch {batch}; one ETL cycle in {cycle.seconds:.1f} s "
        f"({cycle.mb_per_s:.0f} MB/s of raw CSV): {stages}"
    )
    report = build_report(
        warehouse_from_settings(settings), Window(date(2000, 1, 1), date(2030, 12, 31)), top=5
    )
    out = settings.resolve("reports/goodreads")
    report.write(out)
    top = report.answers["popular_authors_by_reviews"]
    names = top["name"] if "name" in top.columns else top.iloc[:, 0]
    counts = top["reviews"] if "reviews" in top.columns else [""] * len(top)
    console.print(
        "most reviewed authors: " + ", ".join(f"{n} ({c:,})" for n, c in zip(names, counts, strict=True))
    )
    console.print(
        f"goodreads report with charts: [bold]{out}[/] (headwater goodreads report --help for more)"
    )


def _events_pipeline(settings: Settings, source: Path) -> None:
    """The monthly events pipeline over every generated month, then the report for all of them."""
    from headwater.events import analyse, discover_months, run_month

    months = [f.month for f in discover_months(settings, str(source))]
    table = Table(
        title="events pipeline: YYYY/MM/events.csv -> processed Parquet + fact_events", title_justify="left"
    )
    for col in ("month", "rows kept", "quarantined", "MB/s", "seconds"):
        table.add_column(col, justify="left" if col == "month" else "right")
    with ByteProgress() as bar:
        for month in months:
            r = run_month(settings, month, str(source), force=True, progress=bar)
            table.add_row(
                r.month,
                f"{r.rows_out:,}",
                f"{r.quarantined:,}",
                f"{r.bytes_in / 1e6 / r.seconds:.0f}" if r.seconds else "-",
                f"{r.seconds:.1f}",
            )
    console.print(table)
    result = analyse(settings, months, top_n=5)
    out = settings.resolve("reports/events")
    result.write(out)
    top_users = ", ".join(
        f"{u} ({n:,})" for u, n in zip(result.top_users["user_id"], result.top_users["events"], strict=True)
    )
    top_companies = ", ".join(
        f"{c} ({n:,})"
        for c, n in zip(result.top_companies["company_id"], result.top_companies["events"], strict=True)
    )
    per_month = ", ".join(
        f"{m} {n:,}" for m, n in zip(result.per_month["month"], result.per_month["events"], strict=True)
    )
    console.print(f"[bold]{result.total:,} events[/]; per month: {per_month}")
    console.print(f"most active users: {top_users}")
    console.print(f"most active companies: {top_companies}")
    console.print(
        f"report with charts: [bold]{out / 'report.html'}[/] (headwater events report --help for more)"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
