"""The Goodreads API stand-in, over a real uvicorn server on loopback: pagination, throttling, failure
injection, incremental reveal, and records that re-encode to the generator's bytes."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx
import pytest

from headwater.errors import UsageError
from headwater.goodreads.api import ServeOptions, decode_cursor, encode_cursor, source_id
from headwater.goodreads.capture_schema import Entity, encode_rows, records_to_table
from tests.goodreads.capture_helpers import api_server, expected_lines, tables


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    """An API without limits or faults."""
    with api_server() as server:
        yield server.url


def fetch_all(client: httpx.Client, endpoint: str, limit: int) -> tuple[list[dict[str, object]], int]:
    records: list[dict[str, object]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        body = client.get(f"/{endpoint}", params=params).raise_for_status().json()
        records += body["records"]
        pages += 1
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return records, pages


@pytest.mark.parametrize("entity", list(Entity))
def test_pagination_serves_every_record_once_in_a_stable_order(plain_url: str, entity: Entity) -> None:
    table = tables()[entity]
    with httpx.Client(base_url=plain_url) as client:
        records, pages = fetch_all(client, entity.endpoint, 37)
        again, _ = fetch_all(client, entity.endpoint, 1000)
    assert pages == math.ceil(table.num_rows / 37)
    assert records == table.to_pylist()
    assert again == records
    # and they turn back into the very bytes the generator wrote, review dates verbatim
    rebuilt = encode_rows(records_to_table(entity, records, "test")).splitlines(keepends=True)
    assert rebuilt == expected_lines(entity)
    if entity is Entity.REVIEWS:
        assert isinstance(records[0]["review_added_date"], str)
        assert len(str(records[0]["review_added_date"]).split()) == 6  # 'Tue Feb 11 18:08:25 -0800 2020'


def test_health_cursor_and_limit_validation(plain_url: str) -> None:
    with httpx.Client(base_url=plain_url) as client:
        health = client.get("/health").json()
        assert health["source"] == source_id(tables())
        assert health["entities"]["reviews"] == {"visible": tables()[Entity.REVIEWS].num_rows,
                                                 "total": tables()[Entity.REVIEWS].num_rows}  # fmt: skip
        bad = client.get("/books", params={"cursor": encode_cursor(Entity.AUTHOR, 3)})
        assert bad.status_code == 400
        assert "not a cursor of /books" in bad.json()["detail"]
        assert client.get("/books", params={"cursor": "%%%"}).status_code == 400
        assert client.get("/books", params={"limit": 1001}).status_code == 422
        end = client.get(
            "/authors", params={"cursor": encode_cursor(Entity.AUTHOR, tables()[Entity.AUTHOR].num_rows)}
        )
        assert end.json()["records"] == []
        assert end.json()["has_more"] is False
    assert decode_cursor(Entity.BOOK, encode_cursor(Entity.BOOK, 12345)) == 12345


def test_rate_limit_answers_429_with_retry_after() -> None:
    with api_server(ServeOptions(rate=4, burst=4)) as server, httpx.Client(base_url=server.url) as client:
        statuses = [client.get("/authors", params={"limit": 1}).status_code for _ in range(12)]
        # a burst of 4, then refused until tokens accrue at 4/s (a request takes well under 1/4 s here)
        assert statuses[:4] == [200] * 4
        assert statuses.count(429) >= 6
        refused = client.get("/authors")
        assert refused.status_code == 429
        retry_after = int(refused.headers["Retry-After"])
        assert retry_after >= 1
        time.sleep(retry_after)
        assert client.get("/authors").status_code == 200
        assert client.get("/health").status_code == 200  # health is never throttled
    log = server.requests("/authors")
    assert all(r.retry_after and r.retry_after >= 1 for r in log if r.status == 429)


def test_injected_errors_are_seeded_and_at_the_configured_rate() -> None:
    def statuses(seed: int) -> list[int]:
        with (
            api_server(ServeOptions(error_rate=0.3, seed=seed)) as server,
            httpx.Client(base_url=server.url) as c,
        ):
            return [c.get("/users", params={"limit": 1}).status_code for _ in range(60)]

    first, second, other = statuses(11), statuses(11), statuses(12)
    assert first == second
    assert first != other
    assert set(first) <= {200, 500, 503}
    assert 8 <= sum(s >= 500 for s in first) <= 30


def test_slow_answers() -> None:
    with (
        api_server(ServeOptions(slow_rate=1.0, slow_seconds=0.4)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        started = time.monotonic()
        assert c.get("/books", params={"limit": 2}).status_code == 200
        assert time.monotonic() - started >= 0.4
        with pytest.raises(httpx.ReadTimeout):
            c.get("/books", params={"limit": 2}, timeout=0.1)


def test_incremental_mode_reveals_new_records_after_the_cursor() -> None:
    total = tables()[Entity.REVIEWS].num_rows
    options = ServeOptions(initial=0.25, reveal_per_second=1500)
    with api_server(options) as server, httpx.Client(base_url=server.url) as client:
        first = client.get("/reviews", params={"limit": 1000}).json()
        assert first["total"] == total
        assert first["visible"] < total
        seen = list(first["records"])
        cursor = first["next_cursor"]
        deadline = time.monotonic() + 15
        while len(seen) < total and time.monotonic() < deadline:
            body = client.get("/reviews", params={"limit": 1000, "cursor": cursor}).json()
            seen += body["records"]
            cursor = body["next_cursor"]
            if not body["has_more"]:
                time.sleep(0.2)
    assert seen == tables()[Entity.REVIEWS].to_pylist()


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--error-rate"):
        ServeOptions(error_rate=1.5)
    with pytest.raises(UsageError, match="--rate"):
        ServeOptions(rate=0)
