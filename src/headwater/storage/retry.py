"""The retry policy for transfers: exponential backoff with full jitter, a few attempts, capped waits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from headwater.errors import IntegrityError, StorageError, TransientStorageError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` after the first attempt, waits drawn from [0, initial * 2**n] and at most ``maximum`` s."""

    retries: int = 3
    initial: float = 1.0
    maximum: float = 120.0


def call_with_retries(
    what: str, func: Callable[[], T], policy: RetryPolicy, on_retry: Callable[[Exception], None] | None = None
) -> T:
    """Call ``func``; retry transient and integrity failures by ``policy``; the final error names ``what``."""

    def record(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if isinstance(exc, Exception):
                on_retry(exc)

    retrying = Retrying(
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        retry=retry_if_exception_type((TransientStorageError, IntegrityError)),
        before_sleep=record,
        reraise=True,
    )
    try:
        return retrying(func)
    except (TransientStorageError, IntegrityError) as exc:
        attempts = policy.retries + 1
        message = str(exc) if str(exc).startswith(what) else f"{what}: {exc}"
        raise type(exc)(f"{message} (gave up after {attempts} attempts)") from exc
    except StorageError:
        raise
