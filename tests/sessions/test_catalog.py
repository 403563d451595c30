"""The catalog on both backends (embedded SQLite file and PostgreSQL): rows, typed columns and JSON, promotion,
claims under concurrency, and queries (including injection attempts)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import require_service
from tests.sessions.conftest import make_project
from tests.warehouse.conftest import pg_url

from headwater.config import Settings
from headwater.errors import DataError, PreprocessError, UsageError, WarehouseError
from headwater.sessions.catalog import Catalog, open_catalog
from headwater.sessions.filter import FilterError
from headwater.sessions.model import BUILTIN_TYPED_FIELDS, FileRef, FileZone, SessionStatus, raw_prefix
from headwater.sessions.validate import ValidSession

SHA = "ab" * 32


def valid(session_id: str, **metadata: Any) -> ValidSession:
    when = dt.datetime.strptime(session_id, "%Y%m%d_%H%M%S")
    return ValidSession(session_id, Path("/nowhere") / session_id, when, metadata, ("a.bin",), ("a.bin",), 10)


def add(catalog: Catalog, session_id: str, **metadata: Any) -> None:
    prefix = raw_prefix(session_id)
    files = [
        FileRef(FileZone.RAW, f"{prefix}/a.bin", 10, SHA),
        FileRef(FileZone.RAW, f"{prefix}/metadata.txt", 5, SHA),
    ]
    assert catalog.record_upload(valid(session_id, **metadata), files, prefix)


def fill(catalog: Catalog) -> Catalog:
    add(
        catalog,
        "20210201_080000",
        fatigue_level=3,
        hardware_model="X200",
        site="lab-1",
        room_temperature_c=21.5,
    )
    add(
        catalog,
        "20210201_093000",
        fatigue_level=5,
        hardware_model="X300",
        site="lab-2",
        room_temperature_c=23.0,
    )
    add(catalog, "20210202_100000", fatigue_level=1, hardware_model="X200", operator="a.khan", lux="bright")
    add(
        catalog,
        "20210305_120000",
        fatigue_level=4,
        hardware_model="O'Brien",
        calibrated=True,
        room_temperature_c=19,
    )
    return catalog


@pytest.fixture
def filled(catalog: Catalog) -> Catalog:
    return fill(catalog)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """One filled catalog per backend for the read-only query tests (they must not change it)."""
    folder = tmp_path_factory.mktemp("shared")
    if request.param == "sqlite":
        yield fill(open_catalog(make_project(folder)))
        return
    url = pg_url()
    if url is None:
        require_service("PostgreSQL", "bash .ci/run", "cannot connect to 127.0.0.1:5432/test")
        raise AssertionError("unreachable")
    schema = f"hw_sessions_{uuid.uuid4().hex[:12]}"
    try:
        yield fill(
            open_catalog(make_project(folder, sessions={"catalog_url": url, "catalog_schema": schema}))
        )
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ids(catalog: Catalog, text: str) -> list[str]:
    return [r.session_id for r in catalog.query(text)]


def test_a_session_row_and_its_files_round_trip(filled: Catalog, settings: Settings) -> None:
    record = filled.get("20210201_080000")
    assert record is not None
    assert record.status is SessionStatus.UPLOADED
    assert record.recorded_at == dt.datetime(2021, 2, 1, 8, 0)
    assert record.metadata == {
        "fatigue_level": 3,
        "hardware_model": "X200",
        "site": "lab-1",
        "room_temperature_c": 21.5,
    }
    assert [f.name for f in record.files] == ["a.bin", "metadata.txt"]
    assert record.files[0].uri == f"{settings.storage_root}/raw/sessions/2021/02/01/20210201_080000/a.bin"
    assert record.raw_bytes == 15
    assert filled.get("20990101_000000") is None
    # the same session again changes nothing
    assert not filled.record_upload(valid("20210201_080000", fatigue_level=9), [], "x")
    assert filled.get("20210201_080000").metadata["fatigue_level"] == 3  # type: ignore[union-attr]
    assert [e["status"] for e in filled.events("20210201_080000")] == ["uploaded"]


def test_known_fields_are_typed_columns_and_the_rest_json(filled: Catalog) -> None:
    fields = filled.fields()
    for name, kind in BUILTIN_TYPED_FIELDS.items():
        assert fields[name] == kind
    assert fields["room_temperature_c"] == "json"
    assert fields["lux"] == "json"
    assert fields["calibrated"] == "json"
    assert fields["recorded_at"] == "timestamp"
    assert "extra" not in fields
    assert "claim_id" not in fields


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fatigue_level >= 3", ["20210201_080000", "20210201_093000", "20210305_120000"]),
        ("fatigue_level >= 3 and hardware_model = 'X200' and recorded_at >= 2021-02-01", ["20210201_080000"]),
        (
            "recorded_at >= 2021-02-01T09:00 and recorded_at < 2021-03-01",
            ["20210201_093000", "20210202_100000"],
        ),
        ("recorded_on = 2021-02-01", ["20210201_080000", "20210201_093000"]),
        ("recorded_at = '2021-02-02 10:00:00'", ["20210202_100000"]),
        ("site in ('lab-1', 'lab-2')", ["20210201_080000", "20210201_093000"]),
        ("site not in ('lab-1')", ["20210201_093000"]),
        ("site is null", ["20210202_100000", "20210305_120000"]),
        ("operator is not null", ["20210202_100000"]),
        (
            "not (hardware_model = 'X200') or fatigue_level = 1",
            ["20210201_093000", "20210202_100000", "20210305_120000"],
        ),
        ("room_temperature_c > 20", ["20210201_080000", "20210201_093000"]),  # json numbers
        ("room_temperature_c <= 19.0", ["20210305_120000"]),  # a json int compared with a float
        ("room_temperature_c is null", ["20210202_100000"]),
        ("lux = 'bright'", ["20210202_100000"]),
        ("lux = 3", []),  # a json string never equals a number
        ("calibrated = true", ["20210305_120000"]),
        ("hardware_model = 'O''Brien'", ["20210305_120000"]),
        (
            "status = 'uploaded' and raw_files = 2",
            ["20210201_080000", "20210201_093000", "20210202_100000", "20210305_120000"],
        ),
        ("room_temperature_c in (21.5, 23)", ["20210201_080000", "20210201_093000"]),
    ],
)
def test_queries(shared: Catalog, text: str, expected: list[str]) -> None:
    assert ids(shared, text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fatige >= 3", "unknown field 'fatige'; did you mean fatigue_level?"),
        ("extra = '{}'", "unknown field 'extra'"),
        ("sqlite_master = 1", "unknown field 'sqlite_master'"),
        ("fatigue_level = 'high'", "fatigue_level is a number (int); got the text 'high'"),
        ("hardware_model = 200", "hardware_model is text: quote the value, e.g. '200'"),
        ("recorded_at >= 5", "recorded_at is a timestamp; got the number 5"),
        ("recorded_on = 2021-02-01T08:00", "recorded_on is a date"),
        ("recorded_at >= 'yesterday'", "'yesterday' is not YYYY-MM-DD"),
        ("status = 'done'", "status 'done' does not exist"),
        ("calibrated > true", "true/false can only be compared with = or !="),
        ("room_temperature_c in (1, 'a')", "mix of value types"),
    ],
)
def test_query_errors_name_the_field_and_position(shared: Catalog, text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        shared.query(text)
    assert fragment in str(info.value)
    assert "position " in str(info.value)


@pytest.mark.parametrize(
    "attack",
    [
        "hardware_model = 'X200'' OR ''1''=''1'",
        "hardware_model = 'x''; DROP TABLE sessions; --'",
        "site = '\\'' or 1=1 --'",
        "lux = '$.\"x\"'') or 1=1 --'",
        "hardware_model in ('a'); DELETE FROM sessions",
        "fatigue_level = 1 union select * from session_files",
        '"fatigue_level" = 3',
        "fatigue_level = 3 or 1 = 1",
    ],
)
def test_injection_attempts_are_values_or_errors_never_sql(shared: Catalog, attack: str) -> None:
    try:
        found = ids(shared, attack)
    except FilterError:
        found = []
    assert found == []
    assert len(shared.list_sessions()) == 4  # nothing dropped or deleted
    assert len(shared.get("20210201_080000").files) == 2  # type: ignore[union-attr]


def test_promote_moves_json_values_into_a_typed_column(filled: Catalog) -> None:
    result = filled.promote("room_temperature_c", "float")
    assert (result.field, result.sessions, result.version, result.already) == (
        "room_temperature_c",
        3,
        2,
        False,
    )
    assert filled.fields()["room_temperature_c"] == "float"
    record = filled.get("20210305_120000")
    assert record is not None
    assert record.metadata["room_temperature_c"] == 19.0
    assert ids(filled, "room_temperature_c > 20") == ["20210201_080000", "20210201_093000"]
    # a new session after the promotion lands in the column
    add(filled, "20210306_120000", fatigue_level=2, hardware_model="X200", room_temperature_c="24.5")
    assert ids(filled, "room_temperature_c = 24.5") == ["20210306_120000"]
    history = filled.history()
    assert [h["change"] for h in history] == ["create", "promote"]
    assert history[1]["detail"] == {"field": "room_temperature_c", "type": "float", "sessions": 3}
    assert filled.promote("room_temperature_c", "float").already
    with pytest.raises(UsageError, match="already a float column"):
        filled.promote("room_temperature_c", "int")


def test_a_promotion_that_cannot_convert_changes_nothing(filled: Catalog) -> None:
    add(filled, "20210307_120000", fatigue_level=2, hardware_model="X200", lux=300)
    with pytest.raises(
        DataError, match=r"promote lux to float: session 20210202_100000 holds 'bright'.*nothing changed"
    ):
        filled.promote("lux", "float")
    assert filled.fields()["lux"] == "json"
    assert [h["change"] for h in filled.history()] == ["create"]
    assert filled.get("20210202_100000").metadata["lux"] == "bright"  # type: ignore[union-attr]
    assert filled.promote("lux", "str").sessions == 2
    assert ids(filled, "lux = '300'") == ["20210307_120000"]
    for bad in ("status", "extra", "9lives", "a-b"):
        with pytest.raises(UsageError):
            filled.promote(bad, "int")


def test_claims_are_exclusive_and_finished_sessions_stay_finished(filled: Catalog) -> None:
    sid = "20210201_080000"
    first = filled.claim(sid, force=False, claim_timeout=3600)
    assert first.claimed
    assert first.status is SessionStatus.PREPROCESSING
    assert first.attempts == 1
    second = filled.claim(sid, force=True, claim_timeout=3600)
    assert not second.claimed  # a live claim is never taken, even with force
    assert filled.pending(3600) == ["20210201_093000", "20210202_100000", "20210305_120000"]
    files = [FileRef(FileZone.PROCESSED, "processed/x/summary.parquet", 3, SHA)]
    filled.mark_ready(first, files, "processed/x", "default")
    record = filled.get(sid)
    assert record is not None
    assert record.status is SessionStatus.READY
    assert [f.key for f in record.files_in(FileZone.PROCESSED)] == ["processed/x/summary.parquet"]
    assert not filled.claim(sid, force=False, claim_timeout=3600).claimed
    again = filled.claim(sid, force=True, claim_timeout=3600)
    assert again.claimed
    assert again.attempts == 2
    with pytest.raises(PreprocessError, match="claim was lost"):
        filled.mark_ready(first, files, "processed/x", "default")  # the old claim no longer holds
    filled.mark_failed(again, "ValueError: boom")
    record = filled.get(sid)
    assert record is not None
    assert record.status is SessionStatus.FAILED
    assert record.reason == "ValueError: boom"
    assert [e["status"] for e in filled.events(sid)] == [
        "uploaded",
        "preprocessing",
        "ready",
        "preprocessing",
        "failed",
    ]
    assert filled.claim(sid, force=False, claim_timeout=3600).claimed  # a failed session may be retried


def test_an_abandoned_claim_is_taken_over_after_the_timeout(filled: Catalog) -> None:
    sid = "20210201_093000"
    dead = filled.claim(sid, force=False, claim_timeout=3600)
    assert dead.claimed
    assert sid not in filled.pending(3600)
    assert sid in filled.pending(0.0)  # older than a zero timeout: its worker is presumed dead
    # the abandoned claim's time comes along, so a scheduler can request the session again under a new key
    claims = dict(filled.pending_claims(0.0))
    assert claims[sid] is not None
    assert claims["20210202_100000"] is None  # never claimed
    taken = filled.claim(sid, force=False, claim_timeout=0.0)
    assert taken.claimed
    assert taken.claim_id != dead.claim_id
    with pytest.raises(PreprocessError, match="claim was lost"):
        filled.mark_failed(dead, "late")


def test_racing_claims_have_exactly_one_winner(settings: Settings) -> None:
    catalog = open_catalog(settings)
    add(catalog, "20210401_080000", fatigue_level=1, hardware_model="X200")
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        mine = open_catalog(settings)  # one catalog (and connection) per worker, as separate processes have
        barrier.wait()
        wins.append(mine.claim("20210401_080000", force=False, claim_timeout=3600).claimed)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_list_by_status_and_limit(filled: Catalog) -> None:
    claim = filled.claim("20210202_100000", force=False, claim_timeout=3600)
    filled.mark_failed(claim, "x")
    assert [r.session_id for r in filled.list_sessions(SessionStatus.FAILED)] == ["20210202_100000"]
    assert [r.session_id for r in filled.list_sessions(limit=2)] == ["20210202_100000", "20210305_120000"]


WRITER = """
import sys, datetime as dt
from pathlib import Path
from headwater.config import load_settings
from headwater.sessions.catalog import open_catalog
from headwater.sessions.model import FileRef, FileZone, raw_prefix
from headwater.sessions.validate import ValidSession
from tests.conftest import require_service
from tests.sessions.conftest import make_project
from tests.warehouse.conftest import pg_url

