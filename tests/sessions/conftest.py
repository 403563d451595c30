"""Fixtures for the sessions tests: a project folder, small generated session folders, the catalog on both
backends (an embedded SQLite file, and a fresh schema on the real PostgreSQL server), and a moto S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from tests.conftest import require_service
from tests.storage.conftest import CREDENTIALS, MotoServer, start_moto
from tests.warehouse.conftest import pg_url

from headwater.config import Settings, load_settings
from headwater.generate.sessions import SessionOptions, generate_sessions
from headwater.sessions.catalog import Catalog, open_catalog
from headwater.storage.admin import make_s3_client

SMALL = 400_000  # bytes per generated session: 4 files of 100 kB


def make_project(folder: Path, **sections: Any) -> Settings:
    """A project folder with headwater.yaml holding ``sections`` (merged into defaults), and its settings."""
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"name": "lab", "storage": {"root": "data"}}
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    (folder / "headwater.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_settings(folder, env={})


def make_sessions(out: Path, count: int = 3, size: int = SMALL, seed: int = 7, **extra: Any) -> list[Path]:
    """``count`` small session folders from the built-in generator, in ``out``."""
    generate_sessions(
        out, SessionOptions(count=count, session_bytes=size, seed=seed, overwrite=True, **extra)
    )
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """Three good session folders (the rig's output), outside the project."""
    make_sessions(tmp_path / "lab")
    return tmp_path / "lab"


@pytest.fixture
def pg_catalog_schema() -> Iterator[tuple[str, str]]:
    """(url, schema) on the real PostgreSQL server; the schema is dropped afterwards."""
    url = pg_url()
    if url is None:
        require_service(
            "PostgreSQL",
            "bash .ci/run (or: pg_ctlcluster 15 main start)",
            "cannot connect to 127.0.0.1:5432/test",
        )
        raise AssertionError("unreachable")
    schema = f"hw_sessions_{uuid.uuid4().hex[:12]}"
    yield url, schema
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def project_factory(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Build a project whose catalog is on the parametrised backend; keyword sections go to headwater.yaml."""

    def build(name: str = "project", **sections: Any) -> Settings:
        sessions = dict(sections.pop("sessions", {}))
        if backend == "postgres":
            url, schema = request.getfixturevalue("pg_catalog_schema")
            sessions |= {"catalog_url": url, "catalog_schema": schema}
        return make_project(tmp_path / name, sessions=sessions, **sections)

    return build


@pytest.fixture
def settings(project_factory: Callable[..., Settings]) -> Settings:
    return project_factory()


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return open_catalog(settings)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    yield from start_moto([], "http")


@pytest.fixture
def s3_env(moto: MotoServer) -> Iterator[dict[str, str]]:
    """Test credentials in the environment (as a deployment provides them) and a fresh bucket: the storage
    root ``s3://<bucket>/hw`` plus the endpoint settings, as HEADWATER_* variables for a child process."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    bucket = f"hw-sessions-{uuid.uuid4().hex[:10]}"
    make_s3_client(moto.options()).create_bucket(Bucket=bucket)
    yield {
        "bucket": bucket,
        "root": f"s3://{bucket}/hw",
        "endpoint": moto.endpoint,
    }
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_storage(env: dict[str, str]) -> dict[str, Any]:
    """The ``storage:`` section for a project on the moto bucket."""
    return {"root": env["root"], "endpoint_url": env["endpoint"], "region": "us-east-1", "path_style": True}
