-- The review facts: dates normalised to UTC (review_added_at) with the original offset kept
-- (review_added_utc_offset, minutes east of UTC), the day as date_key (yyyymmdd, UTC), and enrichment:
-- rating bucket, review length in characters and words.
-- materialize: output
-- unique: review_id
SELECT
    review_id,
    user_id,
    book_id,
    author_id,
    CAST(
        year(added_local - added_offset * INTERVAL 1 MINUTE) * 10000
        + month(added_local - added_offset * INTERVAL 1 MINUTE) * 100
        + day(added_local - added_offset * INTERVAL 1 MINUTE)
        AS INTEGER
    ) AS date_key,
    review_rating,
    CASE
        WHEN review_rating <= 2 THEN 'negative'
        WHEN review_rating = 3 THEN 'neutral'
        ELSE 'positive'
    END AS rating_bucket,
    review_text,
    CAST(coalesce(length(review_text), 0) AS INTEGER) AS review_chars,
    CAST(
        CASE
            WHEN review_text IS NULL THEN 0
            ELSE length(review_text) - length(replace(review_text, ' ', '')) + 1
        END AS INTEGER
    ) AS review_words,
    review_votes,
    spoiler_flag,
    spoiler_state,
    added_local - added_offset * INTERVAL 1 MINUTE AS review_added_at,
    added_offset AS review_added_utc_offset,
    updated_local - updated_offset * INTERVAL 1 MINUTE AS review_updated_at,
    updated_offset AS review_updated_utc_offset,
    review_read_count,
    comments_count,
    review_url,
    record_create_timestamp
FROM reviews_parsed
