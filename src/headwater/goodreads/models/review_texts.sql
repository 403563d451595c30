-- The review texts, normalised, keyed like fact_reviews: kept out of the fact table so queries over the
-- facts never read them, loaded into the warehouse's review_text table (goodreads.load_review_text).
-- materialize: output
-- unique: review_id
SELECT
    review_id,
    review_text,
    record_create_timestamp
FROM reviews_latest
