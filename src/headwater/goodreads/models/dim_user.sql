-- Users for the star schema: display names with whitespace collapsed, user names lower-case,
-- empty text as NULL.
-- materialize: output
-- unique: user_id
SELECT
    user_id,
    nullif(trim(regexp_replace(user_display_name, '\s+', ' ', 'g')), '') AS user_display_name,
    nullif(lower(trim(user_name)), '') AS user_name,
    nullif(trim(regexp_replace(location, '\s+', ' ', 'g')), '') AS location,
    nullif(trim(profile_link), '') AS profile_link,
    nullif(trim(uri), '') AS uri,
    nullif(trim(user_image_url), '') AS user_image_url,
    nullif(trim(small_image_url), '') AS small_image_url,
    has_image,
    record_create_timestamp
FROM users_latest
