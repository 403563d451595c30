"""Project configuration: ``headwater.yaml`` read into Pydantic models, overridable by ``HEADWATER_*``.

Built once at the entry point (CLI, orchestrator, service) and passed down; the core never reads the
environment itself. Nested keys use a double underscore: ``HEADWATER_WAREHOUSE__PATH=wh.duckdb``
overrides ``warehouse.path``. Secrets (passwords, keys) are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from headwater.errors import ConfigError

PROJECT_FILE = "headwater.yaml"
ENV_PREFIX = "HEADWATER_"
# variables that steer the process rather than override a setting
RESERVED_ENV = frozenset({"HEADWATER_DEBUG", "HEADWATER_DIRECT_IO", "HEADWATER_PROJECT", "HEADWATER_VENV"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Model):
    """Where the zones live: a local folder (relative to the project) or an ``s3://``/``gs://`` URL."""

    root: str = "data"
    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    allow_insecure_http: bool = False
    ca_bundle: str | None = None


class DuckDBWarehouseSettings(_Model):
    kind: Literal["duckdb"] = "duckdb"
    path: str = "warehouse.duckdb"
    lock_timeout: float = Field(
        default=30.0, ge=0, description="seconds to wait for another process's write lock on the file"
    )
    key_index: bool = Field(
        default=False,
        description="declare primary keys to DuckDB (an index that enforces them, ~2x slower merges); "
        "false: keys are recorded and every headwater load enforces them",
    )


class PostgresWarehouseSettings(_Model):
    kind: Literal["postgres"]
    url: SecretStr = SecretStr("postgresql://127.0.0.1:5432/test")
    schema_name: str = Field(default="public", alias="schema")
    merge_fillfactor: int = Field(
        default=80,
        ge=10,
        le=100,
        description="percent of each page that tables made by a merge fill, leaving room for updates in place",
    )


WarehouseSettings = Annotated[
    DuckDBWarehouseSettings | PostgresWarehouseSettings, Field(discriminator="kind")
]


class GenerateSettings(_Model):
    seed: int = 42
    workers: int = Field(default=0, ge=0, description="0 = one per core")
    chunk_rows: int = Field(default=65_536, gt=0)


class AlertSettings(_Model):
    """Where failure alerts go: a Slack-compatible webhook and/or SMTP email. Unset = log only."""

    webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "headwater@localhost"
    smtp_to: list[str] = Field(default_factory=list)
    timeout: float = Field(default=10.0, gt=0, description="seconds per delivery attempt")


class EventsSettings(_Model):
    """The monthly events pipeline: where ``YYYY/MM/events.csv`` months arrive."""

    source: str = "data/incoming/events"
    top_n: int = Field(default=10, gt=0)
    timezone: str = Field(default="UTC", description="zone of event_time values written without an offset")
    memory_limit: str = Field(default="1GB", description="DuckDB memory limit of the exact dedupe pass")
    threads: int = Field(default=0, ge=0, description="0 = one per core")
    compression: Literal["snappy", "zstd", "lz4", "none"] = Field(
        default="snappy",
        description="Parquet codec of the text columns (ids and times are delta/dictionary coded)",
    )


_GENERATOR_REQUIRED: dict[str, Literal["int", "float", "str", "bool", "timestamp"]] = {
    "subject_id": "str",
    "fatigue_level": "int",
    "sample_rate_hz": "int",
    "channels": "int",
    "hardware_model": "str",
}


class SessionsSettings(_Model):
    """Recording sessions: upload checks, the catalog database and the preprocessing function."""

    catalog_url: SecretStr | None = Field(
        default=None, description="postgresql://... ; unset = the embedded catalog file"
    )
    catalog_schema: str = Field(default="public", description="PostgreSQL schema of the catalog tables")
    catalog_path: str = Field(default="catalog.sqlite", description="embedded catalog: SQLite in WAL mode")
    metadata_file: str = "metadata.txt"
    required_fields: dict[str, Literal["int", "float", "str", "bool", "timestamp"]] = Field(
        default_factory=lambda: dict(_GENERATOR_REQUIRED)
    )
    max_file_bytes: int = Field(default=4 * 1024**3, gt=0)
    completion_marker: str = "_COMPLETE"
    quiet_seconds: float = Field(default=60.0, ge=0)
    quarantine_dir: str = "quarantine/sessions"
    preprocessor: str = "default"
    claim_timeout: float = Field(
        default=7200.0, gt=0, description="seconds after which a 'preprocessing' claim counts as abandoned"
    )
    workers: int = Field(default=4, ge=1, le=64, description="files transferred in parallel")


class GoodreadsSettings(_Model):
    """The Goodreads-style ETL: the API to capture from, the local spool and the transform engine."""

    api_url: str = "http://127.0.0.1:8765"
    rate_per_second: float = Field(default=20.0, gt=0)
    spool_dir: str = "spool/goodreads"
    rotate_bytes: int = Field(default=8 * 1024**2, gt=0)
    rotate_seconds: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=500, gt=0, le=1000, description="records per API request")
    push_every_seconds: float = Field(default=60.0, ge=0, description="capture pushes spool files; 0 = off")
    pushed_retention_hours: float = Field(default=168.0, ge=0, description="keep spool pushed/ this long")
    engine: Literal["duckdb", "spark"] = "duckdb"
    state_dir: str = Field(default="state/goodreads", description="ETL ledger, lock, staging and spill space")
    retention_hours: float = Field(
        default=24.0, ge=0, description="keep a batch's working and processed copies this long after its load"
    )
    memory_limit: str = Field(default="4GB", description="DuckDB memory limit of the ETL (spills beyond it)")
    working_compression: Literal["auto", "none", "snappy", "zstd", "lz4"] = Field(
        default="auto",
        description="Parquet compression of the working zone; auto = none when the zones are local "
        "(half the ingest's write CPU, twice the bytes), snappy when they are remote",
    )
    threads: int = Field(default=0, ge=0, description="DuckDB threads of the ETL; 0 = one per core")
    spark_master: str = Field(default="local[2]", description="Spark master when engine is spark")
    load_review_text: bool = Field(
        default=True,
        description="load the review texts into the warehouse (fact_reviews.review_text); false: they stay "
        "in processed/ and the fact is loaded without them",
    )


