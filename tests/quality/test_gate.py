"""The gate: a failing error check leaves the published tables untouched, quarantines exactly the failing
rows (once each, with every check it failed) and sends one alert; warn failures only report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import QualityGateError
from headwater.quality import (
    GateMode,
    HistoryStore,
    gate_batch,
    list_quarantine,
    parse_checks,
    read_history,
    require_gate,
    show_quarantine,
    trends,
)
from headwater.warehouse import LoadMode, LoadRequest, Warehouse
from tests.alerting import WebhookReceiver
from tests.quality.conftest import make_settings
from tests.warehouse.conftest import content_hash

CHECKS: list[dict[str, Any]] = [
    {"type": "not_null", "columns": ["order_id", "customer_id"]},
    {"type": "unique", "column": "order_id"},
    {"type": "range", "column": "amount", "min": 0},
    {"type": "relationships", "column": "customer_id", "to": "dim_customers.customer_id"},
    {"type": "accepted_values", "column": "status", "values": ["new", "paid"], "severity": "warn"},
]


def orders(
    ids: list[int | None], customers: list[int | None], amounts: list[float], status: list[str]
) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int64()),
            "customer_id": pa.array(customers, pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "status": status,
        }
    )


def published(wh: Warehouse) -> None:
    wh.load(
        pa.table({"customer_id": pa.array([1, 2, 3], pa.int64())}),
        LoadRequest("dim_customers", "c1", LoadMode.APPEND),
    )
    first = orders([1, 2], [1, 2], [10.0, 20.0], ["new", "paid"])
    wh.load(first, LoadRequest("fact_orders", "o1", LoadMode.MERGE, primary_key=("order_id",)))


def bad_batch() -> pa.Table:
    # row 0 ok; 1 and 2 share order_id 3; 3 has no customer; 4 a negative amount and an orphan customer;
    # 5 only fails the warn check (status) and so is not quarantined
    return orders(
        [3, 3, 4, 5, 6, 7],
        [1, 2, None, 99, 1, 2],
        [5.0, 6.0, 7.0, -1.0, 8.0, 9.0],
        ["new", "new", "paid", "new", "paid", "refunded"],
    )


def test_a_failing_gate_holds_the_batch_quarantines_exactly_the_failing_rows_and_alerts_once(
    tmp_path: Path, warehouse: Warehouse, webhook_receiver: WebhookReceiver
) -> None:
    settings = make_settings(
        tmp_path, alerts={"webhook_url": webhook_receiver.url}, quality={"checks": {"fact_orders": CHECKS}}
    )
    published(warehouse)
    before = content_hash(warehouse, "fact_orders", "order_id")
    batch = bad_batch()
    result = gate_batch(settings, "fact_orders", batch, dataset="orders", batch_id="o2", warehouse=warehouse)
    if result.publish:  # what a pipeline does: load only what the gate lets through
        warehouse.load(batch, LoadRequest("fact_orders", "o2", LoadMode.MERGE, primary_key=("order_id",)))
    assert not result.publish
    assert content_hash(warehouse, "fact_orders", "order_id") == before

    entry, rows = show_quarantine(settings, result.quarantine.entry_id if result.quarantine else "", None)
    assert result.quarantined_rows == entry.rows == 4
    held = {(r["order_id"], r["customer_id"]): r for r in rows.to_pylist()}
    assert set(held) == {(3, 1), (3, 2), (4, None), (5, 99)}
    assert (
        held[(5, 99)]["_hw_check"] == "range(amount); relationships(customer_id -> dim_customers.customer_id)"
    )
    assert "amount outside [0, ]" in held[(5, 99)]["_hw_reason"]
    assert held[(4, None)]["_hw_check"] == "not_null(order_id, customer_id)"
    assert entry.checks == {
        "unique(order_id)": 2,
        "not_null(order_id, customer_id)": 1,
        "range(amount)": 1,
        "relationships(customer_id -> dim_customers.customer_id)": 1,
    }
    assert entry.dataset == "orders"
    assert entry.batch_id == "o2"

    received = webhook_receiver.wait(1, timeout=10)
    assert len(received) == 1
    alert = received[0].body["headwater"]
    assert "fact_orders batch o2 held back" in alert["title"]
    assert "unique(order_id)" in alert["text"]
    assert "accepted_values(status)" in alert["text"]  # the warning is mentioned, not gated

    again = gate_batch(settings, "fact_orders", batch, dataset="orders", batch_id="o2", warehouse=warehouse)
    assert not again.publish
    assert again.alert is not None
    assert again.alert.skipped_duplicate
    assert again.quarantine is not None
    assert result.quarantine is not None
    assert again.quarantine.entry_id == result.quarantine.entry_id  # same rows, same entry
    time.sleep(0.5)
    assert len(webhook_receiver.received) == 1
    assert len(list_quarantine(settings, "orders")) == 1

    history = read_history(HistoryStore(warehouse=warehouse), table="fact_orders")
    assert len(history) == 2 * len(CHECKS)
    summary = {t.check: t for t in trends(history)}
    assert summary["unique(order_id)"].failures == 2
    assert not summary["accepted_values(status)"].last_passed


def test_a_passing_batch_is_published_and_warnings_only_report(
    tmp_path: Path, warehouse: Warehouse, webhook_receiver: WebhookReceiver
) -> None:
    settings = make_settings(
        tmp_path, alerts={"webhook_url": webhook_receiver.url}, quality={"checks": {"fact_orders": CHECKS}}
    )
    published(warehouse)
    batch = orders([3, 4], [1, 3], [1.0, 2.0], ["new", "refunded"])
    result = require_gate(settings, "fact_orders", batch, batch_id="o3", warehouse=warehouse)
    assert result.publish
    assert result.quarantine is None
    assert result.alert is None
    assert [r.name for r in result.report.failed_warnings] == ["accepted_values(status)"]
    warehouse.load(batch, LoadRequest("fact_orders", "o3", LoadMode.MERGE, primary_key=("order_id",)))
    assert warehouse.query("SELECT count(*) AS n FROM fact_orders").column(0)[0].as_py() == 4
    time.sleep(0.3)
    assert webhook_receiver.received == []


def test_require_gate_raises_a_one_line_error_with_exit_code_3(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, quality={"checks": {"t": [{"type": "not_null", "column": "a"}]}})
    with pytest.raises(QualityGateError) as err:
        require_gate(settings, "t", pa.table({"a": [1, None]}), batch_id="b1", alert=False)
    assert err.value.exit_code == 3
    assert "t batch b1 held back: not_null(a)" in str(err.value)
    assert "\n" not in str(err.value)


def test_split_mode_publishes_the_passing_rows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    checks = [c for c in CHECKS if c["type"] != "relationships"]
    batch = bad_batch()
    path = tmp_path / "batch.parquet"
    pq.write_table(batch, path)
    result = gate_batch(
        settings, "fact_orders", path, batch_id="o4", checks=parse_checks(checks), mode=GateMode.SPLIT, alert=False,
        clean_path=tmp_path / "clean.parquet",
    )  # fmt: skip
    assert result.publish
    assert result.quarantined_rows == 4  # 3, 3 (duplicate), 4 (no customer), 5 (negative amount)
    assert pq.read_table(tmp_path / "clean.parquet").column("order_id").to_pylist() == [6, 7]


def test_batch_level_failures_hold_even_in_split_mode_and_row_count_reads_history(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    checks = parse_checks([{"type": "row_count", "min": 1, "max_change_pct": 50}])
    ok = gate_batch(
        settings, "t", pa.table({"a": list(range(10))}), batch_id="b1", checks=checks, alert=False
    )
    assert ok.publish
    shrunk = gate_batch(
        settings, "t", pa.table({"a": [1, 2]}), batch_id="b2", checks=checks, alert=False, mode=GateMode.SPLIT
    )
    assert not shrunk.publish
    assert shrunk.quarantine is None  # nothing row-level to hold: the batch as a whole waits
    assert "-80.0% vs the previous batch (10)" in shrunk.summary()
    assert (tmp_path / ".headwater/quality/check-history.jsonl").is_file()
