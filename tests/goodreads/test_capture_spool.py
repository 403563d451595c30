"""The spool's commit, rotation and recovery, driven directly through every crash state a kill -9 can leave
(the kill tests then prove it end to end)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.errors import DataError, UsageError
from headwater.goodreads.capture_schema import Entity, csv_header
from headwater.goodreads.spool import PARTIAL, EntitySpool, SpoolLayout, entity_of, spool_file_name

ROW = b'1,"Ann Lee","","https://www.goodreads.com/author/show/1",3.9,10,2,2020-01-01 00:00:00\n'
HEADER = csv_header(Entity.AUTHOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_spool(
    tmp_path: Path, clock: Clock, rotate_bytes: int = 10_000, rotate_seconds: float = 60.0
) -> EntitySpool:
    layout = SpoolLayout(tmp_path / "spool").create()
    spool = EntitySpool(
        layout, Entity.AUTHOR, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds, clock=clock
    )
    spool.recover("src-1")
    return spool


def data(layout: SpoolLayout) -> bytes:
    """Every committed row in closed and open files, in name order."""
    files = sorted([*layout.closed.glob("*.csv"), *layout.open.glob(f"*{PARTIAL}")], key=lambda p: p.name)
    out = b""
    for path in files:
        body = path.read_bytes()
        assert body.startswith(HEADER)
        out += body[len(HEADER) :]
    return out


def test_file_names_follow_the_contract() -> None:
    name = spool_file_name(Entity.REVIEWS, datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC), 12)
    assert name == "reviews_20240305T070809Z_000012.csv"
    assert entity_of(name) is Entity.REVIEWS
    assert entity_of("reviews_2024.csv") is None


def test_commit_rotates_by_size_and_by_age(tmp_path: Path) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock, rotate_bytes=len(HEADER) + 3 * len(ROW))
    layout = spool.layout
    spool.append(ROW * 2, 2, "c1")
    assert len(list(layout.open.iterdir())) == 1
    spool.append(ROW, 1, "c2")  # reaches rotate_bytes: closed
    assert not list(layout.open.iterdir())
    assert len(layout.closed_files()) == 1
    spool.append(ROW, 1, "c3")
    clock.now += 59
    assert not spool.rotate_if_old()
    clock.now += 1
    assert spool.rotate_if_old()
    names = [p.name for p in layout.closed_files()]
    assert [n.rsplit("_", 1)[1] for n in names] == ["000001.csv", "000002.csv"]
    assert data(layout) == ROW * 4
    cp = json.loads(layout.checkpoint_path(Entity.AUTHOR).read_text())
    assert cp["cursor"] == "c3"
    assert cp["rows"] == 4
    assert cp["open"] is None
    assert cp["next_seq"] == 3


def test_rows_written_but_not_yet_synced_are_cut_and_fetched_again(tmp_path: Path) -> None:
    clock = Clock()
    layout = SpoolLayout(tmp_path / "spool").create()
    spool = EntitySpool(layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, sync_seconds=0.5,
                        clock=clock)  # fmt: skip
    spool.recover("src-1")
    spool.append(ROW, 1, "c1")
    spool.append(ROW * 2, 2, "c2")  # written and flushed, not yet committed
    assert spool.cursor is None
    assert data(layout) == ROW * 3  # ...but in the spool already
    clock.now += 0.5
    assert spool.sync_if_due()
    assert spool.cursor == "c2"
    spool.append(ROW, 1, "c3")
    spool.release()  # a kill here
    again = EntitySpool(layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    assert again.recover("src-1").truncated_bytes == len(ROW)
    assert again.cursor == "c2"
    again.release()
    assert data(layout) == ROW * 3


def test_recover_cuts_bytes_written_after_the_last_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock)
    spool.append(ROW * 3, 3, "c1")
    opened = spool.checkpoint.open
    assert opened is not None
    spool.release()
    partial = spool.layout.open / f"{opened.name}{PARTIAL}"
    with partial.open("ab") as fh:  # a page appended, then killed before its checkpoint
        fh.write(ROW * 2 + ROW[:10])
    again = EntitySpool(spool.layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    found = again.recover("src-1")
    assert found.truncated_bytes == 2 * len(ROW) + 10
    assert again.cursor == "c1"
    again.append(ROW, 1, "c2")  # appends to the same file after the cut
    again.release()
    assert data(spool.layout) == ROW * 4


def test_recover_deletes_a_file_opened_but_never_committed(tmp_path: Path) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock)
    spool.append(ROW, 1, "c1")
    spool.close_file()
    orphan = spool.layout.open / f"{spool_file_name(Entity.AUTHOR, datetime.now(UTC), 2)}{PARTIAL}"
    orphan.write_bytes(HEADER + ROW)
    (spool.layout.state / ".author.json.x1y2.tmp").write_text("{")  # a checkpoint write cut short
    again = EntitySpool(spool.layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    found = again.recover("src-1")
    assert found.discarded_files == 1
    assert not orphan.exists()
    assert not list(spool.layout.state.glob(".*.tmp"))
    again.append(ROW, 1, "c2")
    again.close_file()
    assert data(spool.layout) == ROW * 2
    assert len(spool.layout.closed_files()) == 2  # seq 2 reused for the new file, no clash


@pytest.mark.parametrize("moved_to", ["closed", "outbox", "pushed"])
def test_recover_after_a_kill_between_rename_and_checkpoint(tmp_path: Path, moved_to: str) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock)
    spool.append(ROW * 2, 2, "c1")
    opened = spool.checkpoint.open
    assert opened is not None
    layout = spool.layout
    spool.release()
    target = {"closed": layout.closed, "outbox": layout.outbox / "b1", "pushed": layout.pushed / "b1"}[
        moved_to
    ]
    target.mkdir(parents=True, exist_ok=True)
    (layout.open / f"{opened.name}{PARTIAL}").rename(target / opened.name)  # renamed; checkpoint not updated
    again = EntitySpool(layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    found = again.recover("src-1")
    assert found.closed_by_crash
    assert again.checkpoint.open is None
    assert again.cursor == "c1"
    again.append(ROW, 1, "c2")
    assert again.checkpoint.open is not None
    assert again.checkpoint.open.name != opened.name
    again.release()


def test_recover_refuses_a_file_shorter_than_committed(tmp_path: Path) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock)
    spool.append(ROW * 2, 2, "c1")
    opened = spool.checkpoint.open
    assert opened is not None
    spool.release()
    partial = spool.layout.open / f"{opened.name}{PARTIAL}"
    partial.write_bytes(partial.read_bytes()[:-5])
    again = EntitySpool(spool.layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    with pytest.raises(DataError, match="committed") as info:
        again.recover("src-1")
    assert str(partial) in str(info.value)


def test_recover_refuses_another_source_and_a_broken_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    spool = make_spool(tmp_path, clock)
    spool.append(ROW, 1, "c1")
    spool.release()
    again = EntitySpool(spool.layout, Entity.AUTHOR, rotate_bytes=10_000, rotate_seconds=60, clock=clock)
    with pytest.raises(UsageError, match="src-1"):
        again.recover("src-2")
    spool.layout.checkpoint_path(Entity.AUTHOR).write_text("{not json")
    with pytest.raises(DataError, match="not a capture checkpoint"):
        again.recover("src-1")
