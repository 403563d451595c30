"""Recording-sessions benchmark: a lab's day (10 sessions of 600 MB) generated with the built-in ``sessions``
dataset, uploaded write-once and verified to an S3 endpoint (a moto server on loopback), catalogued in
PostgreSQL, preprocessed by the default summary preprocessor, queried and fetched; then uploaded again to a
local-folder raw zone (SQLite catalog). Prints seconds and MB/s per stage.

    ./dev.sh bench sessions                                  # the full day: 10 x 600 MB
    ./dev.sh bench sessions --sessions 2 --size 50MB         # a quick run

Goal: the whole day uploaded, verified and catalogued in under 2 minutes. moto itself caps uploads near
140 MB/s and keeps every object in memory (6 GB here): the S3 row measures moto as much as headwater, so the
run also times boto3 ``upload_file`` of one session to the same server as that ceiling.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from headwater.config import Settings, load_settings
from headwater.generate.sessions import SessionOptions, generate_sessions
from headwater.sessions import fetch, open_catalog, preprocess_pending, query
from headwater.sessions.catalog import Catalog
from headwater.sessions.model import FileRef
from headwater.sessions.upload import Uploader, find_session_folders
from headwater.sessions.validate import ValidSession
from headwater.units import parse_size

CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROWS: list[tuple[str, str, float, float]] = []


class TimedCatalog(Catalog):
    """The catalog with the time spent writing session rows accounted separately."""

    seconds = 0.0

    def record_upload(self, session: ValidSession, files: Sequence[FileRef], raw_prefix: str) -> bool:
        started = time.perf_counter()
        try:
            return super().record_upload(session, files, raw_prefix)
        finally:
            TimedCatalog.seconds += time.perf_counter() - started


def row(target: str, stage: str, seconds: float, megabytes: float) -> None:
    ROWS.append((target, stage, seconds, megabytes))
    rate = f"{megabytes / seconds:9.1f} MB/s" if seconds > 0 and megabytes else ""
    print(f"  {target:<16} {stage:<52} {seconds:8.2f} s {rate}", flush=True)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDS},
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def project(folder: Path, storage: dict[str, Any], sessions: dict[str, Any]) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "bench-lab", "storage": storage, "sessions": sessions}
    (folder / "headwater.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_settings(folder, env={})


def pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def run_day(
    target: str, settings: Settings, lab: Path, day_mb: float, *, preprocess: bool, out: Path
) -> None:
    TimedCatalog.seconds = 0.0
    base = open_catalog(settings)
    catalog = TimedCatalog(base.backend, base.storage_root)
    uploader = Uploader(settings, catalog=catalog)
    started = time.perf_counter()
    report = uploader.run(find_session_folders(lab, settings.sessions.metadata_file), lab)
    upload_s = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"upload failed: {[s.message for s in report.sessions if s.message]}")
    row(target, f"upload + verify + catalog ({len(report.sessions)} sessions)", upload_s, day_mb)
    row(target, "  of which catalog transactions", TimedCatalog.seconds, 0)
    verdict = "met" if upload_s < 120 else "MISSED"
    print(f"  {target:<16} goal: the day's volume in under 120 s: {verdict} ({upload_s:.1f} s)", flush=True)
    started = time.perf_counter()
    again = uploader.run(find_session_folders(lab, settings.sessions.metadata_file), lab)
    row(target, f"re-run (nothing to send: {again.sent_bytes} bytes sent)", time.perf_counter() - started, 0)
    if not preprocess:
        return
    started = time.perf_counter()
    results = preprocess_pending(settings, workers=2, alert=False)
    failed = [r for r in results if r.status is None or r.status.value != "ready"]
    if failed:
        raise SystemExit(f"preprocessing failed: {failed[0].message}")
    row(
        target,
        f"preprocess ({len(results)} sessions, 2 at a time)",
        time.perf_counter() - started,
        day_mb,
    )
    for part, what in (
        ("raw", "fetch + sha256 check of raw"),
        ("compute", "summary statistics"),
        ("store", "push"),
    ):
        row(target, f"  sum over sessions: {what}", sum(r.timings.get(part, 0.0) for r in results), day_mb)
    started = time.perf_counter()
    found = query(settings, "fatigue_level >= 3 and recorded_at >= 2021-02-01")
    row(target, f"query ({len(found)} sessions match)", time.perf_counter() - started, 0)
    started = time.perf_counter()
    fetched = fetch(settings, "fatigue_level >= 1", out / f"fetched-{target.split()[0]}")
    row(
        target,
        f"fetch processed files ({len(fetched.sessions)} sessions)",
        time.perf_counter() - started,
        fetched.bytes / 1e6,
    )


def boto3_ceiling(endpoint: str, bucket: str, session: Path) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    files = sorted(p for p in session.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files) / 1e6
    config = TransferConfig(max_concurrency=4)
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), bucket, f"boto3/{session.name}/{path.name}", Config=config)
    row("moto S3", "boto3 upload_file, one session (moto's ceiling)", time.perf_counter() - started, total)
    for path in files:
        client.delete_object(Bucket=bucket, Key=f"boto3/{session.name}/{path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", default="600MB", help="per session, e.g. 600MB")
    parser.add_argument("--out", type=Path, default=Path("bench/out/sessions"))
    parser.add_argument("--skip-local", action="store_true", help="only the S3 endpoint")
    parser.add_argument("--keep", action="store_true", help="keep the generated and uploaded files")
    args = parser.parse_args()
    os.environ.update(CREDS)
    size = parse_size(args.size, "--size")
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lab = out / "lab"
    print(
        f"sessions benchmark: {args.sessions} sessions x {size / 1e6:.0f} MB, {os.cpu_count()} cores",
        flush=True,
    )

    started = time.perf_counter()
    manifest = generate_sessions(lab, SessionOptions(count=args.sessions, session_bytes=size))
    day_mb = manifest.total_bytes / 1e6
    row("generator", "generate sessions (built-in dataset)", time.perf_counter() - started, day_mb)

    moto, endpoint = start_moto()
    use_pg = pg_reachable()
    schema = f"bench_sessions_{uuid.uuid4().hex[:8]}"
    try:
        import boto3

        bucket = "lab"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        catalog: dict[str, Any] = {"catalog_url": PG_URL, "catalog_schema": schema} if use_pg else {}
        s3 = project(
            out / "s3-project",
            {
                "root": f"s3://{bucket}/hw",
                "endpoint_url": endpoint,
                "region": "us-east-1",
                "path_style": True,
            },
            catalog,
        )
        target = "moto S3 + PG" if use_pg else "moto S3 + SQLite"
        if not use_pg:
            print("  (PostgreSQL not reachable at 127.0.0.1:5432: the S3 run catalogues in SQLite)")
        boto3_ceiling(endpoint, bucket, sorted(p for p in lab.iterdir() if p.is_dir())[0])
        run_day(target, s3, lab, day_mb, preprocess=True, out=out)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        if use_pg:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if not args.skip_local:
        local = project(out / "local-project", {"root": "data"}, {})
        run_day("local + SQLite", local, lab, day_mb, preprocess=False, out=out)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
