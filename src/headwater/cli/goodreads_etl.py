"""Goodreads ETL commands, added to the ``headwater goodreads`` group: etl, batches, report, loadtest.
Thin over :mod:`headwater.goodreads.etl`, :mod:`~headwater.goodreads.analytics` and
:mod:`~headwater.goodreads.loadtest`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, print_json
from headwater.errors import UsageError
from headwater.units import format_bytes, parse_size

EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", "-e", help="Transform engine: duckdb or spark (default: goodreads.engine)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _engine(value: str | None) -> Literal["duckdb", "spark"] | None:
    if value is None:
        return None
    if value not in ("duckdb", "spark"):
        raise UsageError(f"--engine {value!r}: expected duckdb or spark")
    return "duckdb" if value == "duckdb" else "spark"


def _stage_table(title: str, stages: list[object]) -> Table:
    from headwater.goodreads.etl import StageStats

    table = Table(title=title)
    for col in ("stage", "rows in", "rows out", "bytes read", "seconds", "MB/s", "CPU s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in stages:
        assert isinstance(s, StageStats)
        table.add_row(
            s.stage,
            f"{s.rows_in:,}",
            f"{s.rows_out:,}",
            format_bytes(s.bytes),
            f"{s.seconds:.2f}",
            f"{s.mb_per_s:,.1f}",
            f"{s.cpu_seconds:.1f}",
        )
    return table


def etl(
    engine: EngineOpt = None,
    batch: Annotated[
        list[str] | None,
        typer.Option("--batch", "-b", help="Only this landing batch (yyyy/mm/dd/<id>); repeat."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one ETL cycle: every new or unfinished landing batch to working, processed and the warehouse.

    Safe to run any time (a schedule every 10 minutes, a sensor on new batches): with nothing new it
    does nothing; after a failure it resumes where the batch stopped; while another cycle runs it
    returns at once. A batch held back by a quality gate is reported, alerted once, and re-checked on
    the next cycle.

    Examples:

        headwater goodreads etl
        headwater goodreads etl --engine spark --json
        headwater goodreads etl --batch 2024/05/01/20240501T101500Z-3fa2c1
    """
    from headwater.goodreads.etl import run_cycle

    settings = State.settings()
    with ByteProgress(enabled=not as_json) as progress:
        report = run_cycle(settings, engine=_engine(engine), batches=batch, progress=progress)
    if as_json:
        print_json(report.to_json())
    elif report.busy:
        console.print(f"another goodreads cycle is running (pid {report.holder}); nothing done")
    elif not report.batches:
        console.print("no new or unfinished landing batches; nothing to do")
    else:
        table = Table(title=f"goodreads ETL cycle ({report.engine})")
        for col in (
            "batch",
            "state",
            "landing",
            "quarantined",
            "duplicates",
            "superseded",
            "orphaned",
            "loaded rows",
        ):
            table.add_column(col, justify="left" if col in ("batch", "state") else "right")
        for b in report.batches:
            state = (
                f"[red]failed at {b.state}[/]"
                if b.error
                else f"[yellow]{b.state}[/]"
                if b.held
                else b.state.value
            )
            table.add_row(
                b.batch, state, format_bytes(b.landing_bytes), f"{b.quarantined:,}", f"{b.duplicates:,}",
                f"{b.superseded:,}", f"{b.orphaned:,}", f"{b.loaded_rows:,}",
            )  # fmt: skip
        console.print(table)
        console.print(_stage_table("stages", list(report.stage_totals())))
        console.print(
            f"{format_bytes(report.landing_bytes)} of landing CSV in {report.seconds:.1f} s "
            f"= {report.mb_per_s:,.1f} MB/s end to end"
        )
        for b in report.blocked:
            for reason in b.held:
                console.print(f"[yellow]held:[/] {reason}")
        if report.cleaned:
            console.print(f"cleaned working/processed copies of {len(report.cleaned)} loaded batch(es)")
    report.raise_for_failures()


def batches(as_json: JsonOpt = False) -> None:
    """List the batches the ETL knows (its ledger): state, rows, errors.

    Examples:

        headwater goodreads batches
        headwater goodreads batches --json
    """
    from headwater.goodreads.etl import batch_records, new_landing_batches

    settings = State.settings()
    records = batch_records(settings)
    waiting = new_landing_batches(settings)
    if as_json:
        print_json(
            {
                "batches": [
                    {"batch": r.ref.key, "state": r.state.value, "landing_bytes": r.landing_bytes,
                     "attempts": r.attempts, "error": r.error, "first_seen": r.first_seen,
                     "loaded_at": r.loaded_at, "cleaned_at": r.cleaned_at, "facts": r.facts}
                    for r in records
                ],
                "new": waiting,
            }
        )  # fmt: skip
        return
    table = Table(title="goodreads batches")
    for col in ("batch", "state", "landing", "loaded rows", "loaded at", "cleaned", "error"):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.ref.key, r.state.value, format_bytes(r.landing_bytes), f"{int(r.facts.get('loaded_rows', 0)):,}",
            r.loaded_at or "", "yes" if r.cleaned_at else "", r.error or "",
        )  # fmt: skip
    for key in waiting:
        table.add_row(key, "new", "", "", "", "", "")
    console.print(table)


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{option} {value!r}: expected a date YYYY-MM-DD") from exc


