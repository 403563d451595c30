"""Recording sessions: checked upload to the write-once raw zone, a metadata catalog (SQLite or PostgreSQL),
preprocessing of new sessions only, and query and fetch for researchers.

The notebook API::

    from headwater.sessions import query, query_frame, fetch
    sessions = query("my-project", "fatigue_level >= 3 and hardware_model = 'X200'")
    frame = query_frame("my-project", "recorded_at >= 2021-02-01")      # pandas, one row per session
    fetch("my-project", "site = 'lab-1'", to="data/sessions")            # verified download, skips present
"""

from __future__ import annotations

from headwater.sessions.access import FetchReport, fetch, query, query_frame
from headwater.sessions.catalog import Catalog, Promotion, open_catalog
from headwater.sessions.filter import FilterError, parse_filter
from headwater.sessions.model import FileRef, FileZone, SessionRecord, SessionStatus
from headwater.sessions.preprocess import (
    PreprocessResult,
    SessionData,
    load_preprocessor,
    pending_sessions,
    preprocess_pending,
    preprocess_session,
    summarise_session,
)
from headwater.sessions.upload import UploadOutcome, UploadReport, upload_sessions, watch_sessions
from headwater.sessions.validate import check_session

__all__ = [
    "Catalog",
    "FetchReport",
    "FileRef",
    "FileZone",
    "FilterError",
    "PreprocessResult",
    "Promotion",
    "SessionData",
    "SessionRecord",
    "SessionStatus",
    "UploadOutcome",
    "UploadReport",
    "check_session",
    "fetch",
    "load_preprocessor",
    "open_catalog",
    "parse_filter",
    "pending_sessions",
    "preprocess_pending",
    "preprocess_session",
    "query",
    "query_frame",
    "summarise_session",
    "upload_sessions",
    "watch_sessions",
]
