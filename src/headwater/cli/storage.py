"""``headwater push | pull | verify`` and ``headwater storage check | janitor``: thin wrappers over
:mod:`headwater.storage`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from headwater.cli.app import State
from headwater.cli.console import ByteProgress, console, print_json
from headwater.errors import IntegrityError
from headwater.storage import (
    Encryption,
    FileStatus,
    Location,
    StoreOptions,
    TransferReport,
    VerifyMode,
    Zone,
    build_batch_prefix,
    check_bucket,
    open_store,
    parse_location,
    pull_batch,
    push_batch,
    run_janitor,
    verify_batch,
    zone_of,
)
from headwater.units import format_bytes, format_rate

EndpointOpt = Annotated[
    str | None, typer.Option(help="S3-compatible endpoint URL (default: from headwater.yaml).")
]
InsecureOpt = Annotated[
    bool, typer.Option("--allow-insecure-http", help="Allow plain http to a non-loopback endpoint.")
]
CaOpt = Annotated[Path | None, typer.Option(help="PEM bundle of the CA that signed a private endpoint.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[int, typer.Option(min=1, max=64, help="Files transferred in parallel.")]


def build_options(
    endpoint_url: str | None = None,
    allow_insecure_http: bool = False,
    ca_bundle: Path | None = None,
    sse: Encryption | None = None,
    kms_key_id: str | None = None,
) -> StoreOptions:
    """Store options from headwater.yaml (and HEADWATER_STORAGE__*), overridden by command-line flags."""
    cfg = State.settings().storage
    return StoreOptions(
        endpoint_url=endpoint_url or cfg.endpoint_url,
        region=cfg.region,
        path_style=cfg.path_style,
        allow_insecure_http=allow_insecure_http or cfg.allow_insecure_http,
        ca_bundle=str(ca_bundle) if ca_bundle else cfg.ca_bundle,
        encryption=sse,
        kms_key_id=kms_key_id,
    )


def _report_json(report: TransferReport) -> dict[str, Any]:
    return {
        "source": report.source,
        "destination": report.destination,
        "dry_run": report.dry_run,
        "seconds": round(report.seconds, 3),
        "bytes": report.total_bytes,
        "files": [
            {k: v for k, v in asdict(f).items() if k != "error"} | {"status": f.status.value}
            for f in report.files
        ],
    }


def _print_summary(report: TransferReport, verb: str) -> None:
    size = format_bytes(report.total_bytes)
    rate = f", {format_rate(report.sent_bytes, report.seconds)}" if report.sent_bytes else ""
    if report.dry_run:
        planned = [f.path for f in report.files if f.status is FileStatus.PLANNED]
        console.print(f"dry run: would {verb} {len(planned)} of {len(report.files)} files ({size})")
        for path in planned:
            console.print(f"  {path}")
        return
    console.print(
        f"{verb}: {report.count(FileStatus.VERIFIED)} files verified, {report.count(FileStatus.SKIPPED)} already "
        f"present, {size} in {report.seconds:.1f} s{rate} -> [bold]{report.destination}[/]"
    )


def _batch_location(
    dest: Location, zone: Zone, dataset: str | None, day: date | None, batch_id: str
) -> Location:
    if dataset is None:
        return dest
    prefix = build_batch_prefix(zone, dataset, day or datetime.now(UTC).date(), batch_id)
    if dest.path is not None:
        return Location(dest.scheme, path=dest.path / str(prefix))
    return Location(dest.scheme, bucket=dest.bucket, prefix=dest.child(str(prefix)))


def push(
    source: Annotated[Path, typer.Argument(help="A file or a batch folder to send.", exists=True)],
    dest: Annotated[
        str | None, typer.Argument(help="Destination: a folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Build the key <zone>/<dataset>/<yyyy>/<mm>/<dd>/<batch-id>/ under DEST."),
    ] = None,
    zone: Annotated[Zone, typer.Option(help="Zone for --dataset.")] = Zone.LANDING,
    batch_id: Annotated[
        str | None, typer.Option(help="Batch id for --dataset (default: SOURCE's name).")
    ] = None,
    day: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="Batch date for --dataset (default: today, UTC)."),
    ] = None,
    verify: Annotated[VerifyMode, typer.Option(help="How each upload is proven.")] = VerifyMode.CHECKSUM,
    write_once: Annotated[
        bool | None,
        typer.Option(
            "--write-once/--overwrite", help="Refuse to replace objects (default: only in landing/)."
        ),
    ] = None,
    workers: WorkersOpt = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")
    ] = False,
    sse: Annotated[Encryption | None, typer.Option(help="Server-side encryption on upload.")] = None,
    kms_key_id: Annotated[str | None, typer.Option(help="KMS key for --sse aws:kms.")] = None,
    endpoint_url: EndpointOpt = None,
    allow_insecure_http: InsecureOpt = False,
    ca_bundle: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send SOURCE to DEST as one batch: each file hashed while read, verified after upload, skipped on a
    re-run when already verified; the batch manifest is written last. landing/ is write-once."""
    base = parse_location(dest or State.settings().storage_root)
    location = _batch_location(
        base, zone, dataset, day.date() if day else None, batch_id or source.resolve().name
    )
    detected = zone if dataset is not None else zone_of(str(location))
    once = write_once if write_once is not None else detected is not None and detected.write_once
    store = open_store(location, build_options(endpoint_url, allow_insecure_http, ca_bundle, sse, kms_key_id))
    with ByteProgress(enabled=not as_json and not dry_run) as progress:
        report = push_batch(
            source, store, write_once=once, verify=verify, workers=workers, dry_run=dry_run, progress=progress
        )
    if as_json:
        print_json(_report_json(report))
    else:
        _print_summary(report, "push")


