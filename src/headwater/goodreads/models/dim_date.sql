-- The date dimension: one row per UTC day a review was added, with calendar attributes. Day and
-- month names come from CASE tables: dayname()/monthname() differ between DuckDB and Spark.
-- materialize: output
-- unique: date_key
SELECT
    date_key,
    review_date AS full_date,
    CAST(year(review_date) AS INTEGER) AS year,
    CAST(quarter(review_date) AS INTEGER) AS quarter,
    CAST(month(review_date) AS INTEGER) AS month,
    CASE CAST(month(review_date) AS INTEGER)
        WHEN 1 THEN 'January' WHEN 2 THEN 'February' WHEN 3 THEN 'March' WHEN 4 THEN 'April'
        WHEN 5 THEN 'May' WHEN 6 THEN 'June' WHEN 7 THEN 'July' WHEN 8 THEN 'August'
        WHEN 9 THEN 'September' WHEN 10 THEN 'October' WHEN 11 THEN 'November' ELSE 'December'
    END AS month_name,
    CAST(day(review_date) AS INTEGER) AS day_of_month,
    iso_day_of_week AS day_of_week,
    CASE iso_day_of_week
        WHEN 1 THEN 'Monday' WHEN 2 THEN 'Tuesday' WHEN 3 THEN 'Wednesday' WHEN 4 THEN 'Thursday'
        WHEN 5 THEN 'Friday' WHEN 6 THEN 'Saturday' ELSE 'Sunday'
    END AS day_name,
    iso_day_of_week >= 6 AS is_weekend
FROM (
    SELECT
        date_key,
        review_date,
        CAST(((date_diff('day', DATE '1970-01-05', review_date) % 7) + 7) % 7 + 1 AS INTEGER) AS iso_day_of_week
    FROM (
        SELECT DISTINCT
            date_key,
            CAST(review_added_at AS DATE) AS review_date
        FROM fact_reviews
        WHERE review_added_at IS NOT NULL
    ) AS days
) AS numbered
