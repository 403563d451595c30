-- Each user once: the row with the latest record_create_timestamp wins; ties go to the later row.
-- unique: user_id
SELECT
    user_id,
    user_display_name,
    user_name,
    location,
    profile_link,
    uri,
    user_image_url,
    small_image_url,
    has_image,
    record_create_timestamp
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY user_id
            ORDER BY record_create_timestamp DESC NULLS LAST, _hw_file DESC, _hw_row DESC
        ) AS revision
    FROM src_user
) AS ranked
WHERE revision = 1
