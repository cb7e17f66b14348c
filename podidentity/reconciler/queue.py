"""A rate-limited work queue of keys, like client-go's ``workqueue``, for asyncio.

- a key waiting in the queue is there once, however often it is added;
- a key being processed is never handed out again until :meth:`WorkQueue.done`; if it was
  added meanwhile, it is queued again then (so no change is lost and no key runs twice at
  once);
- :meth:`WorkQueue.add_rate_limited` retries a key after a per-key exponential delay, reset
  by :meth:`WorkQueue.forget`;
- a global token bucket limits how fast keys are handed out overall.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TokenBucket", "WorkQueue"]

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    Args:
        rate: tokens per second (> 0).
        burst: bucket size (>= 1).
        clock: monotonic seconds.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def reserve(self) -> float:
        """Take a token; return how long to wait before using it (0 when one was available)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class WorkQueue(Generic[K]):
    """Keys to reconcile; see the module docstring for the guarantees.

    Args:
        base_delay: first retry delay of a failing key.
        max_delay: longest retry delay.
        rate: keys handed out per second, overall.
        burst: keys handed out at once before ``rate`` applies.
        clock: monotonic seconds (for the token bucket).
    """

    def __init__(
        self,
        *,
        base_delay: float = 0.05,
        max_delay: float = 300.0,
        rate: float = 50.0,
        burst: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._bucket = TokenBucket(rate, burst, clock)
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._ready = asyncio.Condition()
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        """Keys handed out and not yet done."""
        return frozenset(self._processing)

    def add(self, key: K) -> None:
        """Queue ``key`` (once) unless shut down."""
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._ready:
                self._ready.notify()

        asyncio.get_running_loop().create_task(wake())

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (the earliest pending time wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled():
            if timer.when() <= when:
                return
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K, delay: float | None = None) -> float:
        """Retry ``key`` later: after ``delay`` if given, else per-key exponential backoff."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        if delay is None:
            delay = min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 30))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff (it succeeded)."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        """How many times in a row ``key`` has been retried."""
        return self._failures.get(key, 0)

    async def get(self) -> K | None:
        """The next key (waits for one and for the rate limit); ``None`` once shut down."""
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._queue) or self._shutdown)
            if self._shutdown:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
        wait = self._bucket.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        return key

    def done(self, key: K) -> None:
        """``key`` is processed; if it was added meanwhile, queue it again."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        """Hand out no more keys; waiting :meth:`get` calls return ``None``."""
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

        async def wake_all() -> None:
            async with self._ready:
                self._ready.notify_all()

        asyncio.get_running_loop().create_task(wake_all())
