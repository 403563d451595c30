-- Each book once: the row with the latest record_create_timestamp wins; ties go to the later row.
-- unique: book_id
SELECT
    book_id,
    title,
    title_without_series,
    image_url,
    book_url,
    num_pages,
    format,
    edition_information,
    publisher,
    publication_day,
    publication_month,
    publication_year,
    average_rating,
    ratings_count,
    description,
    authors,
    published,
    record_create_timestamp
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY book_id
            ORDER BY record_create_timestamp DESC NULLS LAST, _hw_file DESC, _hw_row DESC
        ) AS revision
    FROM src_book
) AS ranked
WHERE revision = 1