class QualitySettings(_Model):
    """Data quality checks per table (parsed by ``headwater.quality``)."""

    checks: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    sample_rows: int = Field(default=20, ge=0)


class OrchestrateSettings(_Model):
    """The Dagster code location: where its instance keeps runs, schedules and sensor state."""

    dagster_home: str = ".dagster"
    max_retries: int = Field(default=3, ge=0, description="retries of every step after its first failure")
    retry_delay: float = Field(
        default=15.0,
        ge=0,
        le=120 / 7,
        description="base of the exponential backoff: delays of 1x, 3x, 7x this, so at most 2 minutes",
    )
    sensor_interval: int = Field(default=30, ge=1, description="seconds between sensor evaluations")
    failure_sensor_interval: int = Field(
        default=10, ge=1, description="seconds; alerts within this + delivery"
    )


class Settings(_Model):
    """The whole project configuration."""

    name: str = "headwater-project"
    project_dir: Path = Path()
    storage: StorageSettings = StorageSettings()
    warehouse: WarehouseSettings = DuckDBWarehouseSettings()
    generate: GenerateSettings = GenerateSettings()
    alerts: AlertSettings = AlertSettings()
    events: EventsSettings = EventsSettings()
    sessions: SessionsSettings = SessionsSettings()
    goodreads: GoodreadsSettings = GoodreadsSettings()
    quality: QualitySettings = QualitySettings()
    orchestrate: OrchestrateSettings = OrchestrateSettings()

    def resolve(self, path: str | Path) -> Path:
        """A path from the project file, made absolute relative to the project folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.project_dir / p).resolve()

    @property
    def storage_root(self) -> str:
        """The zones' root as a URL or an absolute local path."""
        root = self.storage.root
        return root if "://" in root else str(self.resolve(root))


def _set_nested(target: dict[str, Any], dotted: list[str], value: Any) -> None:
    for key in dotted[:-1]:
        node = target.setdefault(key, {})
        if not isinstance(node, dict):
            node = {}
            target[key] = node
        target = node
    target[dotted[-1]] = value


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if keys:
            parsed = yaml.safe_load(value) if value.strip() else value
            _set_nested(out, keys, value if isinstance(parsed, dict | list) else parsed)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds a ``headwater.yaml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def load_settings(project_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``headwater.yaml`` from ``project_dir`` (or the nearest one above the working folder),
    then apply ``HEADWATER_*`` overrides from ``env`` (``os.environ`` when None, at the entry point only).
    Without a project file the defaults apply, rooted at the working folder."""
    env = os.environ if env is None else env
    folder = project_dir.resolve() if project_dir else find_project_dir()
    data: dict[str, Any] = {}
    source = "defaults"
    if folder is not None and (folder / PROJECT_FILE).is_file():
        source = str(folder / PROJECT_FILE)
        try:
            loaded = yaml.safe_load((folder / PROJECT_FILE).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = loaded or {}
    data = _merge(data, _env_overrides(env))
    data["project_dir"] = folder or Path.cwd().resolve()
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ConfigError(f"{source}: {where}: {err['msg']}") from exc


DEFAULT_PROJECT_FILE = """\
# headwater project file. Every key can be overridden by an environment variable:
# HEADWATER_<SECTION>__<KEY>, e.g. HEADWATER_WAREHOUSE__PATH=other.duckdb
name: {name}

# Where the zones (landing/, working/, processed/, quarantine/) live. A folder relative to this file,
# or an object store URL such as s3://my-bucket/headwater or gs://my-bucket/headwater.
storage:
  root: data
  # endpoint_url: https://s3.example.internal   # any S3-compatible endpoint
  # region: eu-west-1
  # path_style: false
  # allow_insecure_http: false                   # plain http is refused except on loopback
  # ca_bundle: /etc/ssl/private-ca.pem
  # Credentials come from the environment or the cloud SDK's profiles, never from this file.

# The warehouse: an embedded DuckDB file (default) or PostgreSQL.
warehouse:
  kind: duckdb
  path: warehouse.duckdb
  # key_index: false   # true: declare primary keys to DuckDB (an enforcing index; merges ~2x slower)
  # kind: postgres
  # url: postgresql://user@127.0.0.1:5432/analytics   # put a password in HEADWATER_WAREHOUSE__URL
  # merge_fillfactor: 80   # % of each page tables made by a merge fill (room for updates in place)

# Synthetic data generation defaults (headwater generate).
generate:
  seed: 42
  workers: 0          # 0 = one process per core
  chunk_rows: 65536   # rows a worker makes at a time (bounds memory; small chunks stay in the CPU caches)
"""


def init_project(folder: Path, name: str | None = None) -> Path:
    """Write a commented default ``headwater.yaml`` into ``folder`` (created if needed).
    Refuses to overwrite an existing project file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PROJECT_FILE
    if target.exists():
        raise ConfigError(f"{target}: already exists; edit it or choose another folder")
    target.write_text(DEFAULT_PROJECT_FILE.format(name=name or folder.resolve().name), encoding="utf-8")
    return target
