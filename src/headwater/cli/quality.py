"""``headwater check`` and ``headwater quarantine list | show | release | drop``: thin over
:mod:`headwater.quality` (``headwater profile`` lives in :mod:`headwater.cli.profile`)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import console, err_console, print_json
from headwater.errors import DataError, QualityGateError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.quality import (
        BatchTarget,
        Check,
        CheckReport,
        HistoryStore,
        QuarantineEntry,
        WarehouseTarget,
    )

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

quarantine_app = typer.Typer(
    help="Rows held back by a pipeline or a quality gate: see why, release them after a fix, or drop them.\n\n"
    "Examples:\n\n"
    "  headwater quarantine list                       # what is held, per entry\n\n"
    "  headwater quarantine list --summary --batch events-2021-01-9f2c\n\n"
    "  headwater quarantine show q-1a2b3c              # sample rows with their reasons\n\n"
    "  headwater quarantine release q-1a2b3c --note 'parser fixed'   # rows re-enter as a new batch\n\n"
    "  headwater quarantine drop q-1a2b3c --reason 'test data, not real events'",
    no_args_is_help=True,
)


# ------------------------------------------------------------------------------------------------ check
def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(path.rglob("*.parquet")) or sorted(path.rglob("*.csv"))
        if not found:
            raise UsageError(f"{path}: holds no .parquet or .csv files to check")
        return found
    return [path]


def _parse_partition(values: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--partition {item!r}: expected COLUMN=VALUE, e.g. event_month=2021-01-01")
        value: Any = raw
        for parse in (int, float, dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                value = parse(raw)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def _refs(values: list[str] | None) -> dict[str, Path]:
    out = {}
    for item in values or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise UsageError(f"--ref {item!r}: expected TABLE=PATH, e.g. users=data/users.parquet")
        out[name] = Path(path)
    return out


def _render_report(report: CheckReport, sample_rows: int) -> None:
    table = Table(title=f"{report.table}: {report.rows:,} rows on {report.engine} in {report.elapsed:.2f}s")
    table.add_column("check", no_wrap=True, overflow="ellipsis", max_width=44)
    table.add_column("result", no_wrap=True)
    for col in ("failing", "rows", "ms"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for r in report.results:
        status = (
            "[green]pass[/]" if r.passed else ("[red]FAIL[/]" if r.severity == "error" else "[yellow]warn[/]")
        )
        table.add_row(
            escape(r.name), status, f"{r.failing_count:,}", f"{r.total_rows:,}", f"{r.elapsed * 1000:.0f}",
            escape(r.message),
        )  # fmt: skip
    console.print(table)
    for r in report.results:
        if r.samples is not None and r.samples.num_rows and sample_rows:
            console.print(f"[bold]{escape(r.name)}[/]: {r.samples.num_rows} sample failing row(s)")
            console.print(_rows_table(r.samples))


def _rows_table(rows: pa.Table, limit: int = 20) -> Table:
    out = Table()
    for name in rows.column_names:
        out.add_column(escape(name), overflow="fold")
    for row in rows.slice(0, limit).to_pylist():
        out.add_row(*(escape("" if v is None else str(v)) for v in row.values()))
    return out


def check(
    target: Annotated[
        str, typer.Argument(help="A warehouse table, or a Parquet/CSV file or folder (checked in place).")
    ],
    checks_file: Annotated[
        Path | None,
        typer.Option("--checks", help="YAML with checks (default: headwater.yaml quality.checks.<table>)."),
    ] = None,
    table_name: Annotated[
        str | None,
        typer.Option("--table", "-t", help="Table name whose checks apply to a PATH (default: file stem)."),
    ] = None,
    partition: Annotated[
        list[str] | None,
        typer.Option("--partition", help="Check one partition of a table: COLUMN=VALUE (repeatable)."),
    ] = None,
    ref: Annotated[
        list[str] | None,
        typer.Option("--ref", help="A referenced table for relationships checks on a PATH: TABLE=FILE."),
    ] = None,
    batch_id: Annotated[str | None, typer.Option(help="Batch id recorded in the history.")] = None,
    all_varchar: Annotated[
        bool, typer.Option(help="Read CSV columns as text (check raw values with castable/regex).")
    ] = False,
    sample: Annotated[
        int | None, typer.Option(help="Failing rows to show per check (default quality.sample_rows).")
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Show recorded results and trends instead of checking.")
    ] = False,
    record: Annotated[bool, typer.Option(help="Append the results to the checks history.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run data quality checks on a warehouse TABLE or a PATH, print results with sample failing rows.

    Exits 3 when an error-severity check fails (warn failures only report), 0 otherwise.

    Examples:

      headwater check fact_events                              # checks from headwater.yaml

      headwater check fact_events --partition event_month=2021-01-01

      headwater check data/processed/events --table fact_events --json

      headwater check events.csv --checks checks.yaml --all-varchar

      headwater check fact_events --history                    # trends, flaky checks
    """
    from headwater.quality import (
        BatchTarget,
        HistoryStore,
        WarehouseTarget,
        checks_for_table,
        load_checks_file,
        previous_rows,
        record_history,
        run_checks,
    )
    from headwater.quality.checks import RowCountCheck
    from headwater.warehouse import warehouse_from_settings

    settings = State.settings()
    path = Path(target)
    is_path = path.exists() or any(s in target for s in ("/", "\\")) or path.suffix in (".csv", ".parquet")
    name = table_name or (path.stem if is_path else target)
    wh = warehouse_from_settings(settings)
    store = HistoryStore.for_settings(settings, None if is_path else wh)
    if history:
        stores = [HistoryStore.for_settings(settings)]
        wh_path = getattr(wh, "path", None)
        if wh_path is None or Path(wh_path).exists():  # reading must not create an empty DuckDB file
            stores.insert(0, HistoryStore.for_settings(settings, wh))
        _show_history(stores, name, as_json)
        return
    if is_path and not path.exists():
        raise DataError(f"{path}: not found")
    checks: list[Check]
    if checks_file is not None:
        found = load_checks_file(checks_file, name)
        if name not in found:
            raise UsageError(
                f"{checks_file}: no checks for table {name}; it has {', '.join(found) or 'none'}"
            )
        checks = found[name]
    else:
        checks = checks_for_table(settings, name)
    if not checks:
        raise UsageError(
            f"no checks declared for {name}: add quality.checks.{name} to headwater.yaml or pass --checks"
        )
    parts = _parse_partition(partition)
    if is_path:
        opts = {"all_varchar": True} if all_varchar else None
        tgt: BatchTarget | WarehouseTarget = BatchTarget.from_files(
            _files(path), name, refs=_refs(ref), warehouse=wh, csv_options=opts
        )
    else:
        if ref:
            raise UsageError(
                "--ref applies to a PATH; a warehouse table's references are read from the warehouse"
            )
        tgt = WarehouseTarget(wh, target, partition=parts)
    label = ",".join(f"{k}={v}" for k, v in parts.items()) or None
    needs_previous = any(isinstance(c, RowCountCheck) and c.max_change_pct is not None for c in checks)
    previous = previous_rows(store, name, batch_id) if needs_previous else None
    try:
        with err_console.status(f"checking {name}: {len(checks)} checks", spinner="dots"):
            report = run_checks(
                tgt, checks, sample_rows=settings.quality.sample_rows if sample is None else sample,
                batch_id=batch_id, partition=label, previous_rows=previous,
            )  # fmt: skip
    finally:
        tgt.close()
    if record:
        record_history(store, report)
    if as_json:
        print_json(report.to_json())
    else:
        _render_report(report, settings.quality.sample_rows if sample is None else sample)
    if not report.passed:
        names = ", ".join(r.name for r in report.failed_errors)
        if as_json:
            raise typer.Exit(QualityGateError.exit_code)
        raise QualityGateError(f"{name}: {len(report.failed_errors)} error check(s) failed: {names}")
    if report.failed_warnings and not as_json:
        err_console.print(f"[yellow]{len(report.failed_warnings)} warning(s)[/]; every error check passed")


