"""``headwater sessions upload | watch | preprocess | list | show | query | fetch | fields | promote``: thin
wrappers over :mod:`headwater.sessions`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, err_console, print_json
from headwater.errors import DataError, HeadwaterError, PreprocessError, StorageError, UsageError
from headwater.sessions.model import FIELD_TYPES, FieldType, SessionStatus
from headwater.storage import VerifyMode
from headwater.units import format_bytes, format_rate

if TYPE_CHECKING:
    from headwater.sessions import SessionRecord
    from headwater.sessions.upload import UploadOutcome, UploadReport

sessions_app = typer.Typer(
    help="""Recording sessions: checked upload to the write-once raw zone, the metadata catalog, \
preprocessing of new sessions only, query and fetch.

The lab's daily flow:

  headwater sessions upload lab/                      # check, quarantine bad folders, upload, catalog
  headwater sessions preprocess                       # every new session, exactly once
  headwater sessions query "fatigue_level >= 3 and hardware_model = 'X200'"
  headwater sessions fetch "site = 'lab-1'" --to ~/sessions   # verified, skips what is already there
""",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
FilterArg = Annotated[
    str,
    typer.Argument(
        help="Filter, e.g. \"fatigue_level >= 3 and hardware_model = 'X200' and recorded_at >= 2021-02-01\"."
    ),
]
STATUS_STYLE = {
    SessionStatus.UPLOADED: "cyan",
    SessionStatus.PREPROCESSING: "magenta",
    SessionStatus.READY: "green",
    SessionStatus.FAILED: "red",
}


def _outcome_style(outcome: UploadOutcome) -> str:
    """The Rich style of an upload outcome (headwater.sessions.upload is imported on use, not at start-up)."""
    from headwater.sessions.upload import UploadOutcome

    styles = {
        UploadOutcome.UPLOADED: "green",
        UploadOutcome.ALREADY: "dim",
        UploadOutcome.QUARANTINED: "yellow",
        UploadOutcome.FAILED: "red",
        UploadOutcome.WAITING: "cyan",
        UploadOutcome.SKIPPED: "dim",
    }
    return styles[outcome]


def _upload_json(report: UploadReport) -> dict[str, Any]:
    return {
        "source": str(report.source),
        "seconds": round(report.seconds, 3),
        "sent_bytes": report.sent_bytes,
        "ok": report.ok,
        "sessions": [
            {
                "session_id": s.session_id,
                "outcome": s.outcome.value,
                "bytes": s.bytes,
                "sent_bytes": s.sent_bytes,
                "files": s.files,
                "seconds": round(s.seconds, 3),
                "message": s.message,
                "problems": list(s.problems),
                "moved_to": str(s.moved_to) if s.moved_to else None,
            }
            for s in report.sessions
        ],
    }


def _print_upload(report: UploadReport) -> None:
    from headwater.sessions.upload import UploadOutcome

    table = Table(title=f"sessions from {report.source}", title_justify="left")
    for col in ("session", "outcome", "files", "size", "note"):
        table.add_column(col, justify="right" if col in ("files", "size") else "left")
    for s in report.sessions:
        note = s.message or ""
        if s.moved_to:
            note = f"{note} -> {s.moved_to}"
        table.add_row(
            s.session_id,
            f"[{_outcome_style(s.outcome)}]{s.outcome.value}[/]",
            str(s.files or ""),
            format_bytes(s.bytes) if s.bytes else "",
            escape(note),
        )
    if report.sessions:
        console.print(table)
    rate = f", {format_rate(report.sent_bytes, report.seconds)}" if report.sent_bytes else ""
    counts = ", ".join(f"{len(report.of(o))} {o.value}" for o in UploadOutcome if report.of(o))
    console.print(
        f"{counts or 'no sessions'}; sent {format_bytes(report.sent_bytes)} in {report.seconds:.1f} s{rate}"
    )


def _upload_error(report: UploadReport) -> HeadwaterError | None:
    from headwater.sessions.upload import UploadOutcome

    quarantined, failed = report.of(UploadOutcome.QUARANTINED), report.of(UploadOutcome.FAILED)
    if failed:
        return StorageError(
            f"{len(failed)} session(s) failed to upload, e.g. {failed[0].message}; re-run to resume"
        )
    if quarantined:
        first = quarantined[0]
        return DataError(
            f"{len(quarantined)} session(s) quarantined, e.g. {first.message} (moved to {first.moved_to})"
        )
    return None


@sessions_app.command()
def upload(
    source: Annotated[Path, typer.Argument(help="A folder of session folders, or one session folder.")],
    verify: Annotated[VerifyMode, typer.Option(help="How each upload is proven.")] = VerifyMode.CHECKSUM,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Files sent in parallel.")] = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive",
            "-r",
            help="Find session folders anywhere below SOURCE (e.g. lab/2021-02/20210228_161221/).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check, quarantine, upload write-once and catalog the session folders in SOURCE.

    Bad folders are moved (never deleted) to the quarantine folder with REASON.txt; the rest go
    write-once to raw/sessions/YYYY/MM/DD/<session>/ and are catalogued once all their files
    verified. A re-run sends only what is missing. A folder holding session folders, or the project's own
    data (storage root, catalog), is skipped, never moved. Exit 3 when a folder was quarantined, 4 on a failed
    upload.

    Examples:

      headwater sessions upload lab/
      headwater sessions upload lab/ --recursive     # sessions in sub-folders too
      headwater sessions upload lab/20210301_161221 --verify full --json
    """
    from headwater.sessions import upload_sessions

    settings = State.settings()
    with ByteProgress(enabled=not as_json) as progress:
        report = upload_sessions(
            settings, source, verify=verify, workers=workers, progress=progress, recursive=recursive
        )
    if as_json:
        print_json(_upload_json(report))
    else:
        _print_upload(report)
    error = _upload_error(report)
    if error is not None:
        raise error


