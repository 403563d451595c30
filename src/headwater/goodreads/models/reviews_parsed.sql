-- Review dates parsed from 'Tue Feb 11 18:08:25 -0800 2020' (fixed width, checked when the batch was
-- read): normalised to UTC (18:08:25 at UTC-8 is 02:08:25 UTC the next day), and the offset kept in
-- minutes east of UTC (-480), and the text's measures (length in characters and in words). A view: when
-- this was a table holding the texts (four fifths of the bytes), a 10 GB batch spilled it past the memory
-- limit; fact_reviews, its one reader, streams the text through.
-- unique: review_id
SELECT
    review_id,
    user_id,
    book_id,
    author_id,
    CAST(coalesce(length(review_text), 0) AS INTEGER) AS review_chars,
    CAST(
        CASE
            WHEN review_text IS NULL THEN 0
            ELSE length(review_text) - length(replace(review_text, ' ', '')) + 1
        END AS INTEGER
    ) AS review_words,
    review_text,
    review_rating,
    review_votes,
    spoiler_flag,
    nullif(lower(trim(spoiler_state)), '') AS spoiler_state,
    CAST(
        substr(review_added_date, 27, 4) || '-'
        || CASE substr(review_added_date, 5, 3)
                WHEN 'Jan' THEN '01' WHEN 'Feb' THEN '02' WHEN 'Mar' THEN '03' WHEN 'Apr' THEN '04'
                WHEN 'May' THEN '05' WHEN 'Jun' THEN '06' WHEN 'Jul' THEN '07' WHEN 'Aug' THEN '08'
                WHEN 'Sep' THEN '09' WHEN 'Oct' THEN '10' WHEN 'Nov' THEN '11' WHEN 'Dec' THEN '12'
            END || '-'
        || substr(review_added_date, 9, 2) || ' ' || substr(review_added_date, 12, 8)
        AS TIMESTAMP
    ) - (CASE WHEN substr(review_added_date, 21, 1) = '-' THEN -1 ELSE 1 END)
        * (CAST(substr(review_added_date, 22, 2) AS INTEGER) * 60 + CAST(substr(review_added_date, 24, 2) AS INTEGER)) * INTERVAL 1 MINUTE AS review_added_at,
    CAST(
        (CASE WHEN substr(review_added_date, 21, 1) = '-' THEN -1 ELSE 1 END)
        * (CAST(substr(review_added_date, 22, 2) AS INTEGER) * 60 + CAST(substr(review_added_date, 24, 2) AS INTEGER))
        AS INTEGER
    ) AS review_added_utc_offset,
    CAST(
        substr(review_updated_date, 27, 4) || '-'
        || CASE substr(review_updated_date, 5, 3)
                WHEN 'Jan' THEN '01' WHEN 'Feb' THEN '02' WHEN 'Mar' THEN '03' WHEN 'Apr' THEN '04'
                WHEN 'May' THEN '05' WHEN 'Jun' THEN '06' WHEN 'Jul' THEN '07' WHEN 'Aug' THEN '08'
                WHEN 'Sep' THEN '09' WHEN 'Oct' THEN '10' WHEN 'Nov' THEN '11' WHEN 'Dec' THEN '12'
            END || '-'
        || substr(review_updated_date, 9, 2) || ' ' || substr(review_updated_date, 12, 8)
        AS TIMESTAMP
    ) - (CASE WHEN substr(review_updated_date, 21, 1) = '-' THEN -1 ELSE 1 END)
        * (CAST(substr(review_updated_date, 22, 2) AS INTEGER) * 60 + CAST(substr(review_updated_date, 24, 2) AS INTEGER)) * INTERVAL 1 MINUTE AS review_updated_at,
    CAST(
        (CASE WHEN substr(review_updated_date, 21, 1) = '-' THEN -1 ELSE 1 END)
        * (CAST(substr(review_updated_date, 22, 2) AS INTEGER) * 60 + CAST(substr(review_updated_date, 24, 2) AS INTEGER))
        AS INTEGER
    ) AS review_updated_utc_offset,
    review_read_count,
    comments_count,
    nullif(trim(review_url), '') AS review_url,
    record_create_timestamp
FROM reviews_latest
