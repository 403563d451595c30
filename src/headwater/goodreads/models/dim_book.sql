-- Books for the star schema: titles normalised, the series split out of the title
-- ("Leviathan Wakes (The Expanse, #1)" -> series_name "The Expanse", series_number 1), the first of
-- the listed authors as author_id (every author is in book_authors).
-- materialize: output
-- unique: book_id
SELECT
    book_id,
    nullif(trim(regexp_replace(title, '\s+', ' ', 'g')), '') AS title,
    nullif(trim(regexp_replace(title_without_series, '\s+', ' ', 'g')), '') AS title_without_series,
    nullif(trim(regexp_extract(title, '\(([^()#]*),\s*#[0-9]+\)\s*$', 1)), '') AS series_name,
    TRY_CAST(nullif(regexp_extract(title, '#([0-9]+)\)\s*$', 1), '') AS INTEGER) AS series_number,
    TRY_CAST(nullif(regexp_extract(authors, '^\s*([0-9]+)', 1), '') AS BIGINT) AS author_id,
    nullif(trim(image_url), '') AS image_url,
    nullif(trim(book_url), '') AS book_url,
    num_pages,
    nullif(trim(format), '') AS format,
    nullif(trim(edition_information), '') AS edition_information,
    nullif(trim(regexp_replace(publisher, '\s+', ' ', 'g')), '') AS publisher,
    publication_day,
    publication_month,
    publication_year,
    average_rating,
    ratings_count,
    nullif(trim(regexp_replace(description, '\s+', ' ', 'g')), '') AS description,
    published,
    record_create_timestamp
FROM books_latest
