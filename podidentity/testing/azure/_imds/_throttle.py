"""IMDS's per-VM limits, enforced by default.

Azure documents about 20 managed-identity requests per second and 5 in flight at once per VM,
and about 5 requests per second to IMDS's other paths (``/metadata/instance``); beyond them,
IMDS answers ``429``. A token proxy in front of IMDS (NMI) is exactly the client that can
exceed them — every pod on the node shares the node's budget — so the emulator enforces them
unless a test lifts them (``ImdsService.limits = None``). Time is counted with the world's
clock, so a test fills the window and advances the clock instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs

from podidentity.testing._ratelimit import RateLimit

__all__ = ["ImdsLimits", "NodeThrottle"]


@attrs.frozen
class ImdsLimits:
    """Per-node limits: 20 token requests per second, 5 concurrent, 5 per second elsewhere.

    Attributes:
        requests_per_second: token requests admitted in any one-second window.
        concurrent: token requests being answered at the same time.
        metadata_per_second: requests to the other paths (``/metadata/instance``) admitted in
            any one-second window.
    """

    requests_per_second: int = 20
    concurrent: int = 5
    metadata_per_second: int = 5

    def __attrs_post_init__(self) -> None:
        if min(self.requests_per_second, self.concurrent, self.metadata_per_second) < 1:
            raise ValueError("IMDS limits need at least one request per second and in flight")


class NodeThrottle:
    """One node's budget: a one-second sliding window and a count of requests in flight."""

    def __init__(self, limits: ImdsLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._window = RateLimit(limits.requests_per_second, 1.0).window(clock)
        self._metadata = RateLimit(limits.metadata_per_second, 1.0).window(clock)
        self._in_flight = 0
        self._lock = threading.Lock()

    def admit(self) -> float | None:
        """Take a slot; ``None`` when admitted (call :meth:`release` after), else Retry-After.

        A request refused for concurrency is not counted in the rate window, so a burst that
        waits for slots does not also use up the second.
        """
        with self._lock:
            if self._in_flight >= self.limits.concurrent:
                return 1.0
            wait = self._window.acquire()
            if wait is not None:
                return wait
            self._in_flight += 1
            return None

    def admit_metadata(self) -> float | None:
        """Count a request to another path; ``None`` when admitted, else Retry-After."""
        return self._metadata.acquire()

    def release(self) -> None:
        """Give back the slot of an admitted request."""
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet answered."""
        with self._lock:
            return self._in_flight
