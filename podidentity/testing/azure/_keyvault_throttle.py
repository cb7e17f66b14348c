"""Key Vault's per-vault service limit, as an optional sliding-window rate limiter.

Azure documents about 4,000 "all other" transactions per 10 seconds per vault; beyond that the
service answers ``429 Throttled`` with ``Retry-After``. The emulator enforces a limit only when
given a :class:`RateLimit` (tests usually want faults, which are exact, rather than a limiter);
it counts with the injected clock, so a test can exhaust the window and advance time instead of
sleeping.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable

import attrs

__all__ = ["RateLimit", "SlidingWindow"]


@attrs.frozen
class RateLimit:
    """At most ``requests`` per ``per_seconds`` for each vault (Azure: 4,000 per 10 s)."""

    requests: int = 4000
    per_seconds: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError("a rate limit needs at least one request per positive window")


class SlidingWindow:
    """Counts requests in the last ``per_seconds`` and says how long to wait when full."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> float | None:
        """Count one request; ``None`` if allowed, else the seconds until one would be."""
        now = self._clock()
        with self._lock:
            horizon = now - self._limit.per_seconds
            while self._times and self._times[0] <= horizon:
                self._times.popleft()
            if len(self._times) >= self._limit.requests:
                return max(1.0, math.ceil(self._times[0] - horizon))
            self._times.append(now)
            return None
