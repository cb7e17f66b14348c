"""Rotation: poll Key Vault on an interval and rewrite the sinks only when something changed.

A poll lists the vault's secrets (and keys) — one request per list page, 25 at most, every
``nextLink`` followed, however short the vault's pages — and fetches only the objects whose
version or update time differs from what was delivered, objects that failed before, and never a
pinned version again. An object that fails keeps its last good output in every sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from azure.core.credentials import TokenCredential

from podidentity.keyvault._core import FetchSettings, Output
from podidentity.keyvault._rotation import PollResult, Rotation, describe
from podidentity.keyvault._spec import VaultObject
from podidentity.keyvault._sync import Reader

__all__ = ["Sink", "Watcher"]

logger = logging.getLogger("podidentity.keyvault")


class Sink(Protocol):
    """Where a watcher delivers the full set of outputs (``DirectorySink``, ...)."""

    def write(self, outputs: dict[str, Output]) -> None:
        """Deliver every output; raise to report a failure (the next change retries)."""


class Watcher:
    """Keeps sinks in step with Key Vault.

    Args:
        objects: what to deliver.
        sinks: where (each gets the whole set whenever any output changed).
        credential: any ``TokenCredential``; by default the pod's own (closed with the watcher).
        settings: vault suffix, concurrency and retries.
        interval: seconds between polls in :meth:`run`.
        on_change: called with the :class:`PollResult` after the sinks were written.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        objects: Iterable[VaultObject],
        sinks: Sequence[Sink],
        *,
        credential: TokenCredential | None = None,
        settings: FetchSettings | None = None,
        interval: float = 120.0,
        on_change: Callable[[PollResult], None] | None = None,
    ) -> None:
        self.settings = settings or FetchSettings()
        self.rotation = Rotation(list(objects), self.settings)
        self.sinks = list(sinks)
        self.interval = interval
        self.on_change = on_change
        self._reader = Reader(credential, self.settings)
        self._pending_write = False

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Key Vault clients (and the credential the watcher created)."""
        self._reader.close()

    def poll(self) -> PollResult:
        """Poll once: list, fetch what changed, write the sinks if anything changed."""
        listings = self._reader.list_properties(self.rotation.listings())
        stale = self.rotation.to_fetch(listings)
        result = self._reader.fetch(stale)
        poll, outputs = self.rotation.apply(result)
        for failure in poll.failures:
            logger.warning("keeping the last good value: %s", failure)
        if (poll.changed or self._pending_write) and outputs:
            self._pending_write = not self._write(outputs)
            poll = PollResult(poll.fetched, poll.changed, poll.failures, not self._pending_write)
            if poll.written and self.on_change is not None:
                self.on_change(poll)
        quiet = not (poll.fetched or poll.changed or poll.failures)
        logger.log(logging.DEBUG if quiet else logging.INFO, "poll: %s", describe(poll))
        return poll

    def _write(self, outputs: dict[str, Output]) -> bool:
        ok = True
        for sink in self.sinks:
            try:
                sink.write(outputs)
            except Exception as err:  # one sink failing must not stop the others
                logger.error("cannot write %r: %s", sink, err)
                ok = False
        return ok

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.poll()
            except Exception:  # a poll failing as a whole (bad credential) is retried
                logger.exception("poll failed; retrying in %s s", self.interval)
            stop.wait(self.interval)
