"""Fixtures for the Goodreads ETL tests: small generated datasets (made once per test run), projects on
the embedded default, landing batches pushed with the storage layer (no capture code), the shared Spark
session, and an independent pandas reading of the raw CSV to check answers against."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import yaml

from headwater.config import Settings, load_settings
from headwater.generate import GenerateOptions, generate, load_dataset
from headwater.goodreads.etl_schema import Entity, csv_schema
from headwater.storage import Zone, build_batch_prefix, open_store, parse_location, push_batch
from headwater.warehouse import Warehouse

DAY = date(2024, 5, 1)
SMALL = {"author": 150, "book": 600, "user": 1200}


def generate_dataset(folder: Path, *, reviews: int, seed: int, dirty: float = 0.0) -> Path:
    """The goodreads dataset, small: ``reviews`` reviews (about 1% re-sent revisions on top)."""
    generate(
        load_dataset("goodreads"),
        folder,
        GenerateOptions(rows=reviews, seed=seed, workers=1, dirty=dirty, table_rows=dict(SMALL)),
    )
    return folder


@pytest.fixture(scope="session")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean dataset (made once per test run)."""
    return generate_dataset(tmp_path_factory.mktemp("gr-clean"), reviews=3000, seed=11)


@pytest.fixture(scope="session")
def dirty_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset with ~2% injected defects and their ledger (``defects.csv``)."""
    return generate_dataset(tmp_path_factory.mktemp("gr-dirty"), reviews=2000, seed=12, dirty=0.02)


def make_settings(folder: Path, extra: Mapping[str, Any] | None = None) -> Settings:
    """A project on the embedded default in ``folder`` (``headwater.yaml`` written), with ``extra``
    merged into its sections."""
    folder.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {
        "name": "goodreads-test",
        "warehouse": {"kind": "duckdb", "path": "warehouse.duckdb"},
    }
    for key, value in (extra or {}).items():
        merge = isinstance(value, dict) and key != "warehouse"
        body[key] = {**body.get(key, {}), **value} if merge else value
    (folder / "headwater.yaml").write_text(yaml.safe_dump(body))
    return load_settings(folder, env={})


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "project")


def land(
    settings: Settings, source: Path, batch_id: str, *, day: date = DAY, only: list[str] | None = None
) -> str:
    """Push the CSV files of ``source`` (``only`` those names) as a landing batch; its key."""
    staging = source.parent / f".stage-{batch_id}"
    staging.mkdir(exist_ok=True)
    names = only or [p.name for p in source.glob("*.csv") if p.name != "defects.csv"]
    for name in names:
        target = staging / name
        if not target.exists():
            target.hardlink_to(source / name)
    prefix = build_batch_prefix(Zone.LANDING, "goodreads", day, batch_id)
    root = settings.storage_root
    url = f"{root}/{prefix}" if "://" in root else str(Path(root) / str(prefix))
    from headwater.goodreads.etl_zones import store_options

    push_batch(staging, open_store(parse_location(url), store_options(settings)), write_once=True)
    return f"{day:%Y/%m/%d}/{batch_id}"


def read_csv(path: Path, entity: Entity) -> pa.Table:
    """A landing CSV read by pyarrow with the entity's declared types (empty field = NULL, "" = '')."""
    options = pacsv.ConvertOptions(
        column_types=csv_schema(entity), strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    return pacsv.read_csv(path, convert_options=options)


def write_csv(table: pa.Table, path: Path) -> Path:
    """Write rows back in the landing encoding (timestamps as ``YYYY-MM-DD HH:MM:SS``)."""
    columns = []
    for field in table.schema:
        col = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
        columns.append(col)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), path)
    return path


def latest(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """pandas' own dedupe: the last row per key by record_create_timestamp (stable, so a tie keeps the
    later row)."""
    ordered = frame.sort_values("record_create_timestamp", kind="stable")
    return ordered.drop_duplicates(key, keep="last").sort_values(key).reset_index(drop=True)


def reference_reviews(folder: Path) -> pd.DataFrame:
    """Reviews from the raw CSV, deduplicated and with dates parsed to UTC, by pandas alone."""
    raw = pd.read_csv(folder / "reviews.csv", keep_default_na=False, na_values=[""])
    raw["record_create_timestamp"] = pd.to_datetime(raw["record_create_timestamp"])
    reviews = latest(raw, "review_id")
    added = pd.to_datetime(reviews["review_added_date"], format="%a %b %d %H:%M:%S %z %Y", utc=True)
    reviews["added_utc"] = added.dt.tz_localize(None)
    reviews["day"] = reviews["added_utc"].dt.date
    return reviews


def reference_table(folder: Path, name: str, key: str) -> pd.DataFrame:
    raw = pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""])
    raw["record_create_timestamp"] = pd.to_datetime(raw["record_create_timestamp"])
    return latest(raw, key)


def content_hash(wh: Warehouse, tables: list[str]) -> str:
    """A hash of every row of ``tables`` (ordered), to prove a step changed nothing."""
    digest = hashlib.sha256()
    for table in tables:
        rows = wh.query(f'SELECT * FROM "{table}"')
        digest.update(table.encode())
        frame = rows.to_pandas()
        frame = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def landing_files(settings: Settings) -> dict[str, int]:
    """Every file under landing/ with its size (to prove the ETL never changes landing)."""
    root = Path(settings.storage_root) / "landing"
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def spark() -> Any:
    """The shared local SparkSession (see tests/transform/conftest.py)."""
    from tests.transform.conftest import start_spark

    return start_spark()


STAR_TABLES = [
    "dim_author",
    "dim_book",
    "dim_user",
    "dim_date",
    "bridge_book_author",
    "fact_reviews",
]
