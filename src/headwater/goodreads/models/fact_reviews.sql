-- The review facts: dates in UTC (review_added_at) with the original offset kept
-- (review_added_utc_offset, minutes east of UTC), the UTC day as date_key (yyyymmdd), and enrichment:
-- rating bucket, review length in characters and in words. The text itself (four fifths of the bytes) is a
-- column of the fact, as in the original Goodreads warehouse: the warehouse is columnar by default, so
-- queries that do not name it never read it, and one table keyed on review_id means one key index to
-- build instead of two.
-- materialize: output
-- unique: review_id
SELECT
    review_id,
    user_id,
    book_id,
    author_id,
    CAST(year(review_added_at) * 10000 + month(review_added_at) * 100 + day(review_added_at) AS INTEGER) AS date_key,
    review_rating,
    CASE
        WHEN review_rating <= 2 THEN 'negative'
        WHEN review_rating = 3 THEN 'neutral'
        ELSE 'positive'
    END AS rating_bucket,
    review_chars,
    review_words,
    review_votes,
    spoiler_flag,
    spoiler_state,
    review_added_at,
    review_added_utc_offset,
    review_updated_at,
    review_updated_utc_offset,
    review_read_count,
    comments_count,
    review_url,
    review_text,
    record_create_timestamp
FROM reviews_parsed
