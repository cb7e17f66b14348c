"""``ControllerSettings``: everything an operator can choose about the controller."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

from podidentity.errors import ConfigError

__all__ = ["ControllerSettings"]


def _lower(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise ConfigError("expected a collection of client IDs, not one string")
    return frozenset(v.lower() for v in values)


def _ids(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise ConfigError("expected a collection of resource IDs, not one string")
    return frozenset(values)


@attrs.frozen(kw_only=True)
class ControllerSettings:
    """Settings of :class:`~podidentity.reconciler.Controller`; defaults are the secure ones.

    Attributes:
        cluster_wide_bindings: bindings and identities serve pods of every namespace
            (upstream's old behaviour, for migration; logged as a warning). Default: the pod,
            the binding and the identity must share a namespace.
        immutable_identities: client IDs never removed from a machine.
        protected_resource_ids: resource IDs never removed from a machine (the cluster's
            kubelet identity).
        mode: ``"standard"`` assigns identities through ARM; ``"managed"`` assumes they are
            assigned out of band, makes no ARM call and still keeps the records.
        resync_interval: seconds between full passes over every machine (drift repair on the
            Kubernetes side; costs no ARM request when nothing changed).
        arm_refresh_interval: seconds between re-reads of each machine from ARM (repairs
            identities removed by hand).
        arm_batch_size: identities per ARM request (ARM's limit is 150).
        cloud: the Azure cloud (``AzurePublicCloud``, ``AzureChinaCloud``,
            ``AzureUSGovernment``).
        workers: machines reconciled concurrently.
        queue_rate: keys per second handed to workers, overall.
        queue_burst: keys handed out at once before ``queue_rate`` applies.
        retry_base_delay: first retry delay of a failing key (doubles per failure).
        retry_max_delay: longest retry delay.
        leader_election: elect a leader with a Lease; only the leader writes.
        lease_name: the Lease's name.
        lease_namespace: the Lease's namespace.
        lease_duration: seconds; a new leader takes over within this after the old one stops.
        renew_deadline: seconds the leader keeps writing without renewing.
        retry_period: seconds between lease attempts.
        holder_identity: this replica's name in the Lease (generated when empty).
        event_component: ``source.component`` of the Events it writes.
    """

    cluster_wide_bindings: bool = False
    immutable_identities: frozenset[str] = attrs.field(default=frozenset(), converter=_lower)
    protected_resource_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_ids)
    mode: Literal["standard", "managed"] = "standard"
    resync_interval: float = 300.0
    arm_refresh_interval: float = 1800.0
    arm_batch_size: int = 150
    cloud: str = "AzurePublicCloud"
    workers: int = 4
    queue_rate: float = 50.0
    queue_burst: int = 200
    retry_base_delay: float = 0.05
    retry_max_delay: float = 300.0
    leader_election: bool = True
    lease_name: str = "podidentity-controller"
    lease_namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    holder_identity: str = ""
    event_component: str = "podidentity-controller"

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("standard", "managed"):
            raise ConfigError(f"mode: expected 'standard' or 'managed', got {self.mode!r}")
        if not 1 <= self.arm_batch_size <= 150:
            raise ConfigError(
                f"arm_batch_size: ARM takes 1 to 150 identities per request, got "
                f"{self.arm_batch_size}"
            )
        if self.workers < 1:
            raise ConfigError(f"workers: need at least 1, got {self.workers}")
        for name in ("resync_interval", "arm_refresh_interval", "queue_rate", "retry_base_delay"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ConfigError(
                "lease timings: need lease_duration > renew_deadline > retry_period > 0, got "
                f"{self.lease_duration}, {self.renew_deadline}, {self.retry_period}"
            )
