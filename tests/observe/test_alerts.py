"""Alerts reach a real webhook receiver and a real SMTP server on loopback, once per dedupe key."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import SecretStr

from headwater.config import AlertSettings
from headwater.observe.alerts import Alert, send_alert
from tests.alerting import SmtpReceiver, WebhookReceiver


def _settings(hook: WebhookReceiver, smtp: SmtpReceiver) -> AlertSettings:
    return AlertSettings(
        webhook_url=SecretStr(hook.url),
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_to=["oncall@example.org"],
    )


def test_alert_reaches_webhook_and_smtp(
    webhook_receiver: WebhookReceiver, smtp_receiver: SmtpReceiver
) -> None:
    started = time.time()
    alert = Alert(title="events run failed", text="step load failed", pipeline="events", run_id="r1")
    receipt = send_alert(_settings(webhook_receiver, smtp_receiver), alert)
    assert receipt.delivered == ("webhook", "smtp")
    assert receipt.ok
    (post,) = webhook_receiver.wait(1)
    assert post.body["text"] == "[ERROR] events run failed"
    assert post.body["headwater"]["run_id"] == "r1"
    assert {"title": "pipeline", "value": "events", "short": True} in post.body["attachments"][0]["fields"]
    (mail,) = smtp_receiver.wait(1)
    assert mail.body["Subject"] == "[headwater error] events run failed"
    assert "step load failed" in mail.body.get_payload()
    assert max(post.at, mail.at) - started < 5


def test_dedupe_key_sends_once(
    tmp_path: Path, webhook_receiver: WebhookReceiver, smtp_receiver: SmtpReceiver
) -> None:
    settings = _settings(webhook_receiver, smtp_receiver)
    alert = Alert(title="gate held batch b1", text="2 checks failed")
    first = send_alert(settings, alert, dedupe_key="gate:t:b1", state_dir=tmp_path)
    second = send_alert(settings, alert, dedupe_key="gate:t:b1", state_dir=tmp_path)
    assert first.delivered == ("webhook", "smtp")
    assert second.skipped_duplicate
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 1
    assert len(smtp_receiver.received) == 1


def test_unreachable_channel_is_reported_not_raised(webhook_receiver: WebhookReceiver) -> None:
    settings = AlertSettings(
        webhook_url=SecretStr(webhook_receiver.url),
        smtp_host="127.0.0.1",
        smtp_port=1,
        smtp_to=["x@y.z"],
        timeout=2,
    )
    receipt = send_alert(settings, Alert(title="t", text="x"))
    assert receipt.delivered == ("webhook",)
    assert receipt.failed[0][0] == "smtp"
    assert not receipt.ok
