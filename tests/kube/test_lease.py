"""Leader election on a Lease in the Kubernetes emulator, with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from podidentity.kube import LEASES, KubeClient, LeaderElector
from podidentity.testing.kube import KubeEmulator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(client: KubeClient, clock: Clock, who: str) -> LeaderElector:
    return LeaderElector(
        client,
        name="controller",
        namespace="default",
        identity=who,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        clock=clock,
    )


async def test_one_leader_then_takeover_after_expiry(
    kube: KubeEmulator, client: KubeClient
) -> None:
    clock = Clock()
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    assert await a.try_acquire_or_renew()
    assert a.is_leader
    assert not await b.try_acquire_or_renew()
    assert b.holder == "a"
    clock.now += 5
    assert await a.try_acquire_or_renew()  # renewal
    assert not await b.try_acquire_or_renew()  # B sees a new record: the lease is fresh
    clock.now += 10
    assert not a.is_leader  # no renewal within the deadline: stop writing at once
    assert not await b.try_acquire_or_renew()  # but the lease has not expired for B yet
    clock.now += 6
    assert await b.try_acquire_or_renew()
    lease = await client.get(LEASES, "controller", "default")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["spec"]["renewTime"].endswith("Z")
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader


async def test_release_hands_over_at_once(kube: KubeEmulator, client: KubeClient) -> None:
    clock = Clock()
    a, b = elector(client, clock, "a"), elector(client, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert await b.try_acquire_or_renew()  # an empty holder is free at once
    assert b.is_leader


async def test_conflicting_writes_leave_one_leader(kube: KubeEmulator, client: KubeClient) -> None:
    clock = Clock()
    candidates = [elector(client, clock, f"c{i}") for i in range(4)]
    results = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
    assert sum(results) == 1
    assert sum(c.is_leader for c in candidates) == 1


async def test_run_reports_changes_and_releases_on_cancel(
    kube: KubeEmulator, client: KubeClient
) -> None:
    events: list[str] = []
    started = asyncio.Event()
    a = LeaderElector(
        client,
        name="run",
        namespace="default",
        identity="a",
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.2,
    )

    def on_started() -> None:
        events.append("started")
        started.set()

    task = asyncio.ensure_future(a.run(on_started, lambda: events.append("stopped")))
    await asyncio.wait_for(started.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["started", "stopped"]
    lease = await client.get(LEASES, "run", "default")
    assert lease["spec"]["holderIdentity"] in ("", None)


def test_invalid_timings_are_refused(client: KubeClient) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(
            client, name="x", namespace="d", identity="i", lease_duration=5, renew_deadline=10
        )
