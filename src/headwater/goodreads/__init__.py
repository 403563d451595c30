"""The Goodreads-style ETL: API capture (api, capture, spool), zones, SQL transforms, star schema, analytics."""