def _show_history(stores: list[HistoryStore], table: str, as_json: bool) -> None:
    from headwater.quality import read_history, trends

    rows = sorted(
        (r for st in stores for r in read_history(st, table=table, limit=1000)),
        key=lambda r: (r["checked_at"], r["check_name"]),
        reverse=True,
    )
    where = " + ".join(st.describe() for st in stores)
    summary = trends(rows)
    if as_json:
        print_json(
            {
                "table": table,
                "stores": [st.describe() for st in stores],
                "trends": [t.__dict__ | {"flaky": t.flaky} for t in summary],
                "runs": rows[:200],
            }
        )
        return
    if not rows:
        console.print(f"no checks recorded for {table} in {where}")
        return
    out = Table(title=f"{table}: checks over the last runs")
    for col in ("check", "runs", "failures", "flips", "last", "last run", "note"):
        out.add_column(col)
    for t in summary:
        last = "[green]pass[/]" if t.last_passed else "[red]fail[/]"
        note = "[yellow]flaky[/]" if t.flaky else ""
        out.add_row(
            escape(t.check),
            str(t.runs),
            str(t.failures),
            str(t.flips),
            last,
            f"{t.last_at:%Y-%m-%d %H:%M}",
            note,
        )
    console.print(out)
    recent = Table(title="most recent results")
    for col in ("checked at", "batch", "check", "passed", "failing", "rows"):
        recent.add_column(col)
    for row in rows[:20]:
        recent.add_row(
            f"{row['checked_at']:%Y-%m-%d %H:%M:%S}", escape(str(row.get("batch_id") or "")), escape(row["check_name"]),
            "yes" if row["passed"] else "[red]no[/]", f"{int(row['failing_count'] or 0):,}", f"{int(row['total_rows'] or 0):,}",
        )  # fmt: skip
    console.print(recent)


