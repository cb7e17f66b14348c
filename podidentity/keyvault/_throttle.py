"""Key Vault's throttling, shared by the sync and aio pipelines: pure, thread-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["ThrottleGate", "retry_after"]


class ThrottleGate:
    """One per vault: after a 429, no request to that vault starts until ``Retry-After`` ends.

    azure-core's retry policy makes the throttled request itself wait; without a shared gate
    the other requests in flight would each run into the limit too. Thread-safe; the sync and
    aio pipeline policies consult it before every attempt.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Seconds to wait before sending (0 when the vault is not throttling us)."""
        with self._lock:
            return max(0.0, self._until - self._clock())

    def throttled(self, retry_after: float) -> None:
        """Note a 429 asking to wait ``retry_after`` seconds."""
        with self._lock:
            self._until = max(self._until, self._clock() + max(retry_after, 0.0))


def retry_after(headers: Mapping[str, str]) -> float:
    """``Retry-After`` in seconds (1 when missing or not a number: Key Vault sends seconds)."""
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after") or 1.0)
    except ValueError:
        return 1.0
