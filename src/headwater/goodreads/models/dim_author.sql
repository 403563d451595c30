-- Authors for the star schema: names with whitespace collapsed and trimmed, empty text as NULL.
-- materialize: output
-- unique: author_id
SELECT
    author_id,
    nullif(trim(regexp_replace(name, '\s+', ' ', 'g')), '') AS name,
    nullif(trim(role), '') AS role,
    nullif(trim(profile_url), '') AS profile_url,
    average_rating,
    rating_count,
    text_review_count,
    record_create_timestamp
FROM authors_latest
