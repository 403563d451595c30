"""The ETL with its zones in S3 (a moto server over HTTP): landing read, working and processed written
through the storage layer's verified transfer, cleaned after retention; the warehouse stays local."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater.goodreads.etl import run_cycle
from headwater.goodreads.etl_ledger import BatchState
from headwater.goodreads.etl_zones import BatchRef, Zones
from headwater.storage import Zone, open_store, parse_location, verify_batch
from headwater.warehouse import warehouse_from_settings
from tests.goodreads.conftest import land, make_settings, reference_reviews
from tests.storage.conftest import CREDENTIALS, MotoServer, create_bucket, start_moto

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from start_moto([], "http")


def test_cycle_with_zones_on_s3(
    tmp_path: Path, clean_data: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    bucket = create_bucket(moto)
    storage = {
        "root": f"s3://{bucket}/hw",
        "endpoint_url": moto.endpoint,
        "region": "us-east-1",
        "path_style": True,
    }
    settings = make_settings(tmp_path / "p", {"storage": storage, "goodreads": {"retention_hours": 1}})
    key = land(settings, clean_data, "b1")

    report = run_cycle(settings)
    report.raise_for_failures()
    assert report.batches[0].state is BatchState.LOADED
    rows = (
        warehouse_from_settings(settings).query("SELECT count(*) AS n FROM fact_reviews").column(0)[0].as_py()
    )
    assert rows == len(reference_reviews(clean_data))

    zones = Zones(settings)
    ref = BatchRef.parse(key)
    for zone in (Zone.WORKING, Zone.PROCESSED):
        assert list(zones.batches(zone)) == [ref]
        store = open_store(parse_location(zones.url(zone, ref)), moto.options())
        assert verify_batch(store).ok  # every file as its manifest says
    # working batches that travel to a remote store are compressed (auto: snappy there, none locally)
    working = zones.local_input(Zone.WORKING, ref)
    try:
        meta = pq.read_metadata(next((working / "reviews").glob("*.parquet")))
        assert meta.row_group(0).column(0).compression == "SNAPPY"
    finally:
        zones.release_input(Zone.WORKING, ref)
    staging = tmp_path / "p" / "state" / "goodreads" / "staging"
    assert not [p for p in staging.rglob("*") if p.is_file()]  # pulled copies and outputs were removed

    later = run_cycle(settings, now=datetime.now(UTC) + timedelta(hours=2))
    assert later.cleaned == [key]
    assert list(zones.batches(Zone.WORKING)) == []
    assert list(zones.batches(Zone.PROCESSED)) == []
    assert list(zones.batches(Zone.LANDING)) == [ref]
