"""The token proxy's token cache: refresh ahead with jitter, single-flight, bounded.

aad-pod-identity's NMI asked IMDS or Azure AD for a fresh token on every request; IMDS allows
about 20 requests per second per VM, so a busy node was throttled. Here a token is fetched
once per key and served from memory until it nears expiry:

* **Keyed by (identity, resource, tenant).** The identity part says which ``AzureIdentity``
  (and, for federated identities, which service account) the token belongs to, so a token is
  never served for another identity.
* **Refresh ahead, with jitter.** A token is refreshed ``refresh_ahead`` seconds (plus up to
  ``refresh_jitter``, at random per token) before it expires, in the background: callers keep
  getting the still-valid token meanwhile, and a failed refresh keeps it until it is nearly
  expired. Tokens issued together are not all refreshed in the same second.
* **Single-flight.** Concurrent requests for one key wait for one upstream call.
* **Bounded.** At most ``max_entries`` keys; the least recently used go first.
* **Memory only.** Never written to disk; ``repr`` of entries never shows a token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import attrs

from podidentity.azure.tokens import AccessToken

__all__ = ["CacheKey", "TokenCache"]

logger = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]
"""``(identity key, resource, tenant)``."""

# A cached token with less life than this left is not handed out: the caller would get a token
# that expires before it can use it.
_MIN_REMAINING = 30.0


@attrs.define
class _Entry:
    token: AccessToken | None = None
    refresh_at: float = 0.0
    flight: asyncio.Task[AccessToken] | None = None


class TokenCache:
    """An in-memory token cache (see the module doc). Use it from one event loop.

    Args:
        max_entries: the most keys kept.
        refresh_ahead: seconds before expiry to refresh.
        refresh_jitter: up to this many more seconds, at random per token.
        clock: epoch seconds (injected in tests).
        rng: a ``random.random``-like source (injected in tests).
        on_hit: called for every answer from the cache (metrics).
        on_miss: called for every answer that waits for a fetch (metrics).
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        refresh_ahead: float = 300.0,
        refresh_jitter: float = 60.0,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        on_hit: Callable[[], object] | None = None,
        on_miss: Callable[[], object] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"a token cache holds at least one entry, got {max_entries}")
        self.max_entries = max_entries
        self.refresh_ahead = refresh_ahead
        self.refresh_jitter = refresh_jitter
        self._clock = clock
        self._rng = rng
        self._on_hit = on_hit
        self._on_miss = on_miss
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.upstream_calls = 0

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._entries)}, max_entries={self.max_entries})"

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every token (in-flight fetches still finish, but are not kept)."""
        self._entries.clear()

    async def get(self, key: CacheKey, fetch: Callable[[], Awaitable[AccessToken]]) -> AccessToken:
        """The token for ``key``: cached, or fetched once however many callers ask at once.

        A caller that is cancelled (its client went away) does not cancel the shared fetch.

        Raises:
            Exception: whatever ``fetch`` raised, to every caller waiting on that fetch.
        """
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry()
            self._entries[key] = entry
            self._evict()
        else:
            self._entries.move_to_end(key)
        token = entry.token
        if token is not None and token.expires_on - now > _MIN_REMAINING:
            self.hits += 1
            if self._on_hit is not None:
                self._on_hit()
            if now >= entry.refresh_at and entry.flight is None:
                # Refresh in the background; this caller gets the still-valid token.
                self._start(key, entry, fetch)
            return token
        self.misses += 1
        if self._on_miss is not None:
            self._on_miss()
        flight = entry.flight or self._start(key, entry, fetch)
        return await asyncio.shield(flight)

    def _start(
        self, key: CacheKey, entry: _Entry, fetch: Callable[[], Awaitable[AccessToken]]
    ) -> asyncio.Task[AccessToken]:
        self.upstream_calls += 1

        async def run() -> AccessToken:
            return await fetch()

        flight = asyncio.ensure_future(run())
        entry.flight = flight
        flight.add_done_callback(lambda done: self._landed(key, entry, done))
        return flight

    def _landed(self, key: CacheKey, entry: _Entry, flight: asyncio.Task[AccessToken]) -> None:
        entry.flight = None
        if flight.cancelled():
            return
        error = flight.exception()  # also marks it retrieved: no "never retrieved" warning
        if error is not None:
            if entry.token is None and self._entries.get(key) is entry:
                del self._entries[key]
            logger.warning("token refresh for %s failed: %s", _describe(key), type(error).__name__)
            return
        token = flight.result()
        entry.token = token
        entry.refresh_at = self._refresh_time(token)

    def _refresh_time(self, token: AccessToken) -> float:
        now = self._clock()
        lifetime = max(0.0, token.expires_on - now)
        ahead = self.refresh_ahead + self._rng() * self.refresh_jitter
        # A short-lived token is refreshed half-way through its life at the latest.
        return token.expires_on - min(ahead, lifetime / 2)

    def _evict(self) -> None:
        # An evicted entry's in-flight fetch still answers its waiters; the result is not kept.
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _describe(key: CacheKey) -> str:
    identity, resource, tenant = key
    return f"{identity} / {resource}" + (f" / tenant {tenant}" if tenant else "")
