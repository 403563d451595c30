"""The tested subset: constructs that sqlglot carries to Spark wrongly are refused with the reason."""

from __future__ import annotations

import pytest

from headwater.errors import SchemaError
from headwater.transform import check_subset, transpile


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT a, count(*) FROM t GROUP BY ALL", "GROUP BY ALL"),
        ("SELECT list(a ORDER BY b) FROM t", "list aggregates"),
        ("SELECT string_agg(a, ',' ORDER BY a) FROM t", "order is not kept"),
        ("SELECT dayname(d) FROM t", "Thursday vs Thu"),
        ("SELECT monthname(d) FROM t", "January vs Jan"),
        ("SELECT dayofweek(d) FROM t", "counts from 0"),
        ("SELECT isodow(d) FROM t", "mistranslated"),
        ("SELECT strptime(s, '%a %b %d %Y') FROM t", "strptime"),
        ("SELECT strftime(d, '%Y') FROM t", "strftime"),
        ("SELECT regexp_replace(s, 'a', 'b') FROM t", "'g' flag"),
        ("SELECT regexp_replace(s, '[[:space:]]+', ' ', 'g') FROM t", "POSIX"),
        ("SELECT regexp_extract(s, '\\p{L}+', 0) FROM t", "Unicode classes"),
        ("SELECT * EXCLUDE (a) FROM t", "EXCLUDE"),
        ("SELECT sum(a) OVER (PARTITION BY b) FROM t", "row_number"),
        ("SELECT ts - INTERVAL 5 MINUTE FROM t", "n \\* INTERVAL 1 MINUTE"),
        ("SELECT date_diff('month', a, b) FROM t", "'day' only"),
        ("SELECT CAST(a AS HUGEINT) FROM t", "cast to BIGINT"),
        ("SELECT CAST(a AS DECIMAL(10, 2)) FROM t", "cast to BIGINT"),
        ("SELECT string_split(s, ',') FROM t", "inside unnest"),
        ("SELECT unnest(string_split(s, d)) AS x FROM t", "unnest\\(string_split"),
        ("SELECT round(x) FROM t", "decimals"),
        ("SELECT my_udf(a) FROM t", "unknown to the transpiler"),
        ("SELECT list_sort(a) FROM t", "not proven"),
    ],
)
def test_refused_with_reason(sql: str, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason) as err:
        check_subset(sql, "m.sql")
    assert str(err.value).startswith("m.sql: ")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY b DESC) = 1",
        "SELECT ts - n * INTERVAL 1 MINUTE AS x FROM t",
        "SELECT nullif(trim(regexp_replace(s, '\\s+', ' ', 'g')), '') AS x FROM t",
        "SELECT b, unnest(string_split(s, ',')) AS part FROM t",
        "SELECT CAST(year(d) * 10000 + month(d) * 100 + day(d) AS INTEGER) AS k FROM t",
        "SELECT a FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.a = t.a)",
    ],
)
def test_accepted(sql: str) -> None:
    check_subset(sql)
    assert transpile(sql, "spark")


def test_transpile_adds_spark_null_order_and_drops_the_g_flag_it_does_not_need() -> None:
    out = transpile("SELECT regexp_replace(s, 'a+', 'b', 'g') AS x FROM t ORDER BY x")
    assert out == "SELECT REGEXP_REPLACE(s, 'a+', 'b') AS x FROM t ORDER BY x NULLS LAST"
    assert transpile("SELECT 1 AS x", "duckdb") == "SELECT 1 AS x"
