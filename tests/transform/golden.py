"""Golden models: every construct of the tested subset, run on DuckDB and on Spark over the same input
(``conftest.SAMPLE``) by ``test_subset_golden.py``, which asserts identical rows."""

from __future__ import annotations

GOLDEN_MODELS: dict[str, str] = {
    "text": """-- materialize: output
SELECT
    id,
    nullif(trim(regexp_replace(s, '\\s+', ' ', 'g')), '') AS collapsed,
    lower(s) AS low,
    upper(s) AS up,
    CAST(length(s) AS INTEGER) AS chars,
    CAST(length(s) - length(replace(s, ' ', '')) AS INTEGER) AS spaces,
    substr(when_text, 5, 3) AS month_text,
    substr(s, 3) AS tail,
    s || '|' || coalesce(list, '-') AS joined,
    regexp_extract(s, '\\(([^()#]*),\\s*#[0-9]+\\)\\s*$', 1) AS series,
    TRY_CAST(nullif(regexp_extract(s, '#([0-9]+)\\)\\s*$', 1), '') AS INTEGER) AS series_number,
    regexp_extract(s, 'a.', 0) AS whole_match,
    contains(s, '  ') OR contains(s, chr(9)) OR contains(s, chr(10)) AS has_runs,
    starts_with(s, ' ') OR ends_with(s, ' ') AS padded,
    s LIKE '%Zola%' AS liked,
    s IN ('', 'duplicate id') AS listed
FROM t
""",
    "logic": """-- materialize: output
SELECT
    id,
    CASE WHEN rating <= 2 THEN 'negative' WHEN rating = 3 THEN 'neutral' WHEN rating > 3 THEN 'positive' END AS bucket,
    CASE rating WHEN 5 THEN 'five' ELSE 'other' END AS simple_case,
    if(flag, 'yes', 'no') AS yes_no,
    coalesce(rating, -1) AS rating_or,
    nullif(rating, 3) AS not_three,
    greatest(rating, 2) AS at_least_two,
    least(rating, 4) AS at_most_four,
    rating BETWEEN 2 AND 4 AS mid,
    rating IS NULL AS missing,
    flag AND rating > 3 AS both_true,
    NOT flag OR rating IS NULL AS either
FROM t
""",
    "casts": """-- materialize: output
SELECT
    id,
    CAST(rating AS INTEGER) AS as_int,
    CAST(rating AS DOUBLE) / 2 AS halved,
    CAST(round(x, 0) AS BIGINT) AS x_int,
    CAST(id AS VARCHAR) AS id_text,
    TRY_CAST(s AS BIGINT) AS s_number,
    TRY_CAST(list AS BIGINT) AS list_number,
    CAST(ts AS DATE) AS day,
    CAST('2020-02-11 18:08:25' AS TIMESTAMP) AS literal_ts,
    round(x / 3, 3) AS rounded,
    abs(x) AS magnitude,
    rating % 2 AS odd,
    CAST(flag AS INTEGER) AS flag_int
FROM t
""",
    "dates": """-- materialize: output
SELECT
    id,
    CAST(year(d) AS INTEGER) AS y,
    CAST(quarter(d) AS INTEGER) AS q,
    CAST(month(d) AS INTEGER) AS m,
    CAST(day(d) AS INTEGER) AS dd,
    CAST(year(d) * 10000 + month(d) * 100 + day(d) AS INTEGER) AS date_key,
    CAST(((date_diff('day', DATE '1970-01-05', d) % 7) + 7) % 7 + 1 AS INTEGER) AS iso_day,
    CAST(date_diff('day', DATE '2020-01-01', d) AS INTEGER) AS days_since,
    ts - CAST(substr(when_text, 22, 2) AS INTEGER) * 60 * INTERVAL 1 MINUTE AS shifted,
    ts + 2 * INTERVAL 1 HOUR AS later,
    ts - INTERVAL 1 DAY AS day_before,
    ts + 30 * INTERVAL 1 SECOND AS half_minute,
    CAST(
        substr(when_text, 27, 4) || '-'
        || CASE substr(when_text, 5, 3) WHEN 'Jan' THEN '01' WHEN 'Feb' THEN '02' WHEN 'Dec' THEN '12' END
        || '-' || substr(when_text, 9, 2) || ' ' || substr(when_text, 12, 8)
        AS TIMESTAMP
    ) AS parsed_local
FROM t
""",
    "aggregates": """-- materialize: output
SELECT
    flag,
    count(*) AS n,
    count(rating) AS rated,
    count(DISTINCT id) AS ids,
    CAST(sum(rating) AS BIGINT) AS total,
    avg(CAST(rating AS DOUBLE)) AS mean,
    min(ts) AS first_ts,
    max(s) AS last_text
FROM t
GROUP BY flag
HAVING count(*) >= 1
""",
    "latest": """-- materialize: output
SELECT id, s, rating
FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY ts DESC NULLS LAST, rating DESC) AS rn
    FROM t
) AS ranked
WHERE rn = 1
""",
    "qualified": """-- materialize: output
SELECT id, rating FROM t QUALIFY row_number() OVER (PARTITION BY id ORDER BY rating ASC NULLS LAST) = 1
""",
    "exploded": """-- materialize: output
SELECT DISTINCT id, TRY_CAST(nullif(trim(part), '') AS BIGINT) AS part
FROM (SELECT id, unnest(string_split(list, ',')) AS part FROM t WHERE list IS NOT NULL) AS parts
""",
    "joined": """-- materialize: output
WITH firsts AS (SELECT id, min(rating) AS low FROM t GROUP BY id)
SELECT t.id, f.low, t.rating
FROM t
LEFT JOIN firsts AS f ON f.id = t.id
WHERE t.id IN (SELECT id FROM t WHERE rating IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM t AS u WHERE u.id = t.id AND u.rating > 4)
UNION ALL
SELECT id, NULL AS low, rating FROM t WHERE id = 4
""",
    "from_output": """-- materialize: output
SELECT bucket, count(*) AS n FROM logic GROUP BY bucket
""",
    "kept": """-- materialize: table
SELECT id, rating FROM t WHERE rating IS NOT NULL
""",
    "from_table": """-- materialize: output
SELECT CAST(count(*) AS BIGINT) AS n, CAST(sum(rating) AS BIGINT) AS total FROM kept
""",
}