def report(
    start: Annotated[str, typer.Option("--from", help="First day of the window, YYYY-MM-DD (UTC).")],
    end: Annotated[str, typer.Option("--to", help="Last day of the window, YYYY-MM-DD (included).")],
    top: Annotated[int, typer.Option(help="How many authors and books per answer.")] = 10,
    min_reviews: Annotated[
        int, typer.Option(help="Reviews an author or book needs to rank by average rating.")
    ] = 10,
    prior: Annotated[
        int | None, typer.Option(help="Prior weight m of the Bayesian average (default: --min-reviews).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for report.json, one CSV per answer and PNG charts.")
    ] = None,
    charts: Annotated[bool, typer.Option(help="Draw PNG charts into --out.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Answer the predefined questions for a date window from the warehouse's star schema.

    Most popular authors and books by review count and by average rating (at least --min-reviews
    reviews), best authors and books by Bayesian average (v*R + m*C) / (v + m), reviews per day and the
    monthly rating trend.

    Examples:

        headwater goodreads report --from 2019-01-01 --to 2019-12-31
        headwater goodreads report --from 2020-02-01 --to 2020-02-29 --top 5 --out reports/feb
    """
    from headwater.goodreads.analytics import Window, build_report
    from headwater.warehouse import warehouse_from_settings

    window = Window(_parse_day(start, "--from"), _parse_day(end, "--to"))
    result = build_report(
        warehouse_from_settings(State.settings()), window, top=top, min_reviews=min_reviews, prior=prior
    )
    written = result.write(out, charts=charts) if out is not None else []
    if as_json:
        print_json({**result.to_json(), "written": [str(p) for p in written]})
        return
    mean = f"{result.mean_rating:.3f}" if result.mean_rating is not None else "-"
    console.print(f"[bold]{window}[/]: {result.total_reviews:,} reviews, mean rating {mean}")
    titles = {
        "popular_authors_by_reviews": "Most reviewed authors",
        "popular_authors_by_rating": f"Highest rated authors (>= {min_reviews} reviews)",
        "popular_books_by_reviews": "Most reviewed books",
        "popular_books_by_rating": f"Highest rated books (>= {min_reviews} reviews)",
        "best_authors": f"Best authors (Bayesian average, m = {result.prior})",
        "best_books": f"Best books (Bayesian average, m = {result.prior})",
    }
    for name, title in titles.items():
        frame = result.answers[name]
        table = Table(title=title)
        for col in frame.columns:
            table.add_column(str(col), justify="right" if frame[col].dtype.kind in "if" else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)
    trend = result.answers["rating_trend"]
    table = Table(title="Rating trend per month")
    for col in ("month", "reviews", "avg rating", "positive", "negative"):
        table.add_column(col, justify="left" if col == "month" else "right")
    for row in trend.itertuples(index=False):
        table.add_row(str(row.month), f"{row.reviews:,}", f"{row.avg_rating:.3f}",
                      f"{row.positive_share:.1%}", f"{row.negative_share:.1%}")  # fmt: skip
    console.print(table)
    per_day = result.answers["reviews_per_day"]
    if len(per_day):
        console.print(
            f"reviews per day: {len(per_day)} days, mean {per_day['reviews'].mean():.1f}, "
            f"max {per_day['reviews'].max():,} on {per_day['day'].iloc[int(per_day['reviews'].to_numpy().argmax())]}"
        )
    if written:
        console.print(f"wrote {len(written)} files to {out}")


def loadtest(
    size: Annotated[str, typer.Option(help="Raw CSV to generate: 10GB, 500MB, ...")] = "10GB",
    engine: EngineOpt = None,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where generated data and the scratch project go (default: state_dir/loadtest)."),
    ] = None,
    review_text: Annotated[
        bool | None,
        typer.Option(
            "--review-text/--no-review-text",
            help="Load review texts into the warehouse (default: goodreads.load_review_text).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate goodreads data at --size as bulk landing files and time one ETL cycle over it.

    Runs in a scratch project (its own zones and DuckDB warehouse) so your warehouse is untouched.
    Generated data is reused by the next run of the same size. Prints rows, MB/s and seconds per stage
    and the end-to-end rate over the raw CSV.

    Examples:

        headwater goodreads loadtest --size 500MB
        headwater goodreads loadtest --size 10GB --json
        headwater goodreads loadtest --size 1GB --engine spark
    """
    from headwater.goodreads.loadtest import run_loadtest

    settings = State.settings()
    with ByteProgress(enabled=not as_json) as progress:
        result = run_loadtest(
            settings, size=parse_size(size, "--size"), engine=_engine(engine) or settings.goodreads.engine,
            seed=seed, workdir=workdir, progress=progress, load_review_text=review_text,
        )  # fmt: skip
    if as_json:
        print_json(result.to_json())
        return
    cycle = result.cycle
    gen = "reused" if result.reused else f"{result.generate_seconds:.1f} s"
    console.print(
        f"generated {format_bytes(result.generated_bytes)} ({result.generated_rows:,} rows; {gen}) in {result.project}"
    )
    console.print(_stage_table(f"one ETL cycle ({cycle.engine})", list(cycle.stage_totals())))
    console.print(
        f"[bold]{format_bytes(cycle.landing_bytes)} of raw CSV in {cycle.seconds:.1f} s = "
        f"{cycle.mb_per_s:,.1f} MB/s end to end[/]"
    )


def add_commands(group: typer.Typer) -> None:
    """Add this module's commands to ``group``."""
    group.command("etl")(etl)
    group.command("batches")(batches)
    group.command("report")(report)
    group.command("loadtest")(loadtest)