@sessions_app.command()
def watch(
    source: Annotated[Path, typer.Argument(help="The folder the rig writes session folders into.")],
    once: Annotated[bool, typer.Option("--once", help="One pass over complete sessions, then exit.")] = False,
    quiet_seconds: Annotated[
        float | None,
        typer.Option(min=0, help="A session with no change for this long is complete (0: marker only)."),
    ] = None,
    marker: Annotated[
        str | None, typer.Option(help="File whose presence marks a session complete (default: _COMPLETE).")
    ] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between scans.")] = 5.0,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Watch for session folders anywhere below SOURCE.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Upload sessions from SOURCE as they complete (completion marker, or quiet time).

    A session is complete when the completion marker appears in it, or when the folder has been quiet for --quiet-seconds (from headwater.yaml: sessions.completion_marker, quiet_seconds). Runs
    until Ctrl-C; --once makes one pass (for cron). Checks, quarantine and upload as in 'sessions upload'.

    Examples:

      headwater sessions watch /mnt/rig/sessions                       # marker or 60 s quiet
      headwater sessions watch /mnt/rig/sessions --quiet-seconds 0 --marker DONE
      headwater sessions watch lab/ --once --json                      # from cron
    """
    from headwater.sessions import UploadOutcome, watch_sessions

    settings = State.settings()
    stop = False

    def on_pass(report: UploadReport) -> None:
        if as_json:
            return
        if any(s.outcome is not UploadOutcome.WAITING for s in report.sessions):
            _print_upload(report)

    with ByteProgress(enabled=not as_json) as progress:
        try:
            report = watch_sessions(
                settings,
                source,
                marker=marker,
                quiet_seconds=quiet_seconds,
                interval=interval,
                once=once,
                should_stop=lambda: stop,
                on_pass=on_pass,
                progress=progress,
                recursive=recursive,
            )
        except KeyboardInterrupt:
            err_console.print("watch stopped")
            return
    if as_json:
        print_json(_upload_json(report))
    elif once:
        waiting = report.of(UploadOutcome.WAITING)
        if waiting:
            console.print(
                f"{len(waiting)} session(s) not complete yet: {', '.join(s.session_id for s in waiting)}"
            )
    error = _upload_error(report)
    if error is not None:
        raise error


@sessions_app.command()
def preprocess(
    force: Annotated[
        list[str] | None,
        typer.Option("--force", help="Run this session again even when ready (repeatable)."),
    ] = None,
    session: Annotated[
        list[str] | None,
        typer.Option("--session", help="Only this session (repeatable; retries a failed one)."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Sessions preprocessed in parallel.")] = 1,
    no_alert: Annotated[bool, typer.Option("--no-alert", help="Do not send failure alerts.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Preprocess every new session (status 'uploaded') exactly once.

    The function is sessions.preprocessor (an entry point in group headwater.preprocessors, or pkg.module:function; default: per-channel summary statistics as
    Parquet in processed/sessions/...). A failing session is marked failed with the reason and alerted once;
    the others go on. Exit 3 when any failed.

    Examples:

      headwater sessions preprocess
      headwater sessions preprocess --force 20210301_161221       # again, although ready
      headwater sessions preprocess --session 20210301_161221     # retry a failed one
    """
    from headwater.sessions import PreprocessResult, preprocess_pending, preprocess_session

    settings = State.settings()
    results = []
    explicit = [(s, False) for s in session or []] + [(s, True) for s in force or []]
    with ByteProgress(enabled=not as_json) as progress:
        if explicit:
            for sid, forced in explicit:
                try:
                    results.append(preprocess_session(settings, sid, force=forced, alert=not no_alert))
                except UsageError:
                    raise
                except HeadwaterError as exc:
                    results.append(PreprocessResult(sid, SessionStatus.FAILED, True, message=str(exc)))
        else:
            results = preprocess_pending(settings, workers=workers, alert=not no_alert, progress=progress)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        table = Table(title="preprocessing", title_justify="left")
        for col in ("session", "status", "ran", "files", "seconds", "note"):
            table.add_column(col, justify="right" if col in ("files", "seconds") else "left")
        for r in results:
            status = r.status or SessionStatus.FAILED
            table.add_row(
                r.session_id,
                f"[{STATUS_STYLE[status]}]{status.value}[/]",
                "yes" if r.ran else "no",
                str(len(r.files)),
                f"{r.seconds:.1f}",
                escape(r.message or ""),
            )
        if results:
            console.print(table)
        else:
            console.print("no sessions waiting for preprocessing")
    failed = [r for r in results if r.status is SessionStatus.FAILED and r.ran]
    if failed:
        raise PreprocessError(f"{len(failed)} session(s) failed, e.g. {failed[0].message}")


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _sessions_table(records: list[SessionRecord], title: str, uris: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("session", "recorded at", "status", "subject", "fatigue", "hardware", "raw size"):
        table.add_column(col, justify="right" if col in ("fatigue", "raw size") else "left")
    if uris:
        table.add_column("preprocessed files")
    for r in records:
        row = [
            r.session_id,
            _when(r.recorded_at),
            f"[{STATUS_STYLE[r.status]}]{r.status.value}[/]",
            str(r.metadata.get("subject_id", "")),
            str(r.metadata.get("fatigue_level", "")),
            str(r.metadata.get("hardware_model", "")),
            format_bytes(r.raw_bytes),
        ]
        if uris:
            row.append(escape("\n".join(r.processed_uris)))
        table.add_row(*row)
    return table


@sessions_app.command("list")
def list_command(
    status: Annotated[SessionStatus | None, typer.Option(help="Only sessions in this state.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the catalogued sessions, oldest recording first.

    Examples:

      headwater sessions list
      headwater sessions list --status failed --json
    """
    from headwater.sessions import open_catalog

    records = open_catalog(State.settings()).list_sessions(status, limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    console.print(_sessions_table(records, f"{len(records)} session(s)"))


@sessions_app.command()
def show(
    session_id: Annotated[str, typer.Argument(help="A session id (its folder name).")],
    as_json: JsonOpt = False,
) -> None:
    """Show one session: metadata, files (key, size, sha256) and state changes.

    Example:

      headwater sessions show 20210301_161221
    """
    from headwater.sessions import open_catalog

    catalog = open_catalog(State.settings())
    record = catalog.get(session_id)
    if record is None:
        raise UsageError(f"session {session_id}: not in the catalog {catalog.url}")
    events = catalog.events(session_id)
    if as_json:
        print_json(record.to_dict() | {"events": events})
        return
    status = f"[{STATUS_STYLE[record.status]}]{record.status.value}[/]"
    console.print(f"[bold]{record.session_id}[/] recorded {_when(record.recorded_at)}, {status}")
    if record.reason:
        console.print(f"[red]reason:[/] {escape(record.reason)}")
    meta = Table(title="metadata", title_justify="left")
    meta.add_column("field")
    meta.add_column("value")
    for k, v in record.metadata.items():
        meta.add_row(k, escape(str(v)))
    console.print(meta)
    files = Table(title="files", title_justify="left")
    for col in ("zone", "uri", "size", "sha256"):
        files.add_column(col, justify="right" if col == "size" else "left")
    for f in record.files:
        files.add_row(f.zone.value, escape(f.uri), format_bytes(f.bytes), f.sha256[:16] + "...")
    console.print(files)
    for e in events:
        console.print(f"  {_when(e['at'])}  {e['status']}  {escape(e['reason'] or '')}", highlight=False)


@sessions_app.command()
def query(filter_text: FilterArg, as_json: JsonOpt = False) -> None:
    """Find sessions by their metadata; lists their preprocessed file URIs.

    The filter language: comparisons
    (= != < <= > >=), and / or / not, parentheses, 'in (...)', 'is [not] null'; values are numbers, 'text',
    dates (2021-02-01) and times (2021-02-01T08:30). Field names are checked against the catalog
    ('headwater sessions fields'); values are always bound as parameters, never pasted into SQL.

    Examples:

      headwater sessions query "fatigue_level >= 3 and hardware_model = 'X200' and recorded_at >= 2021-02-01"
      headwater sessions query "site in ('lab-1', 'lab-2') and not status = 'failed'" --json
      headwater sessions query "room_temperature_c > 22.5 or operator is null"
    """
    from headwater.sessions import open_catalog

    records = open_catalog(State.settings()).query(filter_text)
    if as_json:
        print_json([r.to_dict() | {"processed_uris": r.processed_uris} for r in records])
        return
    console.print(_sessions_table(records, f"{len(records)} matching session(s)", uris=True))


@sessions_app.command("fetch")
def fetch_command(
    filter_text: FilterArg,
    to: Annotated[Path, typer.Option("--to", help="Local folder; files go to DIR/<session>/.")],
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Files fetched in parallel.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download the preprocessed files of the sessions matching a filter, verified.

    Each file is checked against its sha256 before it is put in place; files already present and matching are skipped.

    Examples:

      headwater sessions fetch "fatigue_level >= 3" --to ~/data/sessions
      headwater sessions fetch "recorded_on = 2021-03-01" --to /scratch/s --json
    """
    from headwater.sessions import fetch

    with ByteProgress(enabled=not as_json) as progress:
        report = fetch(State.settings(), filter_text, to, workers=workers, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    fetched = sum(s.fetched for s in report.sessions)
    skipped = sum(s.skipped for s in report.sessions)
    console.print(
        f"fetch: {len(report.sessions)} session(s), {fetched} files fetched, {skipped} already present, "
        f"{format_bytes(report.bytes)} in {report.seconds:.1f} s -> [bold]{escape(str(report.destination))}[/]"
    )
    if report.not_ready:
        names = ", ".join(f"{sid} ({status})" for sid, status in report.not_ready)
        console.print(f"[yellow]not ready, nothing fetched:[/] {names}")


@sessions_app.command()
def fields(as_json: JsonOpt = False) -> None:
    """List the fields a filter can name, and the catalog's schema history.

    Type 'json' marks a metadata field without a typed column yet (see 'promote').

    Example:

      headwater sessions fields
    """
    from headwater.sessions import open_catalog

    catalog = open_catalog(State.settings())
    known = catalog.fields()
    history = catalog.history()
    if as_json:
        print_json({"fields": known, "history": history})
        return
    table = Table(title=f"fields of {catalog.url}", title_justify="left")
    table.add_column("field")
    table.add_column("type")
    for name, kind in sorted(known.items()):
        table.add_row(name, kind)
    console.print(table)
    for h in history:
        console.print(
            f"  v{h['version']} {_when(h['applied_at'])} {h['change']} {h['detail']}", highlight=False
        )


@sessions_app.command()
def promote(
    field: Annotated[str, typer.Argument(help="A metadata field now held in the JSON column.")],
    kind: Annotated[str, typer.Option("--type", help=f"Column type: {', '.join(FIELD_TYPES)}.")],
    as_json: JsonOpt = False,
) -> None:
    """Give a metadata field its own typed column (schema evolution).

    The column is added, every session's value moved into it
    (converted; one value that does not convert aborts the whole change, naming the session) and the change
    recorded in the schema history, in one transaction. New fields need no promotion to be stored or queried.

    Example:

      headwater sessions promote room_temperature_c --type float
    """
    from headwater.sessions import open_catalog

    if kind not in FIELD_TYPES:
        raise UsageError(f"--type {kind!r}: expected one of {', '.join(FIELD_TYPES)}")
    typed: FieldType = kind
    result = open_catalog(State.settings()).promote(field, typed)
    if as_json:
        print_json(
            {
                "field": result.field,
                "type": result.type,
                "sessions": result.sessions,
                "version": result.version,
            }
            | {"already": result.already}
        )
        return
    if result.already:
        console.print(f"{result.field} is already a {result.type} column; nothing changed")
    else:
        console.print(
            f"promoted {result.field} to a {result.type} column: {result.sessions} session(s) moved, "
            f"schema version {result.version}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
