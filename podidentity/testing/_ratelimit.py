"""One rate limiter for every emulator: a sliding window counted on the emulators' clock.

Azure's services refuse callers that exceed their documented limits (IMDS per VM, ARM per
subscription and Compute per operation group, Key Vault per vault) with ``429`` and
``Retry-After``. Each emulator describes its limits as :class:`RateLimit` values and counts with
a :class:`SlidingWindow`; the window reads the injected clock, so a test fills it and
advances a :class:`~podidentity.testing.ManualClock` instead of sleeping.

A sliding window (at most ``requests`` in any ``per_seconds``) rather than a token bucket: it
is what Compute's ``...3Min``/``...30Min`` operation groups and Key Vault's "per 10 seconds"
limits describe, and for ARM's refilling subscription buckets it gives the same burst and the
same sustained rate.
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
    """At most ``requests`` in any window of ``per_seconds`` (of the emulators' clock).

    Attributes:
        requests: requests admitted per window (at least 1).
        per_seconds: the window's length in seconds (positive).
    """

    requests: int
    per_seconds: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError(
                f"a rate limit needs at least one request per positive window, got {self!r}"
            )

    def window(self, clock: Callable[[], float]) -> SlidingWindow:
        """A fresh counter for this limit, reading ``clock``."""
        return SlidingWindow(self, clock)


class SlidingWindow:
    """Counts requests in the last ``per_seconds`` and says how long to wait when full.

    Thread-safe: the emulators serve on another thread than the test.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SlidingWindow({self.limit.requests}/{self.limit.per_seconds}s, used={self.used})"

    def _expire(self, now: float) -> float:
        horizon = now - self.limit.per_seconds
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return horizon

    def acquire(self) -> float | None:
        """Count one request; ``None`` if allowed, else the seconds until one would be."""
        now = self._clock()
        with self._lock:
            horizon = self._expire(now)
            if len(self._times) >= self.limit.requests:
                return max(1.0, math.ceil(self._times[0] - horizon))
            self._times.append(now)
            return None

    @property
    def used(self) -> int:
        """Requests counted in the current window."""
        with self._lock:
            self._expire(self._clock())
            return len(self._times)

    @property
    def remaining(self) -> int:
        """Requests still admitted in the current window."""
        return max(self.limit.requests - self.used, 0)
