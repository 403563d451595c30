"""Shared fixtures. Service fixtures skip outside CI when a service is missing (saying how to start
it) and fail under CI=true, because .ci/run starts every service the marked tests need."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.alerting import SmtpReceiver, WebhookReceiver, smtp_fixture, webhook_fixture

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, how_to_start: str, reason: str) -> None:
    """Fail under CI, skip elsewhere, when a service a marked test needs is missing."""
    message = f"{name} unavailable ({reason}); start it with: {how_to_start}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A Slack-compatible webhook receiver on loopback; ``.url`` to configure, ``.wait(n)`` to collect."""
    yield from webhook_fixture()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """An aiosmtpd SMTP server on loopback; ``.host``/``.port`` to configure, ``.wait(n)`` to collect."""
    yield from smtp_fixture()
