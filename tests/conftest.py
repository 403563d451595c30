"""Shared fixtures. Service fixtures skip outside CI when a service is missing (saying how to start
it) and fail under CI=true, because .ci/run starts every service the marked tests need."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, how_to_start: str, reason: str) -> None:
    """Fail under CI, skip elsewhere, when a service a marked test needs is missing."""
    message = f"{name} unavailable ({reason}); start it with: {how_to_start}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
