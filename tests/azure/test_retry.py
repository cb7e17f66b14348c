"""``retry_within``: which failures are retried, how long it waits, when it gives up (pure)."""

from __future__ import annotations

import asyncio

import pytest

from podidentity.azure.tokens import Backoff, PropagationPacer, retry_within
from podidentity.errors import (
    AzureForbiddenError,
    AzureThrottledError,
    AzureUnavailableError,
    IdentityNotAssignedError,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(errors: list[Exception]) -> object:
    calls = iter(errors)

    async def call() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return "token"

    return call


async def test_imds_propagation_is_polled_steadily_past_the_attempt_budget() -> None:
    time = FakeTime()
    not_yet = [IdentityNotAssignedError("not there yet", status_code=400) for _ in range(30)]
    result = await retry_within(
        failing(not_yet),  # type: ignore[arg-type]
        deadline=60.0,
        backoff=Backoff(attempts=3),
        clock=time.clock,
        sleep=time.sleep,
    )
    assert result == "token"
    assert len(time.waits) == 30
    alone = PropagationPacer()
    assert all(1 / alone.rate <= w <= alone.longest for w in time.waits)


async def test_imds_propagation_gives_up_at_the_deadline() -> None:
    time = FakeTime()
    forever = [IdentityNotAssignedError("not there", status_code=400) for _ in range(1000)]
    with pytest.raises(IdentityNotAssignedError):
        await retry_within(
            failing(forever),  # type: ignore[arg-type]
            deadline=5.0,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.now < 5.0
    assert time.now > 5.0 - PropagationPacer().longest


async def test_throttling_waits_retry_after_and_the_budget_bounds_other_failures() -> None:
    time = FakeTime()
    errors: list[Exception] = [
        AzureThrottledError("slow down", retry_after=7.0, status_code=429),
        AzureUnavailableError("503", status_code=503),
    ]
    assert (
        await retry_within(
            failing(errors),  # type: ignore[arg-type]
            deadline=60.0,
            clock=time.clock,
            sleep=time.sleep,
        )
        == "token"
    )
    assert time.waits[0] >= 7.0
    time = FakeTime()
    down = [AzureUnavailableError("503", status_code=503) for _ in range(10)]
    with pytest.raises(AzureUnavailableError):
        await retry_within(
            failing(down),  # type: ignore[arg-type]
            deadline=600.0,
            backoff=Backoff(attempts=3),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert len(time.waits) == 2


async def test_refusals_are_not_retried() -> None:
    time = FakeTime()
    with pytest.raises(AzureForbiddenError):
        await retry_within(
            failing([AzureForbiddenError("no", status_code=403)]),  # type: ignore[arg-type]
            deadline=60.0,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.waits == []


async def test_identities_waiting_together_share_the_node_poll_budget() -> None:
    """Three identities polling one node's IMDS ask about as often, together, as one alone."""
    time = FakeTime()
    pacer = PropagationPacer(rate=10.0)

    def not_yet(count: int) -> list[Exception]:
        return [IdentityNotAssignedError("not yet", status_code=400) for _ in range(count)]

    async def waiter(errors: list[Exception]) -> str:
        result = await retry_within(
            failing(errors),  # type: ignore[arg-type]
            deadline=600.0,
            clock=time.clock,
            sleep=gated_sleep,
            pacer=pacer,
        )
        return str(result)

    waits_seen: list[tuple[int, float]] = []

    async def gated_sleep(seconds: float) -> None:
        waits_seen.append((pacer.waiting, seconds))
        await asyncio.sleep(0)

    results = await asyncio.gather(*(waiter(not_yet(5)) for _ in range(3)))
    assert results == ["token"] * 3
    assert pacer.waiting == 0  # every waiter left the budget when it got its token
    for waiting, seconds in waits_seen:
        # Each waiter's interval stretches with the others waiting: together ~rate a second.
        assert waiting / pacer.rate <= seconds <= waiting * 1.5 / pacer.rate
    assert max(waiting for waiting, _ in waits_seen) == 3


async def test_a_waiter_that_gives_up_leaves_the_budget() -> None:
    time = FakeTime()
    pacer = PropagationPacer()
    forever = [IdentityNotAssignedError("not there", status_code=400) for _ in range(1000)]
    with pytest.raises(IdentityNotAssignedError):
        await retry_within(
            failing(forever),  # type: ignore[arg-type]
            deadline=2.0,
            clock=time.clock,
            sleep=time.sleep,
            pacer=pacer,
        )
    assert pacer.waiting == 0