catalog = open_catalog(load_settings(Path(sys.argv[1]), env={}))
day = int(sys.argv[2])
for i in range(10):
    sid = f"202104{day:02d}_08{i:02d}00"
    when = dt.datetime.strptime(sid, "%Y%m%d_%H%M%S")
    session = ValidSession(sid, Path(sid), when, {"fatigue_level": i % 5}, ("a.bin",), ("a.bin",), 1)
    prefix = raw_prefix(sid)
    catalog.record_upload(session, [FileRef(FileZone.RAW, prefix + "/a.bin", 1, "cd" * 32)], prefix)
    claim = catalog.claim(sid, force=False, claim_timeout=3600)
    catalog.mark_ready(claim, [], "processed/" + sid, "default")
    catalog.query("fatigue_level >= 2 and status = 'ready'")
"""


@pytest.mark.slow
def test_separate_processes_write_and_read_the_sqlite_catalog_at_once(tmp_path: Path) -> None:
    """Like the CLI and the Dagster daemon on the embedded file (WAL, busy timeout): three processes writing
    and querying together, none refused. (PostgreSQL is built for this; its claims race in the thread test.)"""
    settings = make_project(tmp_path / "p")
    open_catalog(settings).setup()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(settings.project_dir), str(day)],
            stderr=subprocess.PIPE,
        )
        for day in (1, 2, 3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    records = open_catalog(settings).list_sessions(SessionStatus.READY)
    assert len(records) == 30
    assert len(open_catalog(settings).query("fatigue_level >= 2")) == 18


@pytest.mark.postgres
def test_a_read_only_postgres_role_can_query_but_not_write(
    pg_catalog_schema: tuple[str, str], tmp_path: Path
) -> None:
    """Researchers get SELECT on the catalog schema only: opening the catalog needs no CREATE right."""

    url, schema = pg_catalog_schema
    owner = make_project(tmp_path / "owner", sessions={"catalog_url": url, "catalog_schema": schema})
    add(open_catalog(owner), "20210201_080000", fatigue_level=3, hardware_model="X200")
    role = f"hw_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE ROLE "{role}" LOGIN')
        con.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        con.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        reader_url = url.replace("postgres@", "").replace("://", f"://{role}@", 1)
        reader = make_project(
            tmp_path / "reader", sessions={"catalog_url": reader_url, "catalog_schema": schema}
        )
        catalog = open_catalog(reader)
        assert ids(catalog, "fatigue_level >= 3") == ["20210201_080000"]
        with pytest.raises(WarehouseError, match=r"must be owner of table sessions|permission denied"):
            catalog.promote("lux", "float")
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'DROP OWNED BY "{role}"')
            con.execute(f'DROP ROLE "{role}"')


def test_a_claim_left_by_a_dead_attempt_is_taken_back_by_the_same_owner_only(filled: Catalog) -> None:
    sid = "20210202_100000"
    dead = filled.claim(sid, force=False, claim_timeout=3600, owner="dagster-run:r1")
    assert dead.claimed
    assert not filled.claim(sid, force=True, claim_timeout=3600).claimed  # no owner: a live claim
    assert not filled.claim(sid, force=True, claim_timeout=3600, owner="dagster-run:r2").claimed
    assert not filled.claim(sid, force=True, claim_timeout=3600, owner="dagster-run:r").claimed  # a prefix
    retry = filled.claim(sid, force=True, claim_timeout=3600, owner="dagster-run:r1")
    assert retry.claimed
    assert retry.attempts == 2
    assert retry.claim_id != dead.claim_id
    with pytest.raises(PreprocessError, match="claim was lost"):
        filled.mark_failed(dead, "the dead attempt came back")  # it records nothing
    filled.mark_failed(retry, "ValueError: boom")
    record = filled.get(sid)
    assert record is not None
    assert record.status is SessionStatus.FAILED
