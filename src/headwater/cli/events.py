"""``headwater events process | report``: the monthly events pipeline, thin over :mod:`headwater.events`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, print_json
from headwater.errors import QualityGateError, UsageError
from headwater.units import format_bytes

if TYPE_CHECKING:
    from headwater.events import Month, MonthReport

events_app = typer.Typer(
    help="The monthly events pipeline: YYYY/MM/events.csv -> cleaned Parquet, warehouse fact, analyses.",
    no_args_is_help=True,
)

MonthOpt = Annotated[str | None, typer.Option("--month", "-m", help="One month, YYYY-MM.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="First month of a range (a backfill), YYYY-MM.")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last month of the range, YYYY-MM (inclusive).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _months(month: str | None, start: str | None, end: str | None, source: str | None) -> list[Month]:
    from headwater.events import Month, discover_months, month_range

    if month and (start or end):
        raise UsageError("give --month or --from/--to, not both")
    if month:
        return [Month.parse(month)]
    if start or end:
        if not (start and end):
            raise UsageError("--from and --to go together")
        return month_range(start, end)
    settings = State.settings()
    found = discover_months(settings, _source(source))
    if not found:
        raise UsageError(f"no YYYY/MM/events.csv under {_source(source)}; give --month")
    return [f.month for f in found]


def _source(source: str | None) -> str:
    settings = State.settings()
    text = source or settings.events.source
    return text if "://" in text else str(settings.resolve(text))


def process(
    source: Annotated[
        str | None,
        typer.Argument(help="Folder or store URL holding YYYY/MM/events.csv (default: events.source)."),
    ] = None,
    month: MonthOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    load: Annotated[bool, typer.Option(help="Load each month into the warehouse table fact_events.")] = True,
    force: Annotated[
        bool, typer.Option(help="Process again even if this file was processed already.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Process months of events: parse each CSV once with a declared schema (bad lines to quarantine with
    their line number and reason), drop duplicate event_ids (first kept), normalise timestamps to UTC,
    write Parquet to processed/events/year=YYYY/month=MM/ and replace the month in fact_events.

    Re-running a month is idempotent: the same file is skipped, a changed file replaces the month.
    Without --month or --from/--to every month found in SOURCE is processed. A month an error check
    fails on is held back (its failing rows quarantined, one alert sent, nothing published or loaded):
    the other months go on, and the command exits with 3.

    Examples:

      headwater events process data/events --month 2021-01
      headwater events process s3://bucket/events --from 2021-01 --to 2021-06   # a backfill
      headwater events process --month 2021-03 --force --no-load
    """
    from headwater.events import run_month

    settings = State.settings()
    src = _source(source)
    months = _months(month, start, end, source)
    reports: list[MonthReport] = []
    with ByteProgress(enabled=not as_json) as bar:
        for m in months:
            reports.append(run_month(settings, m, src, load=load, force=force, progress=bar))
    held = [r for r in reports if r.held]
    if as_json:
        print_json([r.to_json() for r in reports])
        if held:
            raise typer.Exit(QualityGateError.exit_code)
        return
    # one row per month in 80 columns: no rules between columns, one space between them, and the
    # quarantined rows' reasons on a line of their own
    table = Table(
        title=f"events from {src}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0)
    )
    for col in ("month", "read", "kept", "quarantined", "size", "seconds", "MB/s", "state"):
        table.add_column(col, justify="left" if col in ("month", "state") else "right", no_wrap=True)
    for r in reports:
        state = (
            "skipped" if r.skipped else "[yellow]held[/]" if r.held else ("loaded" if r.load else "processed")
        )
        table.add_row(
            r.month,
            f"{r.rows_read:,}",
            f"{r.rows_out:,}",
            f"{r.quarantined:,}",
            format_bytes(r.bytes_in),
            f"{r.seconds:.1f}" if not r.skipped else "-",
            f"{r.bytes_in / 1e6 / r.seconds:.0f}" if r.seconds and not r.skipped else "-",
            state,
        )
    console.print(table)
    quarantined = [r for r in reports if r.quarantined]
    if quarantined:
        parse, invalid, dupes = (
            sum(r.rejected_parse for r in quarantined),
            sum(r.rejected_invalid for r in quarantined),
            sum(r.duplicates for r in quarantined),
        )
        console.print(
            f"[yellow]quarantined:[/] parse errors {parse:,}, invalid rows {invalid:,}, "
            f"duplicate event_ids {dupes:,} (see: headwater quarantine list --dataset events)"
        )
    if any(r.skipped for r in reports):
        console.print("skipped: already processed from the same file (--force processes it again)")
    for r in held:
        console.print(f"[yellow]held:[/] {escape(r.gate)}", highlight=False)
    if held:
        raise QualityGateError(
            f"{', '.join(r.month for r in held)}: held back by the quality gate, nothing of "
            f"{'it' if len(held) == 1 else 'them'} published or loaded (see: headwater quarantine list --dataset events)"
        )


def report(
    month: MonthOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    top: Annotated[
        int | None, typer.Option(min=1, help="How many users and companies to list (default: events.top_n).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write report.json, CSVs, PNG charts and report.html into this folder."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyse processed months: events per year, month and day, and the most active users and
    companies. Prints tables; --out also writes JSON, CSV, PNG charts and a self-contained HTML page.

    Examples:

      headwater events report --month 2021-01
      headwater events report --from 2021-01 --to 2021-06 --top 20 --out reports/h1
    """
    from headwater.events import analyse

    settings = State.settings()
    result = analyse(settings, _months(month, start, end, None), top)
    written = result.write(out) if out else []
    if as_json:
        print_json(result.to_json() | {"written": [str(p) for p in written]})
        return
    console.print(f"[bold]{result.total:,} events[/] in {', '.join(result.months)}")
    for title, df in (("per year", result.per_year), ("per month", result.per_month)):
        t = Table(title=f"events {title}", title_justify="left")
        for col in df.columns:
            t.add_column(str(col), justify="right")
        for row in df.itertuples(index=False):
            t.add_row(
                *(
                    f"{v:,}" if isinstance(v, int) and col != "year" else str(v)
                    for v, col in zip(row, df.columns, strict=True)
                )
            )
        console.print(t)
    days = result.per_day
    if len(days):
        busiest = days.iloc[int(days["events"].to_numpy().argmax())]
        quietest = days.iloc[int(days["events"].to_numpy().argmin())]
        console.print(
            f"per day: {len(days)} days, mean {days['events'].mean():,.0f}, busiest {busiest['day']:%Y-%m-%d} "
            f"({int(busiest['events']):,}), quietest {quietest['day']:%Y-%m-%d} ({int(quietest['events']):,})"
        )
    for title, df, key in (
        ("most active users", result.top_users, "user_id"),
        ("most active companies", result.top_companies, "company_id"),
    ):
        t = Table(title=title, title_justify="left")
        for col in (key, "events", "share %"):
            t.add_column(col, justify="right")
        for row in df.itertuples(index=False):
            t.add_row(str(row[0]), f"{int(row[1]):,}", f"{float(row[2]):.2f}")
        console.print(t)
    if written:
        console.print(f"wrote {len(written)} files to [bold]{out}[/] (open {out}/report.html)")


def register(app: typer.Typer) -> None:
    events_app.command()(process)
    events_app.command()(report)
    app.add_typer(events_app, name="events")
