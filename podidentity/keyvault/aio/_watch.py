"""The asyncio watcher: the same rotation as the sync one, with the aio reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from azure.core.credentials_async import AsyncTokenCredential

from podidentity.keyvault._core import FetchSettings, Output
from podidentity.keyvault._rotation import PollResult, Rotation, describe
from podidentity.keyvault._spec import VaultObject
from podidentity.keyvault._watch import Sink
from podidentity.keyvault.aio._reader import Reader

__all__ = ["Watcher"]

logger = logging.getLogger("podidentity.keyvault")


class Watcher:
    """Keeps sinks in step with Key Vault; the asyncio twin of ``podidentity.keyvault.Watcher``.

    Sinks are called in a worker thread. ``on_change`` may be a function or a coroutine
    function. Use as an async context manager, or await :meth:`close`.
    """

    def __init__(
        self,
        objects: Iterable[VaultObject],
        sinks: Sequence[Sink],
        *,
        credential: AsyncTokenCredential | None = None,
        settings: FetchSettings | None = None,
        interval: float = 120.0,
        on_change: Callable[[PollResult], Awaitable[None] | None] | None = None,
    ) -> None:
        self.settings = settings or FetchSettings()
        self.rotation = Rotation(list(objects), self.settings)
        self.sinks = list(sinks)
        self.interval = interval
        self.on_change = on_change
        self._reader = Reader(credential, self.settings)
        self._pending_write = False

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Key Vault clients (and the credential the watcher created)."""
        await self._reader.close()

    async def poll(self) -> PollResult:
        """Poll once: list, fetch what changed, write the sinks if anything changed."""
        listings = await self._reader.list_properties(self.rotation.listings())
        stale = self.rotation.to_fetch(listings)
        result = await self._reader.fetch(stale)
        poll, outputs = self.rotation.apply(result)
        for failure in poll.failures:
            logger.warning("keeping the last good value: %s", failure)
        if (poll.changed or self._pending_write) and outputs:
            self._pending_write = not await self._write(outputs)
            poll = PollResult(poll.fetched, poll.changed, poll.failures, not self._pending_write)
            if poll.written and self.on_change is not None:
                called = self.on_change(poll)
                if called is not None:
                    await called
        quiet = not (poll.fetched or poll.changed or poll.failures)
        logger.log(logging.DEBUG if quiet else logging.INFO, "poll: %s", describe(poll))
        return poll

    async def _write(self, outputs: dict[str, Output]) -> bool:
        ok = True
        for sink in self.sinks:
            try:
                await asyncio.to_thread(sink.write, outputs)
            except Exception as err:  # one sink failing must not stop the others
                logger.error("cannot write %r: %s", sink, err)
                ok = False
        return ok

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.poll()
            except Exception:  # a poll failing as a whole (bad credential) is retried
                logger.exception("poll failed; retrying in %s s", self.interval)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
