"""Schema evolution under each policy, on both backends; breaking changes write nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.errors import SchemaChangeError
from headwater.warehouse import ChangeKind, LoadRequest, LoadResult, SchemaChangePolicy, SqlType, Warehouse
from headwater.warehouse.types import BIGINT, DOUBLE, INTEGER, TypeName, varchar
from tests.warehouse.conftest import content_hash, rows_of

EVOLVE, FREEZE, FAIL = SchemaChangePolicy.EVOLVE, SchemaChangePolicy.FREEZE, SchemaChangePolicy.FAIL


def base(wh: Warehouse) -> None:
    t = pa.table({"id": pa.array([1, 2], pa.int64()), "n": pa.array([1, 2], pa.int32()), "s": ["a", "b"]})
    wh.load(t, LoadRequest("t", "b0", primary_key=("id",)))


def history(wh: Warehouse) -> list[tuple[object, ...]]:
    rows = rows_of(
        wh,
        "SELECT version, change, column_name, old_type, new_type FROM _hw_schema_history "
        "WHERE table_name = 't' ORDER BY version, change",
    )
    return [tuple(r.values()) for r in rows]


def column_type(wh: Warehouse, column: str) -> SqlType:
    (info,) = [i for i in wh.tables() if i.name == "t"]
    return info.columns[column]


def load(wh: Warehouse, batch: str, policy: SchemaChangePolicy = EVOLVE, **cols: pa.Array) -> LoadResult:
    return wh.load(pa.table(cols), LoadRequest("t", batch, on_schema_change=policy))


def test_new_column_is_added_and_recorded(warehouse: Warehouse) -> None:
    base(warehouse)
    result = load(
        warehouse, "b1", id=pa.array([3], pa.int64()), n=pa.array([3], pa.int32()), s=["c"], e=[1.5]
    )
    assert [c.kind for c in result.changes] == [ChangeKind.ADD_COLUMN]
    assert result.schema_version == 2
    assert rows_of(warehouse, "SELECT id, e FROM t ORDER BY id") == [
        {"id": 1, "e": None},
        {"id": 2, "e": None},
        {"id": 3, "e": 1.5},
    ]
    assert history(warehouse)[-1] == (2, "add_column", "e", None, "DOUBLE")


@pytest.mark.parametrize(("incoming", "widened"), [(pa.int64(), BIGINT), (pa.float64(), DOUBLE)])
def test_compatible_type_is_widened(warehouse: Warehouse, incoming: pa.DataType, widened: object) -> None:
    base(warehouse)
    load(warehouse, "b1", id=pa.array([3], pa.int64()), n=pa.array([2**40], incoming), s=["c"])
    assert column_type(warehouse, "n") == widened
    assert history(warehouse)[-1] == (2, "widen_column", "n", "INTEGER", str(widened))
    assert rows_of(warehouse, "SELECT n FROM t WHERE id = 3") == [{"n": 2**40}]


def test_varchar_length_is_widened(warehouse: Warehouse) -> None:
    warehouse.create_table("t", {"id": BIGINT, "s": varchar(5)}, ["id"])
    t = pa.table({"id": pa.array([1], pa.int64()), "s": ["a much longer text"]})
    result = warehouse.load(t, LoadRequest("t", "b1", primary_key=("id",), column_types={"s": varchar(40)}))
    # DuckDB keeps no VARCHAR length (every VARCHAR is unbounded); PostgreSQL widens the column
    assert column_type(warehouse, "s") in (varchar(40), varchar())
    assert rows_of(warehouse, "SELECT s FROM t") == [{"s": "a much longer text"}]
    if column_type(warehouse, "s") == varchar(40):
        assert [c.kind for c in result.changes] == [ChangeKind.WIDEN_COLUMN]


def test_dropped_column_is_kept_null_filled_and_recorded_once(warehouse: Warehouse) -> None:
    base(warehouse)
    for batch, key in (("b1", 3), ("b2", 4)):
        result = load(warehouse, batch, id=pa.array([key], pa.int64()), s=["x"])
        assert result.schema_version == 1
    assert rows_of(warehouse, "SELECT id, n FROM t ORDER BY id") == [
        {"id": 1, "n": 1},
        {"id": 2, "n": 2},
        {"id": 3, "n": None},
        {"id": 4, "n": None},
    ]
    missing = [h for h in history(warehouse) if h[1] == "missing_in_source"]
    assert missing == [(1, "missing_in_source", "n", "INTEGER", None)]


def test_text_into_integer_is_refused_and_nothing_written(warehouse: Warehouse) -> None:
    base(warehouse)
    before, hist = content_hash(warehouse, "t"), history(warehouse)
    with pytest.raises(SchemaChangeError, match=r"^t\.n: cannot load VARCHAR into a INTEGER column"):
        load(warehouse, "bad", id=pa.array([9], pa.int64()), n=["seven"], s=["z"], new=[1])
    assert content_hash(warehouse, "t") == before
    assert history(warehouse) == hist
    assert "new" not in column_type_names(warehouse)
    assert rows_of(warehouse, "SELECT count(*) AS n FROM _hw_load_audit WHERE batch_id = 'bad'") == [{"n": 0}]


def column_type_names(wh: Warehouse) -> list[str]:
    (info,) = [i for i in wh.tables() if i.name == "t"]
    return list(info.columns)


def test_changed_primary_key_is_refused(warehouse: Warehouse) -> None:
    base(warehouse)
    t = pa.table({"id": pa.array([1], pa.int64()), "n": pa.array([1], pa.int32()), "s": ["a"]})
    with pytest.raises(SchemaChangeError, match=r"^t\.s: primary key differs from the table's \(id\)"):
        warehouse.load(t, LoadRequest("t", "b1", primary_key=("s",)))


def test_freeze_ignores_new_columns_and_refuses_widening(warehouse: Warehouse) -> None:
    base(warehouse)
    result = load(
        warehouse, "b1", FREEZE, id=pa.array([3], pa.int64()), n=pa.array([3], pa.int32()), s=["c"], e=[1]
    )
    assert [c.kind for c in result.changes] == [ChangeKind.IGNORED_COLUMN]
    assert column_type_names(warehouse) == ["id", "n", "s"]
    with pytest.raises(
        SchemaChangeError, match=r"^t\.n: needs widening INTEGER -> BIGINT but --on-schema-change is freeze"
    ):
        load(warehouse, "b2", FREEZE, id=pa.array([4], pa.int64()), n=pa.array([4], pa.int64()), s=["d"])
    assert column_type(warehouse, "n") == INTEGER


def test_fail_refuses_any_change(warehouse: Warehouse) -> None:
    base(warehouse)
    ok = load(warehouse, "same", FAIL, id=pa.array([3], pa.int64()), n=pa.array([3], pa.int32()), s=["c"])
    assert ok.inserted == 1
    with pytest.raises(SchemaChangeError, match=r"^t\.e: new column .* is fail"):
        load(warehouse, "b1", FAIL, id=pa.array([4], pa.int64()), n=pa.array([4], pa.int32()), s=["d"], e=[1])
    with pytest.raises(
        SchemaChangeError, match=r"^t\.n: column missing from the source but --on-schema-change is fail"
    ):
        load(warehouse, "b2", FAIL, id=pa.array([4], pa.int64()), s=["d"])
    assert rows_of(warehouse, "SELECT count(*) AS n FROM t") == [{"n": 3}]


def test_int_source_into_wider_column_needs_no_change(warehouse: Warehouse) -> None:
    base(warehouse)
    load(warehouse, "b1", id=pa.array([3], pa.int32()), n=pa.array([3], pa.int8()), s=["c"])
    assert column_type(warehouse, "id") == BIGINT
    assert column_type(warehouse, "n").name is TypeName.INTEGER
    assert len(history(warehouse)) == 1
