"""The token cache: single-flight, refresh ahead with jitter, bounded, never across keys."""

from __future__ import annotations

import asyncio

import pytest

from podidentity.azure.tokens import AccessToken
from podidentity.errors import AzureUnavailableError
from podidentity.nmi.cache import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Counts calls; each call can be held until released."""

    def __init__(self, clock: Clock, lifetime: int = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self) -> AccessToken:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise AzureUnavailableError("down")
        return AccessToken(
            token=f"token-{self.calls}",
            expires_on=int(self.clock.now) + self.lifetime,
            resource="r",
            client_id="c",
        )


async def test_concurrent_requests_for_one_key_make_one_upstream_call() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    upstream.gate.clear()
    cache = TokenCache(clock=clock)
    waiters = [asyncio.ensure_future(cache.get(("id", "r", ""), upstream)) for _ in range(1000)]
    await asyncio.sleep(0)
    upstream.gate.set()
    tokens = await asyncio.gather(*waiters)
    assert upstream.calls == 1
    assert {t.token for t in tokens} == {"token-1"}


async def test_keys_never_share_tokens() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    cache = TokenCache(clock=clock)
    a = await cache.get(("identity-a", "r", ""), upstream)
    b = await cache.get(("identity-b", "r", ""), upstream)
    c = await cache.get(("identity-a", "r", "other-tenant"), upstream)
    assert len({a.token, b.token, c.token}) == 3
    assert (await cache.get(("identity-a", "r", ""), upstream)).token == a.token


async def test_refresh_ahead_in_the_background_with_jitter() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    cache = TokenCache(clock=clock, refresh_ahead=300, refresh_jitter=60, rng=lambda: 0.5)
    first = await cache.get(("k", "r", ""), upstream)
    clock.now += 3600 - 300 - 31  # just before refresh time (300 + 0.5 * 60 ahead)
    assert (await cache.get(("k", "r", ""), upstream)).token == first.token
    assert upstream.calls == 1
    clock.now += 2  # past it: the caller still gets the valid token, a refresh starts
    upstream.gate.clear()
    assert (await cache.get(("k", "r", ""), upstream)).token == first.token
    assert cache.upstream_calls == 2
    # More callers meanwhile do not start more refreshes.
    assert (await cache.get(("k", "r", ""), upstream)).token == first.token
    assert cache.upstream_calls == 2
    upstream.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (await cache.get(("k", "r", ""), upstream)).token == "token-2"


async def test_a_failed_refresh_keeps_the_valid_token_and_a_failed_fetch_keeps_nothing() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    cache = TokenCache(clock=clock, refresh_ahead=300, refresh_jitter=0)
    first = await cache.get(("k", "r", ""), upstream)
    clock.now += 3400
    upstream.fail = True
    assert (await cache.get(("k", "r", ""), upstream)).token == first.token
    await asyncio.sleep(0)
    assert (await cache.get(("k", "r", ""), upstream)).token == first.token
    clock.now += 200 - 29  # under 30 s of life left: not handed out any more
    with pytest.raises(AzureUnavailableError):
        await cache.get(("k", "r", ""), upstream)
    with pytest.raises(AzureUnavailableError):
        await cache.get(("new", "r", ""), upstream)
    assert ("new", "r", "") not in cache._entries


async def test_size_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    cache = TokenCache(clock=clock, max_entries=2)
    await cache.get(("a", "r", ""), upstream)
    await cache.get(("b", "r", ""), upstream)
    await cache.get(("a", "r", ""), upstream)
    await cache.get(("c", "r", ""), upstream)
    assert len(cache) == 2
    calls = upstream.calls
    await cache.get(("a", "r", ""), upstream)
    assert upstream.calls == calls  # a was used recently: kept
    await cache.get(("b", "r", ""), upstream)
    assert upstream.calls == calls + 1  # b was evicted


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    clock = Clock()
    upstream = Upstream(clock)
    upstream.gate.clear()
    cache = TokenCache(clock=clock)
    first = asyncio.ensure_future(cache.get(("k", "r", ""), upstream))
    second = asyncio.ensure_future(cache.get(("k", "r", ""), upstream))
    await asyncio.sleep(0)
    first.cancel()
    upstream.gate.set()
    assert (await second).token == "token-1"
    assert upstream.calls == 1


def test_tokens_are_never_shown() -> None:
    token = AccessToken(token="secret-token-value", expires_on=1, resource="r", client_id="c")
    assert "secret-token-value" not in repr(token)
    with pytest.raises(ValueError, match="at least one"):
        TokenCache(max_entries=0)
