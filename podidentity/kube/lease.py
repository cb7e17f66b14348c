"""Leader election on a ``coordination.k8s.io/v1`` Lease, for asyncio.

Why not the official client's ``kubernetes.aio.leaderelection``: it reads the wall clock
directly (no injectable clock), writes local time with a ``Z`` suffix (wrong unless the host
runs in UTC), refuses retry periods under one second, never releases the lease on shutdown,
calls ``sys.exit`` on a missing config, and keeps leading until a whole renew deadline has
failed, while a controller must stop writing the moment leadership is in doubt. This elector
is client-go's algorithm: expiry is judged by the local monotonic clock from when the record
was last seen to change (so clock skew between replicas does not matter), writes carry the
resourceVersion read (optimistic concurrency), and :attr:`LeaderElector.is_leader` turns false
as soon as the last successful renewal is older than the renew deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from podidentity.errors import KubeConflictError, KubeError, KubeNotFoundError
from podidentity.kube._client import KubeClient
from podidentity.kube._resources import LEASES
from podidentity.models._time import format_kube_time

__all__ = ["LeaderElector"]

_log = logging.getLogger(__name__)


def _micro_time(moment: dt.datetime) -> str:
    return format_kube_time(moment, micro=True)


class LeaderElector:
    """Campaigns for, holds and releases one Lease.

    Args:
        client: the :class:`~podidentity.kube.KubeClient`.
        name: the Lease's name.
        namespace: the Lease's namespace.
        identity: this candidate's unique holder identity (pod name plus a random suffix).
        lease_duration: seconds a lease is valid after its last renewal.
        renew_deadline: seconds the leader keeps leading without a successful renewal.
        retry_period: seconds between attempts.
        clock: monotonic seconds (inject in tests).
        sleep: awaitable sleep (inject in tests).
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > retry_period > 0, got "
                f"{lease_duration}, {renew_deadline}, {retry_period}"
            )
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._sleep = sleep
        self._renewed_at: float | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.holder = ""
        """The holder named by the Lease when last read."""
        self.transitions = 0
        """How many times this candidate became leader."""

    @property
    def is_leader(self) -> bool:
        """True while this candidate holds the lease and renewed it within the deadline."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.renew_deadline

    async def run(
        self,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        """Campaign and renew until cancelled; call the callbacks on every change.

        On cancellation a held lease is released, so another replica takes over at once.
        """
        leading = False
        try:
            while True:
                await self.try_acquire_or_renew()
                if self.is_leader != leading:
                    leading = self.is_leader
                    _log.info(
                        "%s %s the lease %s/%s",
                        self.identity,
                        "acquired" if leading else "lost",
                        self.namespace,
                        self.name,
                    )
                    callback = on_started if leading else on_stopped
                    if callback is not None:
                        callback()
                await self._sleep(self.retry_period)
        finally:
            if self._renewed_at is not None:
                self._renewed_at = None
                if on_stopped is not None and leading:
                    on_stopped()
                await asyncio.shield(self.release())

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the lease afterwards."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except KubeNotFoundError:
            return await self._create()
        except KubeError as err:
            _log.warning("reading lease %s/%s: %s", self.namespace, self.name, err)
            return self._renew_failed()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self.holder = holder
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        now = self._clock()
        if record != self._observed:
            self._observed = record
            self._observed_at = now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            self._renewed_at = None
            return False
        moment = dt.datetime.now(dt.timezone.utc)
        new_spec = dict(spec)
        new_spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.lease_duration),
            renewTime=_micro_time(moment),
        )
        if holder != self.identity:
            new_spec["acquireTime"] = _micro_time(moment)
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = dict(lease, spec=new_spec)
        started = self._clock()
        try:
            await self.client.replace(LEASES, body)
        except KubeConflictError:
            return self._renew_failed()
        except KubeError as err:
            _log.warning("renewing lease %s/%s: %s", self.namespace, self.name, err)
            return self._renew_failed()
        return self._won(started, holder)

    async def _create(self) -> bool:
        moment = _micro_time(dt.datetime.now(dt.timezone.utc))
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": moment,
                "renewTime": moment,
                "leaseTransitions": 0,
            },
        }
        started = self._clock()
        try:
            await self.client.create(LEASES, body, self.namespace)
        except KubeError as err:
            _log.info("creating lease %s/%s: %s", self.namespace, self.name, err)
            return self._renew_failed()
        return self._won(started, "")

    def _won(self, started: float, previous: str) -> bool:
        if previous != self.identity:
            self.transitions += 1
        # Count from when the request was sent: the server may have seen it that early.
        self._renewed_at = started
        self.holder = self.identity
        return True

    def _renew_failed(self) -> bool:
        if not self.is_leader:
            self._renewed_at = None
        return self.is_leader

    async def release(self) -> None:
        """Give the lease up if this candidate holds it (empty holder, 1 s duration)."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            body = dict(lease, spec=dict(spec, holderIdentity="", leaseDurationSeconds=1))
            await self.client.replace(LEASES, body)
        except KubeError as err:
            _log.info("releasing lease %s/%s: %s", self.namespace, self.name, err)
