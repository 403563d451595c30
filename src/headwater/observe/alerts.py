"""Failure alerts through a Slack-compatible webhook and SMTP email.

The core calls :func:`send_alert` when something needs a person: a run that failed after its retries, a
quality gate that held a batch back, a session whose preprocessing failed. Delivery is best effort per
channel (one channel failing does not stop the other) and reported in the returned :class:`AlertReceipt`;
an alert never raises into the pipeline that sent it.

``dedupe_key`` plus ``state_dir`` make an alert fire once: the key is recorded atomically in
``state_dir/alerts-sent.jsonl`` after the first delivery, and a later call with the same key is skipped.
Use the run id for run failures and ``gate:<table>:<batch>`` for quality gates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import smtplib
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from headwater.config import AlertSettings

log = logging.getLogger(__name__)

Severity = Literal["error", "warning", "info"]
_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
_SENT_FILE = "alerts-sent.jsonl"


@dataclass(frozen=True)
class Alert:
    """What went wrong, in words a person reads on a phone."""

    title: str
    text: str
    severity: Severity = "error"
    pipeline: str | None = None
    run_id: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class AlertReceipt:
    """Where the alert went: ``delivered`` and ``failed`` list channel names ("webhook", "smtp")."""

    delivered: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    skipped_duplicate: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


def webhook_payload(alert: Alert) -> dict[str, object]:
    """Slack-compatible JSON (``text`` plus one attachment with fields); other receivers read ``text``
    and the ``headwater`` object."""
    fields = [{"title": k, "value": v, "short": True} for k, v in _all_fields(alert).items()]
    return {
        "text": f"[{alert.severity.upper()}] {alert.title}",
        "attachments": [
            {
                "color": _COLOURS[alert.severity],
                "title": alert.title,
                "text": alert.text,
                "fields": fields,
                "ts": int(alert.created_at.timestamp()),
            }
        ],
        "headwater": {
            "title": alert.title,
            "text": alert.text,
            "severity": alert.severity,
            "pipeline": alert.pipeline,
            "run_id": alert.run_id,
            "fields": dict(alert.fields),
            "created_at": alert.created_at.isoformat(),
        },
    }


def email_message(settings: AlertSettings, alert: Alert) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[headwater {alert.severity}] {alert.title}"
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(settings.smtp_to)
    lines = [alert.text, ""] + [f"{k}: {v}" for k, v in _all_fields(alert).items()]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send_alert(
    settings: AlertSettings,
    alert: Alert,
    *,
    dedupe_key: str | None = None,
    state_dir: Path | None = None,
) -> AlertReceipt:
    """Deliver ``alert`` to every configured channel. Never raises; failures are in the receipt and logged.

    With ``dedupe_key`` and ``state_dir``, an alert already delivered under that key is skipped, so a
    caller that may run more than once (a sensor tick, a retried gate) alerts once."""
    if dedupe_key is not None and state_dir is not None:
        with _locked_ledger(state_dir) as ledger:
            if dedupe_key in _read_keys(ledger):
                return AlertReceipt(skipped_duplicate=True)
            receipt = _deliver(settings, alert)
            if receipt.delivered or not (settings.webhook_url or settings.smtp_host):
                entry = {"key": dedupe_key, "at": datetime.now(UTC).isoformat(), "title": alert.title}
                with ledger.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
                    fh.flush()
            return receipt
    return _deliver(settings, alert)


def _deliver(settings: AlertSettings, alert: Alert) -> AlertReceipt:
    delivered: list[str] = []
    failed: list[tuple[str, str]] = []
    log.warning("alert: %s: %s", alert.title, alert.text)
    if settings.webhook_url is not None:
        import httpx  # 70 ms to import: only when a webhook is configured and an alert goes out

        try:
            _post_webhook(settings.webhook_url.get_secret_value(), webhook_payload(alert), settings.timeout)
            delivered.append("webhook")
        except (httpx.HTTPError, OSError) as exc:
            failed.append(("webhook", _reason(exc)))
            log.error("alert webhook delivery failed: %s", _reason(exc))
    if settings.smtp_host and settings.smtp_to:
        try:
            _send_email(settings, email_message(settings, alert))
            delivered.append("smtp")
        except (smtplib.SMTPException, OSError) as exc:
            failed.append(("smtp", _reason(exc)))
            log.error("alert email delivery failed: %s", _reason(exc))
    return AlertReceipt(delivered=tuple(delivered), failed=tuple(failed))


def _post_webhook(url: str, payload: dict[str, object], timeout: float) -> None:
    import httpx

    last: Exception | None = None
    for attempt in range(3):
        try:
            resp = httpx.post(url, json=payload, timeout=timeout)
            if resp.status_code < 500:
                resp.raise_for_status()
                return
            last = httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
        except (httpx.TransportError, OSError) as exc:
            last = exc
        time.sleep(0.5 * 2**attempt)
    assert last is not None
    raise last


def _send_email(settings: AlertSettings, msg: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(msg)


def _all_fields(alert: Alert) -> dict[str, str]:
    out: dict[str, str] = {}
    if alert.pipeline:
        out["pipeline"] = alert.pipeline
    if alert.run_id:
        out["run"] = alert.run_id
    out.update(alert.fields)
    out["host"] = socket.gethostname()
    out["at"] = alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return out


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def _locked_ledger(state_dir: Path) -> Iterator[Path]:
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger = state_dir / _SENT_FILE
    with (state_dir / (_SENT_FILE + ".lock")).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield ledger
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_keys(ledger: Path) -> set[str]:
    if not ledger.exists():
        return set()
    keys: set[str] = set()
    for line in ledger.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            keys.add(str(json.loads(line)["key"]))
    return keys
