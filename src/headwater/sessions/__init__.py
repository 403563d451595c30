"""Recording sessions: checked upload to the write-once raw zone, a metadata catalog (SQLite or PostgreSQL),
preprocessing of new sessions only, and query and fetch for researchers.

The notebook API::

    from headwater.sessions import query, query_frame, fetch
    sessions = query("my-project", "fatigue_level >= 3 and hardware_model = 'X200'")
    frame = query_frame("my-project", "recorded_at >= 2021-02-01")      # pandas, one row per session
    fetch("my-project", "site = 'lab-1'", to="data/sessions")            # verified download, skips present

Names are imported on first use, so ``import headwater.sessions.catalog`` (a sensor, a child process) does not
pay for NumPy, PyArrow and the HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "access": ("FetchReport", "fetch", "query", "query_frame"),
    "catalog": ("Catalog", "Promotion", "open_catalog"),
    "filter": ("FilterError", "parse_filter"),
    "model": ("FileRef", "FileZone", "SessionRecord", "SessionStatus"),
    "preprocess": (
        "PreprocessResult",
        "SessionData",
        "load_preprocessor",
        "pending_sessions",
        "preprocess_pending",
        "preprocess_session",
        "summarise_session",
    ),
    "upload": ("UploadOutcome", "UploadReport", "upload_sessions", "watch_sessions"),
    "validate": ("check_session",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.sessions' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"headwater.sessions.{module}"), name)
    globals()[name] = value
    return value
