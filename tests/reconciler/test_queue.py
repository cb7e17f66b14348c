"""The work queue and token bucket (pure asyncio, no servers)."""

from __future__ import annotations

import asyncio

import pytest

from podidentity.reconciler import TokenBucket, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    assert bucket.reserve() == 0
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 1
    assert bucket.reserve() == 0
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, burst=1)


async def test_a_key_is_queued_once_and_never_handed_out_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    first = await queue.get()
    assert first == "a"
    queue.add("a")  # changed while being processed: not handed out again yet
    assert await queue.get() == "b"
    assert len(queue) == 0
    assert queue.processing == {"a", "b"}
    queue.done("a")  # now it is queued again
    assert await queue.get() == "a"
    queue.done("a")
    queue.done("b")
    assert len(queue) == 0


async def test_rate_limited_retries_back_off_per_key() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = [queue.add_rate_limited("k") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    assert queue.failures("k") == 4
    queue.forget("k")
    assert queue.failures("k") == 0
    assert queue.add_rate_limited("k", 0.0) == 0.0
    assert await asyncio.wait_for(queue.get(), 5) == "k"


async def test_delayed_keys_arrive_and_shutdown_releases_waiters() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("later", 0.01)
    assert await asyncio.wait_for(queue.get(), 5) == "later"
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.shutdown()
    assert await asyncio.wait_for(waiter, 5) is None
    queue.add("ignored")
    assert len(queue) == 0
