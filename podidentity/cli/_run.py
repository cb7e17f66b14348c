"""Running a long-lived asyncio program from a command until SIGTERM or SIGINT.

The program runs on its own thread's event loop; the main thread only waits and turns
SIGTERM / SIGINT into a stop request (the libraries install no signal handlers, and uvicorn's
signal capture only acts on the main thread, so it stays out of the way).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["StopSignal", "run_until_stopped"]


class StopSignal:
    """Collects what to do when the command is asked to stop; safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.requested = False

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on stop (at once if already requested)."""
        with self._lock:
            if not self.requested:
                self._callbacks.append(callback)
                return
        callback()

    def stop(self) -> None:
        """Request the stop: run every callback once."""
        with self._lock:
            self.requested = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def event(self) -> asyncio.Event:
        """An ``asyncio.Event`` of the running loop, set on stop."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def set_event() -> None:
            loop.call_soon_threadsafe(event.set)

        self.on_stop(set_event)
        return event


def run_until_stopped(program: Callable[[StopSignal], Coroutine[Any, Any, None]]) -> None:
    """Run ``program(stop)`` on a fresh event loop until it returns; SIGTERM/SIGINT stop it.

    Exceptions of the program (click's usage errors included) are raised here.
    """
    stop = StopSignal()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(program(stop))
        except BaseException as err:  # re-raised on the main thread below
            failure.append(err)

    def handle(signum: int, frame: object) -> None:
        stop.stop()

    previous = {number: signal.signal(number, handle) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        thread = threading.Thread(target=target, name="podidentity-main", daemon=True)
        thread.start()
        thread.join()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if failure:
        raise failure[0]
