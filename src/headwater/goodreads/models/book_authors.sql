-- Book-author links: one row per (book, author) from each book's comma-separated authors list.
-- materialize: output
-- unique: book_id, author_id
SELECT DISTINCT
    book_id,
    author_id
FROM (
    SELECT
        book_id,
        TRY_CAST(nullif(trim(author), '') AS BIGINT) AS author_id
    FROM (
        SELECT
            book_id,
            unnest(string_split(authors, ',')) AS author
        FROM books_latest
        WHERE authors IS NOT NULL
    ) AS listed
) AS links
WHERE author_id IS NOT NULL
