"""``headwater profile PATH|TABLE``: a thin wrapper over :func:`headwater.quality.profiling.profile`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, err_console, print_json
from headwater.errors import UsageError
from headwater.units import format_bytes

if TYPE_CHECKING:
    from headwater.quality.profiling import Profile


def _short(value: object, width: int = 24) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:,.4g}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(p: Profile) -> Table:
    title = f"{p.table}: {p.rows:,} rows, {len(p.columns)} columns" + (
        f", {format_bytes(p.bytes)}" if p.bytes else ""
    )
    table = Table(title=title, title_justify="left")
    for name in ("column", "type", "null %", "distinct", "min", "max", "mean", "top value"):
        table.add_column(name, justify="right" if name in {"null %", "distinct", "mean"} else "left")
    for c in p.columns:
        approx = "" if c.top_exact else "~"
        top = f"{_short(c.top[0][0], 16)} ({approx}{c.top[0][1]:,})" if c.top and c.top[0][1] > 1 else ""
        distinct = f"{c.distinct:,}" + ("" if c.distinct_exact else "~") + (" U" if c.unique else "")
        table.add_row(
            escape(c.name), c.type, f"{c.null_pct:.2f}", distinct, escape(_short(c.min)), escape(_short(c.max)),
            _short(c.mean), escape(top),
        )  # fmt: skip
    return table


def _alerts(p: Profile) -> list[str]:
    out = []
    if p.rejected_lines:
        out.append(f"{p.rejected_lines:,} line(s) did not parse (not in the figures)")
    if p.duplicate_rows:
        out.append(f"{p.duplicate_rows:,} duplicate row(s)")
    if p.duplicate_keys:
        out.append(f"{p.duplicate_keys:,} duplicate key(s) in {', '.join(p.key)}")
    out += [f"{c.name}: {a}" for c in p.columns for a in c.anomalies]
    return out


def profile_command(
    source: Annotated[
        list[str], typer.Argument(help="CSV/Parquet files or folders, or a warehouse table name.")
    ],
    table: Annotated[
        str | None,
        typer.Option("--table", "-t", help="Name shown in the report and used for suggested checks."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", "-k", help="Key column whose duplicates are counted (repeat for a compound key)."
        ),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", help="Write the profile as JSON to this file ('-' = stdout, nothing else printed)."
        ),
    ] = None,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest-checks", help="Print suggested checks as YAML on stdout (the summary goes to stderr)."
        ),
    ] = False,
    accept: Annotated[
        bool,
        typer.Option(
            "--accept",
            help="Write the suggested checks into headwater.yaml under quality.checks.TABLE (comments kept).",
        ),
    ] = False,
    warehouse: Annotated[
        bool, typer.Option("--warehouse", "-w", help="SOURCE is a table in the project's warehouse.")
    ] = False,
    top: Annotated[int, typer.Option(help="Top values kept per column.", min=1, max=100)] = 10,
    bins: Annotated[int, typer.Option(help="Histogram bins for numbers and dates.", min=2, max=200)] = 20,
) -> None:
    """Profile a new source: per column type, nulls, distinct values, min/max/mean/quantiles, top values,
    histograms, duplicates and anomalies (IQR outliers, values off the dominant shape, dates that do not
    parse or lie out of range), with suggested checks. Two SQL passes in DuckDB, so it scales to GB files.

    Examples:

      headwater profile data/events/2021/01/events.csv --html events.html

      headwater profile data/events --key event_id --json events-profile.json

      headwater profile fact_events --warehouse --html fact_events.html

      headwater profile new.csv --table orders --suggest-checks >> checks.yaml

      headwater profile new.csv --table orders --accept      # into headwater.yaml quality.checks.orders
    """
    from headwater.config import PROJECT_FILE
    from headwater.quality.profile_report import write_profile
    from headwater.quality.profiling import profile
    from headwater.quality.suggest import accept_suggestions, suggestions_yaml

    settings = State.settings()
    quiet = json_out == "-"
    out_console = err_console if (suggest or quiet) else console
    if warehouse:
        if len(source) != 1:
            raise UsageError("--warehouse profiles one table: give its name")
        from headwater.warehouse import warehouse_from_settings

        target: str | list[Path] = source[0]
        wh = warehouse_from_settings(settings)
    else:
        paths = [Path(s) for s in source]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise UsageError(f"{missing[0]}: no such file or folder (a warehouse table? add --warehouse)")
        target, wh = paths, None
    with ByteProgress(enabled=not quiet) as progress:
        prof = profile(
            target, table=table, warehouse=wh, key=key or (), top_n=top, bins=bins,
            temp_dir=settings.resolve(".headwater/tmp/profile"), progress=progress,
        )  # fmt: skip
    write_profile(prof, html_path=html, json_path=None if json_out in (None, "-") else Path(json_out))
    if quiet:
        print_json(prof.to_json())
        return
    out_console.print(_summary(prof))
    for line in _alerts(prof):
        out_console.print(f"[yellow]![/] {escape(line)}", highlight=False)
    out_console.print(f"profiled in {prof.elapsed:.2f} s", style="dim")
    for what, path in (("HTML report", html), ("JSON", json_out)):
        if path is not None:
            out_console.print(f"{what}: {path}")
    if accept:
        project_file = settings.project_dir / PROJECT_FILE
        accept_suggestions(project_file, prof.table, prof.suggested_checks)
        out_console.print(
            f"{len(prof.suggested_checks)} checks written to {project_file} under quality.checks.{prof.table}"
        )
    if suggest:
        sys.stdout.write(suggestions_yaml(prof.table, prof.suggested_checks))
    elif not accept and prof.suggested_checks:
        out_console.print(
            f"{len(prof.suggested_checks)} suggested checks: --suggest-checks prints them, --accept saves them",
            style="dim",
        )


def register(app: typer.Typer) -> None:
    app.command("profile")(profile_command)
