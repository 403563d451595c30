"""The session catalog: one row per session, its files, its state, and the schema's history.

Tables (same layout on SQLite and PostgreSQL; see docs/sessions.md)::

    sessions                one row per session: session_id, recorded_at, status, reason, timestamps,
                            typed metadata columns, and ``extra`` (JSON/JSONB) for every other field
    session_files           (session_id, zone, key) -> bytes, sha256: raw and processed files
    session_events          every state change: session_id, at, status, reason
    session_fields          which metadata fields have a typed column (built-in or promoted)
    catalog_schema_history  version, applied_at, change, detail: creation and every promotion

Every write is one transaction: a session row and its file rows appear together or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.config import Settings
from headwater.errors import DataError, PreprocessError, UsageError
from headwater.sessions.backends import Backend, Connection, PostgresBackend, SqliteBackend
from headwater.sessions.model import (
    BASE_COLUMNS,
    BUILTIN_TYPED_FIELDS,
    FIELD_NAME,
    FIELD_TYPES,
    RESERVED_NAMES,
    FieldType,
    FileRef,
    FileZone,
    SessionRecord,
    SessionStatus,
    coerce_value,
)
from headwater.sessions.querysql import compile_filter
from headwater.sessions.validate import ValidSession

SCHEMA_VERSION = 1


def utcnow() -> dt.datetime:
    """Now in UTC, without tzinfo: every catalog timestamp except ``recorded_at`` (the rig's wall clock)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Claim:
    """The result of trying to claim a session for preprocessing."""

    session_id: str
    claimed: bool
    status: SessionStatus | None  # the status found (None: no such session)
    claim_id: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did."""

    field: str
    type: FieldType
    sessions: int
    version: int
    already: bool = False


def _ddl(b: Backend) -> list[str]:
    t = b.TYPES
    statuses = ", ".join(f"'{s.value}'" for s in SessionStatus)
    zones = ", ".join(f"'{z.value}'" for z in FileZone)
    typed = "".join(f',\n  "{n}" {t[k]}' for n, k in BUILTIN_TYPED_FIELDS.items())
    return [
        f"""CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY,
  recorded_at {t["timestamp"]} NOT NULL,
  recorded_on {t["date"]} NOT NULL,
  status TEXT NOT NULL CHECK (status IN ({statuses})),
  reason TEXT,
  raw_prefix TEXT NOT NULL,
  raw_bytes {t["int"]} NOT NULL,
  raw_files {t["int"]} NOT NULL,
  processed_prefix TEXT,
  preprocessor TEXT,
  attempts {t["int"]} NOT NULL DEFAULT 0,
  claim_id TEXT,
  uploaded_at {t["timestamp"]} NOT NULL,
  claimed_at {t["timestamp"]},
  processed_at {t["timestamp"]},
  updated_at {t["timestamp"]} NOT NULL,
  extra {t["json"]} NOT NULL{typed}
)""",
        "CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status, recorded_at)",
        "CREATE INDEX IF NOT EXISTS sessions_recorded_at ON sessions (recorded_at)",
        f"""CREATE TABLE IF NOT EXISTS session_files (
  session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
  zone TEXT NOT NULL CHECK (zone IN ({zones})),
  key TEXT NOT NULL,
  bytes {t["int"]} NOT NULL CHECK (bytes >= 0),
  sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
  added_at {t["timestamp"]} NOT NULL,
  PRIMARY KEY (session_id, zone, key)
)""",
        f"""CREATE TABLE IF NOT EXISTS session_events (
  id {t["serial"]},
  session_id TEXT NOT NULL,
  at {t["timestamp"]} NOT NULL,
  status TEXT NOT NULL,
  reason TEXT
)""",
        "CREATE INDEX IF NOT EXISTS session_events_session ON session_events (session_id, id)",
        f"""CREATE TABLE IF NOT EXISTS session_fields (
  name TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  origin TEXT NOT NULL,
  added_at {t["timestamp"]} NOT NULL
)""",
        f"""CREATE TABLE IF NOT EXISTS catalog_schema_history (
  version INTEGER PRIMARY KEY,
  applied_at {t["timestamp"]} NOT NULL,
  change TEXT NOT NULL,
  detail TEXT NOT NULL
)""",
    ]


class Catalog:
    """The catalog on one backend. Every method opens a short transaction; nothing is held between calls,
    so a CLI run, the Dagster daemon and a notebook can share the catalog."""

    def __init__(self, backend: Backend, storage_root: str) -> None:
        self.backend = backend
        self.storage_root = storage_root.rstrip("/")
        self._ready = False

    @property
    def url(self) -> str:
        return self.backend.url

    def uri(self, key: str) -> str:
        return f"{self.storage_root}/{key}"

    # --- setup -------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the tables once (idempotent, safe when several processes start together)."""
        if self._ready:
            return
        with self.backend.transaction(write=False) as con:
            if self.backend.catalog_exists(con) and con.rows("SELECT version FROM catalog_schema_history"):
                self._ready = True
                return
        with self.backend.transaction(write=True) as con:
            self.backend.lock_for_setup(con)
            for statement in _ddl(self.backend):
                con.execute(statement)
            if not con.rows("SELECT version FROM catalog_schema_history"):
                now = self._ts(utcnow())
                con.execute(
                    "INSERT INTO catalog_schema_history (version, applied_at, change, detail) VALUES (?, ?, ?, ?)",
                    (SCHEMA_VERSION, now, "create", json.dumps({"typed": BUILTIN_TYPED_FIELDS})),
                )
                con.executemany(
                    "INSERT INTO session_fields (name, type, origin, added_at) VALUES (?, ?, ?, ?)",
                    [(n, k, "builtin", now) for n, k in BUILTIN_TYPED_FIELDS.items()],
                )
        self._ready = True

    def _read(self) -> Any:
        self.setup()
        return self.backend.transaction(write=False)

    def _write(self) -> Any:
        self.setup()
        return self.backend.transaction(write=True)

    def _ts(self, value: dt.datetime | None) -> Any:
        return self.backend.to_db(value, "timestamp")

    # --- fields ------------------------------------------------------------------------------------------

    @staticmethod
    def _typed(con: Connection) -> dict[str, FieldType]:
        return {r["name"]: r["type"] for r in con.rows("SELECT name, type FROM session_fields ORDER BY name")}

    def typed_fields(self) -> dict[str, FieldType]:
        """Metadata fields with a typed column: name -> type."""
        with self._read() as con:
            return self._typed(con)

    def _fields(self, con: Connection) -> dict[str, str]:
        fields: dict[str, str] = dict(BASE_COLUMNS)
        fields.update(self._typed(con))
        for row in con.rows(self.backend.json_keys_sql()):
            fields.setdefault(str(row["key"]), "json")
        return fields

    def fields(self) -> dict[str, str]:
        """Every field a filter can name: session columns, typed metadata, and JSON keys (kind ``json``)."""
        with self._read() as con:
            return self._fields(con)

    # --- upload ------------------------------------------------------------------------------------------

    def record_upload(self, session: ValidSession, files: Sequence[FileRef], raw_prefix: str) -> bool:
        """Insert the session (status uploaded) and its raw file rows in one transaction, after the caller
        proved every file is stored. False when the session was already catalogued (nothing changed)."""
        now = utcnow()
        with self._write() as con:
            if con.rows("SELECT session_id FROM sessions WHERE session_id = ?", (session.session_id,)):
                return False
            typed = self._typed(con)
            columns: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for key, value in session.metadata.items():
                if key in typed:
                    try:
                        columns[key] = self.backend.to_db(coerce_value(value, typed[key]), typed[key])
                    except ValueError as exc:
                        raise DataError(f"{session.session_id}: metadata field {key}: {exc}") from exc
                else:
                    extra[key] = value.isoformat() if isinstance(value, dt.datetime) else value
            base: dict[str, Any] = {
                "session_id": session.session_id,
                "recorded_at": self._ts(session.recorded_at),
                "recorded_on": self.backend.to_db(session.recorded_at.date(), "date"),
                "status": SessionStatus.UPLOADED.value,
                "raw_prefix": raw_prefix,
                "raw_bytes": sum(f.bytes for f in files),
                "raw_files": len(files),
                "uploaded_at": self._ts(now),
                "updated_at": self._ts(now),
                "extra": self.backend.json_param(extra),
            }
            row = base | columns
            names = ", ".join(f'"{n}"' for n in row)
            marks = ", ".join("?" for _ in row)
            con.execute(f"INSERT INTO sessions ({names}) VALUES ({marks})", list(row.values()))
            self._insert_files(con, session.session_id, files, now)
            self._event(con, session.session_id, SessionStatus.UPLOADED, None, now)
        return True

    def _insert_files(
        self, con: Connection, session_id: str, files: Sequence[FileRef], now: dt.datetime
    ) -> None:
        con.executemany(
            "INSERT INTO session_files (session_id, zone, key, bytes, sha256, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(session_id, f.zone.value, f.key, f.bytes, f.sha256, self._ts(now)) for f in files],
        )

    def _event(
        self, con: Connection, session_id: str, status: SessionStatus, reason: str | None, now: dt.datetime
    ) -> None:
        con.execute(
            "INSERT INTO session_events (session_id, at, status, reason) VALUES (?, ?, ?, ?)",
            (session_id, self._ts(now), status.value, reason),
        )

    # --- preprocessing state -----------------------------------------------------------------------------

    def pending(self, claim_timeout: float) -> list[str]:
        """Sessions waiting for preprocessing: status uploaded, or a claim older than ``claim_timeout`` s
        (its worker died), oldest recording first."""
        return [session_id for session_id, _ in self.pending_claims(claim_timeout)]

    def pending_claims(self, claim_timeout: float) -> list[tuple[str, str | None]]:
        """Like :meth:`pending`, with the abandoned claim's time (None for a session never claimed), so a
        scheduler can tell a second pick-up of the same session from the first."""
        stale = self._ts(utcnow() - dt.timedelta(seconds=claim_timeout))
        with self._read() as con:
            rows = con.rows(
                "SELECT session_id, status, claimed_at FROM sessions WHERE status = ? "
                "OR (status = ? AND claimed_at < ?) ORDER BY recorded_at, session_id",
                (SessionStatus.UPLOADED.value, SessionStatus.PREPROCESSING.value, stale),
            )
        return [
            (
                str(r["session_id"]),
                str(r["claimed_at"]) if r["status"] == SessionStatus.PREPROCESSING.value else None,
            )
            for r in rows
        ]

    def claim(self, session_id: str, *, force: bool, claim_timeout: float, owner: str | None = None) -> Claim:
        """Move the session to ``preprocessing`` in one conditional UPDATE, so of two racing callers exactly
        one wins. Claimable: uploaded, failed (a retry), a claim older than ``claim_timeout``; ready only
        with ``force``. A live claim of another worker is never taken. ``owner`` names the claimant across
        attempts (e.g. an orchestrator's run id): a live claim made under the same owner is taken back, so
        a retry after an attempt that died holding the claim runs instead of waiting out the timeout. Each
        claim still gets its own id, so the earlier attempt, should it finish after all, finds its claim
        lost and records nothing."""
        now = utcnow()
        claim_id = f"{owner}:{uuid.uuid4().hex}" if owner else uuid.uuid4().hex
        allowed = [SessionStatus.UPLOADED.value, SessionStatus.FAILED.value]
        if force:
            allowed.append(SessionStatus.READY.value)
        marks = ", ".join("?" for _ in allowed)
        own = " OR (status = ? AND substr(claim_id, 1, ?) = ?)" if owner else ""
        with self._write() as con:
            cur = con.execute(
                "UPDATE sessions SET status = ?, claim_id = ?, claimed_at = ?, updated_at = ?, reason = NULL, "
                f"attempts = attempts + 1 WHERE session_id = ? AND (status IN ({marks}) "
                f"OR (status = ? AND claimed_at < ?){own})",
                (
                    SessionStatus.PREPROCESSING.value,
                    claim_id,
                    self._ts(now),
                    self._ts(now),
                    session_id,
                    *allowed,
                    SessionStatus.PREPROCESSING.value,
                    self._ts(now - dt.timedelta(seconds=claim_timeout)),
                    *((SessionStatus.PREPROCESSING.value, len(owner) + 1, owner + ":") if owner else ()),
                ),
            )
            claimed = cur.rowcount == 1
            if claimed:
                self._event(con, session_id, SessionStatus.PREPROCESSING, None, now)
            rows = con.rows("SELECT status, attempts FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            return Claim(session_id, False, None)
        status = SessionStatus(rows[0]["status"])
        return Claim(session_id, claimed, status, claim_id if claimed else None, int(rows[0]["attempts"]))

    def _finish(
        self,
        con: Connection,
        claim: Claim,
        status: SessionStatus,
        reason: str | None,
        extra_sets: Mapping[str, Any],
        now: dt.datetime,
    ) -> None:
        sets = {"status": status.value, "reason": reason, "claim_id": None, "updated_at": self._ts(now)}
        sets |= extra_sets
        assignments = ", ".join(f"{k} = ?" for k in sets)
        cur = con.execute(
            f"UPDATE sessions SET {assignments} WHERE session_id = ? AND claim_id = ? AND status = ?",
            (*sets.values(), claim.session_id, claim.claim_id, SessionStatus.PREPROCESSING.value),
        )
        if cur.rowcount != 1:
            raise PreprocessError(
                f"{claim.session_id}: the preprocessing claim was lost (another worker took the session over "
                "after sessions.claim_timeout); this run's result was not recorded"
            )
        self._event(con, claim.session_id, status, reason, now)

    def mark_ready(
        self, claim: Claim, files: Sequence[FileRef], processed_prefix: str, preprocessor: str
    ) -> None:
        """Record the processed files (replacing an earlier run's) and move the session to ready, in one
        transaction and only while this claim still holds."""
        now = utcnow()
        with self._write() as con:
            sets = {
                "processed_prefix": processed_prefix,
                "preprocessor": preprocessor,
                "processed_at": self._ts(now),
            }
            self._finish(con, claim, SessionStatus.READY, None, sets, now)
            con.execute(
                "DELETE FROM session_files WHERE session_id = ? AND zone = ?",
                (claim.session_id, FileZone.PROCESSED.value),
            )
            self._insert_files(con, claim.session_id, files, now)

    def mark_failed(self, claim: Claim, reason: str) -> None:
        """Move the claimed session to failed with ``reason`` (one line)."""
        now = utcnow()
        with self._write() as con:
            self._finish(con, claim, SessionStatus.FAILED, reason[:2000], {}, now)

    # --- reading -----------------------------------------------------------------------------------------

    def get(self, session_id: str) -> SessionRecord | None:
        found = self._select("session_id = ?", [session_id])
        return found[0] if found else None

    def list_sessions(
        self, status: SessionStatus | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        """Sessions, oldest recording first, optionally of one status and at most ``limit`` (the newest)."""
        where, params = ("status = ?", [status.value]) if status else ("1 = 1", [])
        records = self._select(where, params)
        return records[-limit:] if limit else records

    def query(self, text: str) -> list[SessionRecord]:
        """Sessions matching a filter (:mod:`headwater.sessions.filter`); field names are checked against the
        catalog and every value is bound as a parameter."""
        from headwater.sessions.filter import parse_filter

        expr = parse_filter(text)
        with self._read() as con:
            where, params = compile_filter(expr, self._fields(con), self.backend, text)
            return self._select_in(con, where, params)

    def _select(self, where: str, params: list[Any]) -> list[SessionRecord]:
        with self._read() as con:
            return self._select_in(con, where, params)

    def _select_in(self, con: Connection, where: str, params: list[Any]) -> list[SessionRecord]:
        typed = self._typed(con)
        rows = con.rows(f"SELECT * FROM sessions WHERE {where} ORDER BY recorded_at, session_id", params)
        if not rows:
            return []
        files: dict[str, list[FileRef]] = {}
        for f in con.rows(
            f"SELECT * FROM session_files WHERE session_id IN (SELECT session_id FROM sessions WHERE {where}) "
            "ORDER BY session_id, zone, key",
            params,
        ):
            ref = FileRef(FileZone(f["zone"]), f["key"], int(f["bytes"]), f["sha256"], self.uri(f["key"]))
            files.setdefault(f["session_id"], []).append(ref)
        return [self._record(r, typed, files.get(r["session_id"], [])) for r in rows]

    def _record(
        self, row: dict[str, Any], typed: Mapping[str, FieldType], files: list[FileRef]
    ) -> SessionRecord:
        b = self.backend
        v = {k: b.from_db(row.get(k), kind) for k, kind in BASE_COLUMNS.items()}
        metadata: dict[str, Any] = {}
        for name, kind in typed.items():
            value = b.from_db(row.get(name), kind)
            if value is not None:
                metadata[name] = value
        metadata.update(b.json_value(row["extra"]))
        return SessionRecord(
            session_id=v["session_id"],
            recorded_at=v["recorded_at"],
            status=SessionStatus(v["status"]),
            reason=v["reason"],
            raw_prefix=v["raw_prefix"],
            raw_bytes=int(v["raw_bytes"]),
            raw_files=int(v["raw_files"]),
            processed_prefix=v["processed_prefix"],
            attempts=int(v["attempts"]),
            uploaded_at=v["uploaded_at"],
            updated_at=v["updated_at"],
            processed_at=v["processed_at"],
            metadata=dict(sorted(metadata.items())),
            files=tuple(files),
        )

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """The state changes of one session, oldest first."""
        with self._read() as con:
            rows = con.rows(
                "SELECT at, status, reason FROM session_events WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
        return [r | {"at": self.backend.from_db(r["at"], "timestamp")} for r in rows]

    def history(self) -> list[dict[str, Any]]:
        """The schema history: creation and every promotion."""
        with self._read() as con:
            rows = con.rows(
                "SELECT version, applied_at, change, detail FROM catalog_schema_history ORDER BY version"
            )
        return [
            r
            | {
                "applied_at": self.backend.from_db(r["applied_at"], "timestamp"),
                "detail": json.loads(r["detail"]),
            }
            for r in rows
        ]

    # --- schema evolution --------------------------------------------------------------------------------

    def promote(self, name: str, kind: FieldType) -> Promotion:
        """Give metadata field ``name`` a typed column: add the column, move every session's JSON value into
        it (converted to ``kind``) and record the change, in one transaction. A value that does not convert
        aborts the whole promotion, naming the session; nothing changes."""
        field = name.strip().lower()
        if not FIELD_NAME.match(field) or len(field) > 63:
            raise UsageError(f"promote {name!r}: a field name is lower-case letters, digits and '_' (max 63)")
        if field in RESERVED_NAMES:
            raise UsageError(f"promote {field}: a session column already has this name")
        if kind not in FIELD_TYPES:
            raise UsageError(f"promote {field}: type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
        with self._write() as con:
            self.backend.lock_for_setup(con)
            typed = self._typed(con)
            version = int(con.rows("SELECT MAX(version) AS v FROM catalog_schema_history")[0]["v"] or 0)
            if field in typed:
                if typed[field] != kind:
                    raise UsageError(
                        f"promote {field}: already a {typed[field]} column; changing a column's type is not "
                        "supported (add a new field instead)"
                    )
                return Promotion(field, kind, 0, version, already=True)
            missing_sql, n = self.backend.json_missing_expr()
            path = self.backend.json_path(field)
            rows = con.rows(
                f"SELECT session_id, extra FROM sessions WHERE NOT {missing_sql} ORDER BY session_id",
                [path] * n,
            )
            updates = []
            for row in rows:
                extra = self.backend.json_value(row["extra"])
                raw = extra.pop(field)
                try:
                    value = coerce_value(raw, kind)
                except ValueError as exc:
                    raise DataError(
                        f"promote {field} to {kind}: session {row['session_id']} holds {raw!r} ({exc}); "
                        "nothing changed"
                    ) from exc
                updates.append(
                    (self.backend.to_db(value, kind), self.backend.json_param(extra), row["session_id"])
                )
            now = self._ts(utcnow())
            con.execute(f'ALTER TABLE sessions ADD COLUMN "{field}" {self.backend.TYPES[kind]}')
            if updates:
                con.executemany(f'UPDATE sessions SET "{field}" = ?, extra = ? WHERE session_id = ?', updates)
            con.execute(
                "INSERT INTO session_fields (name, type, origin, added_at) VALUES (?, ?, ?, ?)",
                (field, kind, "promoted", now),
            )
            detail = json.dumps({"field": field, "type": kind, "sessions": len(updates)})
            con.execute(
                "INSERT INTO catalog_schema_history (version, applied_at, change, detail) VALUES (?, ?, ?, ?)",
                (version + 1, now, "promote", detail),
            )
        return Promotion(field, kind, len(updates), version + 1)


def open_catalog(settings: Settings) -> Catalog:
    """The catalog the settings name: PostgreSQL when ``sessions.catalog_url`` is set, else the embedded
    SQLite file ``sessions.catalog_path`` (relative to the project)."""
    cfg = settings.sessions
    if cfg.catalog_url is not None:
        url = cfg.catalog_url.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise UsageError(
                "sessions.catalog_url: expected postgresql://...; unset it for the embedded file"
            )
        backend: Backend = PostgresBackend(url, cfg.catalog_schema)
    else:
        backend = SqliteBackend(Path(settings.resolve(cfg.catalog_path)))
    return Catalog(backend, settings.storage_root)
