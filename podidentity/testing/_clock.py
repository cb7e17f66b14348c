"""The emulators' sense of time, injectable so tests never sleep.

Every time-dependent rule of the emulators reads one clock: token ``iat``/``nbf``/``exp``,
expiry checks at ARM and Key Vault, assertion lifetimes at Azure AD, how long an ARM write
takes, the window in which IMDS does not yet know a freshly assigned identity, rate-limit
windows, and the Kubernetes emulator's service-account tokens. A :class:`Clock` is any
zero-argument callable returning epoch seconds; tests that need time to pass use a
:class:`ManualClock` and :meth:`~ManualClock.advance` it. The module is neutral (neither
emulator owns it), so one clock object can drive both sides of a
:class:`~podidentity.testing.Sandbox`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "system_clock"]

#: Returns the current time in epoch seconds.
Clock = Callable[[], float]


def system_clock() -> float:
    """The real wall clock (the default)."""
    return time.time()


class ManualClock:
    """A clock that only moves when told to; thread-safe, since the servers read it."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self():.0f})"

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("time only moves forward; use set() to go back on purpose")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (epoch seconds)."""
        with self._lock:
            self._now = now
