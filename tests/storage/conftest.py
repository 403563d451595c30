"""Fixtures for storage tests: a real moto S3 server over HTTP (and one over TLS) on loopback, a bucket per
test, and a small TCP proxy that can corrupt or cut the byte stream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headwater.storage import Location, Scheme, StoreOptions
from headwater.storage.admin import make_s3_client
from tests.conftest import require_service
from tests.storage.proxy import FaultProxy

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    ca_bundle: str | None = None

    def options(self, **extra: Any) -> StoreOptions:
        base: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "path_style": True,
            "ca_bundle": self.ca_bundle,
        }
        return StoreOptions(**(base | extra))


def start_moto(extra_args: list[str], scheme: str) -> Iterator[MotoServer]:
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port), *extra_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                yield MotoServer(f"{scheme}://127.0.0.1:{port}")
                return
            except OSError:
                time.sleep(0.1)
        require_service("moto S3 server", "pip install 'moto[server]'", f"exit code {proc.poll()}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="package", autouse=True)
def aws_credentials() -> Iterator[None]:
    """Test credentials in the environment, the way a real deployment provides them."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    yield from start_moto([], "http")


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="session")
def moto_tls_server(tls_ca: tuple[Path, Path, Path]) -> Iterator[MotoServer]:
    ca, cert, key = tls_ca
    for server in start_moto(["-c", str(cert), "-k", str(key)], "https"):
        yield MotoServer(server.endpoint, ca_bundle=str(ca))


def create_bucket(server: MotoServer) -> str:
    name = f"hw-{uuid.uuid4().hex[:12]}"
    make_s3_client(server.options()).create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """A fresh bucket on the shared moto server."""
    return create_bucket(moto_server)


def s3_location(bucket: str, prefix: str) -> Location:
    return Location(Scheme.S3, bucket=bucket, prefix=prefix)


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    """A loopback TCP proxy in front of the moto server; faults are armed per test."""
    host, port = moto_server.endpoint.removeprefix("http://").split(":")
    with FaultProxy(host, int(port)) as p:
        yield p


def write_files(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, bytes]:
    """Files of random bytes under ``folder``; returns their contents by relative path."""
    import random

    rng = random.Random(seed)
    out = {}
    for name, size in sizes.items():
        data = rng.randbytes(size)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        out[name] = data
    return out
