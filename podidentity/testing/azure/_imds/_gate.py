"""A gate that holds requests inside an emulator until the test opens it.

Concurrency rules ("5 requests in flight per VM") can only be tested if requests can be kept in
flight on purpose: timing with sleeps is flaky on a shared machine. A :class:`RequestGate` is
passed by requests on the emulators' event loop (another thread than the test), so it keeps
one future per held request on that loop and opens them with ``call_soon_threadsafe``; the test
waits for the requests to arrive with :meth:`RequestGate.wait_held`.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["RequestGate"]


class RequestGate:
    """Holds requests that reach it until :meth:`open`; thread-safe."""

    def __init__(self) -> None:
        self._arrived = threading.Condition()
        self._open = False
        self._held: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        state = "open" if self._open else f"holding {self.held}"
        return f"RequestGate({state})"

    async def passage(self) -> None:
        """Wait here (on the serving loop) until the gate is open."""
        loop = asyncio.get_running_loop()
        with self._arrived:
            if self._open:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._held.append((loop, future))
            self._arrived.notify_all()
        await future

    @property
    def held(self) -> int:
        """Requests waiting at the gate now."""
        with self._arrived:
            return len(self._held)

    def wait_held(self, count: int, timeout: float = 10.0) -> None:
        """Block until ``count`` requests wait at the gate.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._held) >= count, timeout):
                raise TimeoutError(f"{len(self._held)} of {count} requests reached the gate")

    def open(self) -> None:
        """Let every held request through, and every later one pass without stopping."""
        with self._arrived:
            self._open = True
            held, self._held = self._held, []
        for loop, future in held:
            loop.call_soon_threadsafe(_release, future)


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
