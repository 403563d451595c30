"""Sizes and rates as people read them."""

from __future__ import annotations

from headwater.units import format_bytes, format_rate


def test_sizes_pick_their_unit() -> None:
    assert format_bytes(999) == "999 B"
    assert format_bytes(15_500) == "15.5 KB"
    assert format_bytes(626_400_000) == "626.4 MB"


def test_rates_pick_their_unit_so_a_small_job_is_not_zero() -> None:
    assert format_rate(15_500, 0.8) == "19.4 KB/s"
    assert format_rate(2_000_000_000, 5.7) == "350.9 MB/s"
