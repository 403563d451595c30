-- Each author once: the row with the latest record_create_timestamp wins (the API re-sends ~1% of rows
-- with a newer one); a tie goes to the row that arrived later (file, then row in the file).
-- unique: author_id
SELECT
    author_id,
    name,
    role,
    profile_url,
    average_rating,
    rating_count,
    text_review_count,
    record_create_timestamp
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY author_id
            ORDER BY record_create_timestamp DESC NULLS LAST, _hw_file DESC, _hw_row DESC
        ) AS revision
    FROM src_author
) AS ranked
WHERE revision = 1
