"""A thread-safe token bucket: the capture client's limiter and the test API's throttle.

``rate`` tokens per second accrue up to ``burst``; a request spends one. :meth:`TokenBucket.acquire` blocks
until a token is free (or a stop event is set); :meth:`TokenBucket.try_acquire` never blocks and says how
long to wait instead, which is what a server turns into ``Retry-After``. :meth:`TokenBucket.pause_until`
empties the bucket and holds every caller until a deadline: how a client honours ``Retry-After`` for all
of its threads at once, not only the one that was told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_EPSILON = 1e-9


class TokenBucket:
    """``rate`` requests per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()
        self._paused_until = 0.0

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def try_acquire(self) -> float:
        """Spend a token and return 0.0, or spend nothing and return the seconds until one is free."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now
            self._refill(now)
            if self._tokens >= 1.0 - _EPSILON:  # 0.1 s at 10/s may accrue 0.99999... tokens
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until a token is spent (True) or ``stop`` is set (False)."""
        while True:
            wait = self.try_acquire()
            if wait <= 0.0:
                return True
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return False

    def pause_until(self, deadline: float) -> None:
        """Hold every caller until ``deadline`` (on this bucket's clock), then start again from an empty
        bucket, so the callers that waited leave one by one at ``rate``."""
        with self._lock:
            if deadline > self._paused_until:
                self._paused_until = deadline
                self._tokens = 0.0
                self._stamp = max(self._stamp, deadline)

    def now(self) -> float:
        """The bucket's clock."""
        return self._clock()
