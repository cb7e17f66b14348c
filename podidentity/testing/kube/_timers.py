"""Deadlines on the emulated cluster's clock: what fires when a grace period runs out.

Grace periods are measured on an injectable clock (the same ``Clock`` the Azure emulator uses:
any callable returning epoch seconds, such as
:class:`~podidentity.testing.azure.ManualClock`), so a test can move time 30 seconds ahead
instead of waiting. A clock that jumps does not tell anyone, so while deadlines are pending a
task on the serving loop looks at the clock every :data:`POLL_INTERVAL` seconds of real time;
:meth:`Timers.run_due` fires what is due at once (``KubeEmulator.settle`` calls it), which is
what makes a test deterministic after ``clock.advance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from podidentity.testing._clock import Clock

__all__ = ["POLL_INTERVAL", "Timers"]

_log = logging.getLogger(__name__)

#: Real seconds between looks at the clock while a deadline is pending.
POLL_INTERVAL = 0.02

Callback = Callable[[], "Awaitable[Any] | Any"]


class Timers:
    """Callbacks keyed by anything hashable, fired once the clock reaches their deadline.

    Everything runs on the serving loop. Scheduling a key again replaces its deadline.

    Args:
        clock: returns the current time in epoch seconds.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._due: dict[Hashable, tuple[float, Callback]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, key: Hashable, at: float, callback: Callback) -> None:
        """Run ``callback`` (sync or async) once ``clock() >= at``."""
        self._due[key] = (at, callback)
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self, key: Hashable) -> None:
        """Forget the deadline of ``key`` (no error if there is none)."""
        self._due.pop(key, None)

    def deadline(self, key: Hashable) -> float | None:
        """When ``key`` fires, if it is scheduled."""
        entry = self._due.get(key)
        return None if entry is None else entry[0]

    async def run_due(self) -> int:
        """Fire every callback whose deadline has passed; returns how many fired."""
        now = self.clock()
        due = sorted(
            ((at, key) for key, (at, _) in self._due.items() if at <= now),
            key=lambda item: item[0],
        )
        fired = 0
        for _, key in due:
            entry = self._due.pop(key, None)
            if entry is None:
                continue
            fired += 1
            try:
                result = entry[1]()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log.exception("timer %r failed", key)
        return fired

    async def _run(self) -> None:
        assert self._wakeup is not None
        while self._due:
            await self.run_due()
            if not self._due:
                break
            nearest = min(at for at, _ in self._due.values())
            wait = min(max(0.0, nearest - self.clock()), POLL_INTERVAL)
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)

    def stop(self) -> None:
        """Cancel the polling task and forget every deadline."""
        self._due.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
