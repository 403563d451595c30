"""Transfer benchmark: 1 GB as 8 files, pushed by headwater (checksum-verified) and by its peers, to a moto S3
server on loopback and to a local folder, in one run. Prints MB/s and ratios.

    ./dev.sh bench transfer [--total-mb 1024] [--files 8]

moto itself caps uploads (~140 MB/s, it burns more than a core): the S3 figures measure moto as much as the
client, so read the ratios against boto3 in the same run. The local figures show the client's own cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def make_files(folder: Path, total_mb: int, files: int) -> list[Path]:
    rng = np.random.default_rng(7)
    size = total_mb * (1 << 20) // files
    paths = []
    for i in range(files):
        path = folder / f"part-{i}.csv"
        path.write_bytes(rng.bytes(size))
        paths.append(path)
    return paths


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="S3 runs per contender; the best is shown")
    args = parser.parse_args()
    os.environ.update(CREDS)

    import boto3
    import obstore
    import s3fs
    from obstore.store import LocalStore as ObLocalStore
    from obstore.store import S3Store as ObS3Store

    from headwater.storage import Location, Scheme, StoreOptions, VerifyMode, open_store, push_batch

    work = Path(tempfile.mkdtemp(prefix="hw-bench-"))
    rows: list[tuple[str, str, float]] = []
    try:
        src = work / "src"
        src.mkdir()
        paths = make_files(src, args.total_mb, args.files)
        total = sum(p.stat().st_size for p in paths)

        def boto3_upload_file(endpoint: str) -> None:
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            for p in paths:
                client.upload_file(str(p), "bench", f"boto3/{p.name}")

        def obstore_put(endpoint: str) -> None:
            ob = ObS3Store(
                "bench",
                endpoint=endpoint,
                region="us-east-1",
                virtual_hosted_style_request=False,
                client_options={"allow_http": True},
            )
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda p: obstore.put(ob, f"obstore/{p.name}", p), paths))

        def s3fs_put(endpoint: str) -> None:
            fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
            fs.put([str(p) for p in paths], [f"bench/s3fs/{p.name}" for p in paths])

        def headwater_s3(endpoint: str, mode: VerifyMode) -> None:
            options = StoreOptions(endpoint_url=endpoint, region="us-east-1", path_style=True)
            store = open_store(Location(Scheme.S3, bucket="bench", prefix=f"landing/hw-{mode}"), options)
            push_batch(src, store, write_once=True, verify=mode)

        s3_cases: list[tuple[str, Callable[[str], None]]] = [
            ("boto3 upload_file (defaults)", boto3_upload_file),
            ("obstore put (plain copy)", obstore_put),
            ("fsspec/s3fs put (plain copy)", s3fs_put),
            ("headwater push --verify checksum", lambda e: headwater_s3(e, VerifyMode.CHECKSUM)),
            ("headwater push --verify full", lambda e: headwater_s3(e, VerifyMode.FULL)),
        ]
        best: dict[str, float] = {}
        for _ in range(args.rounds):  # a fresh moto per contender and round: its speed drifts as it fills
            for name, func in s3_cases:
                moto, endpoint = start_moto()
                try:
                    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                        Bucket="bench"
                    )
                    seconds = timed(partial(func, endpoint))
                finally:
                    moto.terminate()
                    moto.wait()
                best[name] = min(seconds, best.get(name, seconds))
        rows += [(name, "moto S3", best[name]) for name, _ in s3_cases]

        local = work / "dest"
        local.mkdir()
        oblocal = ObLocalStore(str(local / "obstore"), mkdir=True)

        def copy_files() -> None:
            (local / "shutil").mkdir()
            for p in paths:
                shutil.copyfile(p, local / "shutil" / p.name)

        def copy_files_fsync() -> None:
            (local / "fsync").mkdir()
            for p in paths:
                shutil.copyfile(p, local / "fsync" / p.name)
                with (local / "fsync" / p.name).open("rb+") as fh:
                    os.fsync(fh.fileno())

        def obstore_local() -> None:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda p: obstore.put(oblocal, p.name, p), paths))

        def headwater_local() -> None:
            push_batch(src, open_store(Location(Scheme.FILE, path=local / "landing" / "b")), write_once=True)

        for name, local_case in [
            ("shutil.copyfile (no fsync)", copy_files),
            ("shutil.copyfile + fsync", copy_files_fsync),
            ("obstore put (plain copy)", obstore_local),
            ("headwater push --verify checksum", headwater_local),
        ]:
            rows.append((name, "local folder", timed(local_case)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = total / 1e6
    baselines = {"boto3 upload_file (defaults)", "shutil.copyfile (no fsync)"}
    base = {target: seconds for name, target, seconds in rows if name in baselines}
    print(f"transfer benchmark: {args.files} files, {mb:,.0f} MB total, {os.cpu_count()} cores")
    print(f"{'target':<13} {'contender':<34} {'seconds':>8} {'MB/s':>8} {'ratio':>6}")
    for name, target, seconds in rows:
        print(f"{target:<13} {name:<34} {seconds:8.2f} {mb / seconds:8.1f} {base[target] / seconds:6.2f}x")
    print("ratio = throughput relative to boto3 upload_file (moto) or shutil.copyfile (local), same run;")
    print(f"moto rows: best of {args.rounds} rounds, each contender on a fresh moto server")


if __name__ == "__main__":
    main()