def pull(
    source: Annotated[str, typer.Argument(help="A batch: folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")],
    dest: Annotated[Path, typer.Argument(help="Local folder to write the files into.")],
    workers: WorkersOpt = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be fetched; fetch nothing.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    allow_insecure_http: InsecureOpt = False,
    ca_bundle: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a batch into DEST, each file checked against the manifest's sha256 before it is put in place."""
    store = open_store(parse_location(source), build_options(endpoint_url, allow_insecure_http, ca_bundle))
    with ByteProgress(enabled=not as_json and not dry_run) as progress:
        report = pull_batch(store, dest, workers=workers, dry_run=dry_run, progress=progress)
    if as_json:
        print_json(_report_json(report))
    else:
        _print_summary(report, "pull")


def verify(
    url: Annotated[str, typer.Argument(help="A batch: folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")],
    mode: Annotated[
        VerifyMode, typer.Option("--verify", help="size, checksum, or full (read back).")
    ] = VerifyMode.FULL,
    workers: WorkersOpt = 4,
    endpoint_url: EndpointOpt = None,
    allow_insecure_http: InsecureOpt = False,
    ca_bundle: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-check every file of a batch against its manifest (exit 4 on any difference)."""
    store = open_store(parse_location(url), build_options(endpoint_url, allow_insecure_http, ca_bundle))
    report = verify_batch(store, mode=mode, workers=workers)
    if as_json:
        print_json(
            {
                "url": report.url,
                "mode": report.mode.value,
                "checked": report.checked,
                "problems": report.problems,
            }
        )
    else:
        for problem in report.problems:
            console.print(f"[red]bad:[/] {problem}", highlight=False)
        console.print(
            f"verify ({mode}): {report.checked - len(report.problems)} of {report.checked} files ok"
        )
    if not report.ok:
        raise IntegrityError(
            f"{url}: {len(report.problems)} of {report.checked} files differ from the manifest"
        )


storage_app = typer.Typer(
    help="Storage housekeeping: bucket protection checks, leftover cleanup.", no_args_is_help=True
)


@storage_app.command()
def check(
    url: Annotated[str, typer.Argument(help="Storage root: folder, s3://BUCKET or s3://BUCKET/PREFIX.")],
    endpoint_url: EndpointOpt = None,
    allow_insecure_http: InsecureOpt = False,
    ca_bundle: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report whether the bucket has versioning and object lock, and warn where raw data could be erased."""
    report = check_bucket(parse_location(url), build_options(endpoint_url, allow_insecure_http, ca_bundle))
    if as_json:
        print_json(asdict(report))
        return
    console.print(f"{report.url}: versioning {report.versioning}, object lock {report.object_lock}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@storage_app.command()
def janitor(
    url: Annotated[
        str, typer.Argument(help="Storage root or prefix: folder, s3://BUCKET or s3://BUCKET/PREFIX.")
    ],
    older_than_hours: Annotated[float, typer.Option(min=0, help="Only leftovers older than this.")] = 24.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List leftovers; remove nothing.")] = False,
    endpoint_url: EndpointOpt = None,
    allow_insecure_http: InsecureOpt = False,
    ca_bundle: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Abort multipart uploads (S3) or delete temp files (local) that killed transfers left behind."""
    options = build_options(endpoint_url, allow_insecure_http, ca_bundle)
    location = parse_location(url)
    report = run_janitor(
        location,
        open_store(location, options),
        options,
        older_than=timedelta(hours=older_than_hours),
        dry_run=dry_run,
    )
    if as_json:
        print_json(asdict(report))
        return
    for item in report.found:
        console.print(f"  {item}", highlight=False)
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"janitor: {verb} {len(report.found) if dry_run else report.removed} leftovers under {report.url}"
    )


def register(app: typer.Typer) -> None:
    app.command()(push)
    app.command()(pull)
    app.command()(verify)
    app.add_typer(storage_app, name="storage")
