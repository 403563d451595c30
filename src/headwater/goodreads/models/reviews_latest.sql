-- Each review once: the row with the latest record_create_timestamp wins (the API re-sends ~1% of rows
-- with a newer one); a tie goes to the row that arrived later (file, then row in the file).
-- Only the ids that occur more than once are ranked (a window over every review would sort the whole
-- batch, text and all); every other row is kept by an anti-join against the few rows that lost.
-- Text normalised here (whitespace runs collapsed to one space, trimmed, empty as NULL), so that both
-- readers get the same text; only texts that need it pay for the regular expression (run on every
-- review it cost more than all the other models together).
-- unique: review_id
WITH repeated AS (
    SELECT review_id
    FROM src_reviews
    GROUP BY review_id
    HAVING count(*) > 1
),
superseded AS (
    SELECT _hw_file, _hw_row
    FROM (
        SELECT
            _hw_file,
            _hw_row,
            row_number() OVER (
                PARTITION BY review_id
                ORDER BY record_create_timestamp DESC NULLS LAST, _hw_file DESC, _hw_row DESC
            ) AS revision
        FROM src_reviews
        WHERE review_id IN (SELECT review_id FROM repeated)
    ) AS ranked
    WHERE revision > 1
)
SELECT
    r.review_id,
    r.user_id,
    r.book_id,
    r.author_id,
    CASE
        WHEN contains(r.review_text, '  ') OR contains(r.review_text, chr(9)) OR contains(r.review_text, chr(10))
            OR contains(r.review_text, chr(13)) OR starts_with(r.review_text, ' ')
            OR ends_with(r.review_text, ' ') OR r.review_text = ''
            THEN nullif(trim(regexp_replace(r.review_text, '\s+', ' ', 'g')), '')
        ELSE r.review_text
    END AS review_text,
    r.review_rating,
    r.review_votes,
    r.spoiler_flag,
    r.spoiler_state,
    r.review_added_date,
    r.review_updated_date,
    r.review_read_count,
    r.comments_count,
    r.review_url,
    r.record_create_timestamp
FROM src_reviews AS r
WHERE NOT EXISTS (
    SELECT 1 FROM superseded AS s WHERE s._hw_file = r._hw_file AND s._hw_row = r._hw_row
)