# ------------------------------------------------------------------------------------------- quarantine
def _entry_row(e: QuarantineEntry) -> dict[str, Any]:
    return {
        "entry": e.entry_id,
        "dataset": e.dataset,
        "batch": e.batch_id,
        "rows": e.rows,
        "state": e.state.value,
        "held by": ", ".join(e.checks) or (e.check or ""),
    }


def quarantine_list(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch id.")] = None,
    check_name: Annotated[str | None, typer.Option("--check", help="Only rows held by this check.")] = None,
    state: Annotated[str, typer.Option(help="held (default), released, dropped or all.")] = "held",
    summary: Annotated[
        bool, typer.Option(help="Counts per dataset, batch, check and state instead of entries.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """What was held back and why: one line per entry (or counts with --summary).

    Examples:

      headwater quarantine list

      headwater quarantine list --dataset events --state all --json

      headwater quarantine list --summary
    """
    from headwater.quality import EntryState, list_quarantine
    from headwater.quality.quarantine import summarize

    if state not in ("all", *(s.value for s in EntryState)):
        raise UsageError(f"--state {state!r}: expected held, released, dropped or all")
    wanted = None if state == "all" else EntryState(state)
    entries = list_quarantine(State.settings(), dataset, batch_id=batch, check=check_name, state=wanted)
    if summary:
        groups = summarize(entries)
        if as_json:
            print_json(groups)
            return
        out = Table(title="quarantine summary")
        for col in ("dataset", "batch_id", "check", "state", "rows", "entries"):
            out.add_column(col, justify="right" if col in ("rows", "entries") else "left")
        for g in groups:
            out.add_row(*(escape(f"{g[c]:,}" if isinstance(g[c], int) else str(g[c])) for c in g))
        console.print(out)
        return
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    if not entries:
        console.print(f"nothing {'' if state == 'all' else state + ' '}in quarantine")
        return
    out = Table(title=f"quarantine: {len(entries)} entries, {sum(e.rows for e in entries):,} rows")
    for col in _entry_row(entries[0]):
        wrap = col in ("held by", "batch")
        out.add_column(
            col,
            justify="right" if col == "rows" else "left",
            no_wrap=not wrap,
            overflow="fold",
            min_width=12 if wrap else None,
        )
    for e in entries:
        out.add_row(*(escape(f"{v:,}" if isinstance(v, int) else str(v)) for v in _entry_row(e).values()))
    console.print(out)


def quarantine_show(
    entry: Annotated[str, typer.Argument(help="Entry id (or a unique prefix, or DATASET/ID).")],
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """One entry: where the rows came from, why they were held, and sample rows with their reasons.

    Examples:

      headwater quarantine show q-1a2b3c

      headwater quarantine show events/q-1a2b3c4d5e6f7a8b --limit 100 --json
    """
    from headwater.quality import show_quarantine

    found, rows = show_quarantine(State.settings(), entry, limit)
    if as_json:
        print_json({**found.to_json(), "sample": rows.to_pylist()})
        return
    info = Table(show_header=False, title=f"quarantine entry {found.entry_id}", title_justify="left")
    info.add_column("field", style="bold")
    info.add_column("value", overflow="fold")
    for key, value in (
        ("state", found.state.value), ("dataset", found.dataset), ("batch", found.batch_id),
        ("source", found.source), ("check", ",".join(found.checks) or (found.check or "")),
        ("rows", f"{found.rows:,}"), ("stored at", found.uri or "(dropped)"), ("created", found.created_at),
        ("reasons", "; ".join(f"{k} ({v:,})" for k, v in found.reasons.items())),
    ):  # fmt: skip
        info.add_row(key, escape(str(value)))
    if found.resolution is not None:
        res = found.resolution
        info.add_row(res.action.value, escape(f"{res.at} by {res.by}: {res.note}"))
        if res.release_batch:
            info.add_row("release batch", escape(res.release_batch))
    console.print(info)
    if rows.num_rows:
        console.print(f"first {rows.num_rows:,} of {found.rows:,} rows")
        console.print(_rows_table(rows, limit))


def _read_replacement(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: not found")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read the replacement rows: {str(exc).splitlines()[0]}") from exc


def quarantine_release(
    entries: Annotated[list[str], typer.Argument(help="Entry ids to release (same dataset).")],
    note: Annotated[str, typer.Option(help="Why the rows may go now (kept in the ledger).")] = "",
    with_file: Annotated[
        Path | None,
        typer.Option("--with", help="Fixed rows (CSV or Parquet) to release in place of one entry's rows."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Release held rows after a fix: they re-enter the pipeline as a new batch.

    The rows are written to the working zone as a batch with a manifest; the pipeline picks it up on its
    next run, checks it again and loads it (rows that still fail are quarantined again).

    Examples:

      headwater quarantine release q-1a2b3c --note "event_type 'signup' is now accepted"

      headwater quarantine release q-1a2b3c --with fixed.csv --note "timestamps corrected by hand"
    """
    from headwater.quality import release_quarantine

    replacement = _read_replacement(with_file) if with_file else None
    released = release_quarantine(State.settings(), entries, note=note, replacement=replacement)
    if as_json:
        print_json(released.to_json())
        return
    console.print(
        f"released {released.rows:,} rows of {len(released.entries)} entr{'y' if len(released.entries) == 1 else 'ies'} "
        f"as batch [bold]{escape(released.batch_id)}[/] ({escape(released.uri)})"
    )
    console.print(
        f"the {escape(released.dataset)} pipeline picks it up on its next run "
        "(headwater.quality.released_batches), checks it again and loads it"
    )


def quarantine_drop(
    entry: Annotated[str, typer.Argument(help="Entry id to drop.")],
    reason: Annotated[
        str, typer.Option(help="Why the rows are discarded (required; kept in the ledger).")
    ] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Discard held rows for good, with a recorded reason.

    Their files are deleted; the ledger keeps the record (who, when, why, and the sha256 of what was
    deleted). Nothing in quarantine is deleted any other way.

    Examples:

      headwater quarantine drop q-1a2b3c --reason "synthetic test rows" --yes
    """
    from headwater.quality import drop_quarantine, show_quarantine

    if not reason.strip():
        raise UsageError("quarantine drop: give --reason; it is kept in the ledger")
    settings = State.settings()
    if not yes:
        found, _ = show_quarantine(settings, entry, 0)
        if not sys.stdin.isatty():
            raise UsageError(f"quarantine drop {found.entry_id}: confirm with --yes (no terminal to ask)")
        typer.confirm(
            f"delete {found.rows:,} rows of {found.entry_id} ({found.dataset}/{found.batch_id})?", abort=True
        )
    dropped = drop_quarantine(settings, entry, reason=reason)
    if as_json:
        print_json(dropped.to_json())
        return
    console.print(f"dropped {dropped.rows:,} rows of {escape(dropped.entry_id)}; the ledger keeps the record")


def register(app: typer.Typer) -> None:
    app.command()(check)
    quarantine_app.command("list")(quarantine_list)
    quarantine_app.command("show")(quarantine_show)
    quarantine_app.command("release")(quarantine_release)
    quarantine_app.command("drop")(quarantine_drop)
    app.add_typer(quarantine_app, name="quarantine")
    if importlib.util.find_spec("headwater.cli.profile") is not None:  # ``headwater profile``
        importlib.import_module("headwater.cli.profile").register(app)
