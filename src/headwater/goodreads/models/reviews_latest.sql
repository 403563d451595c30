-- Each review once: the row with the latest record_create_timestamp wins; ties go to the later row.
-- unique: review_id
SELECT
    review_id,
    user_id,
    book_id,
    author_id,
    review_text,
    review_rating,
    review_votes,
    spoiler_flag,
    spoiler_state,
    review_added_date,
    review_updated_date,
    review_read_count,
    comments_count,
    review_url,
    record_create_timestamp
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY review_id
            ORDER BY record_create_timestamp DESC NULLS LAST, _hw_file DESC, _hw_row DESC
        ) AS revision
    FROM src_reviews
) AS ranked
WHERE revision = 1
