"""Who is calling, and which identity they get: pure decisions over the node's observed state.

Nothing here does I/O. The proxy feeds these functions what its watches hold (:class:`NodeView`)
and acts on the outcome; every rule that keeps a pod away from an identity lives here, so it is
tested without a server.

Rules:

* The caller is the pod on this node whose ``status.podIP`` is the TCP source address. Pods on
  the host network, and pods that finished (``Succeeded``/``Failed``), are never matched: their
  address is the node's or no longer theirs. When a terminating pod and a live pod share an
  address, the address was handed to the live pod, so the live pod is the caller; two live pods
  with one address are refused, never guessed between.
* A pod's identities are its ``AzureAssignedIdentity`` records on this node in state
  ``Assigned``. Asking for an identity it does not have is refused, naming the client IDs it
  does have. With no identity named and several assigned, the pod gets the one assigned first
  (oldest record, then name): adding a binding later never changes what an application that
  names no identity receives.
* Pods matched by an ``AzurePodIdentityException`` in their own namespace, and the controller's
  own pods, get the node's identities straight from IMDS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from podidentity.errors import CallerNotIdentifiedError, IdentityNotPermittedError
from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzurePodIdentityException,
    IdentityType,
)

__all__ = [
    "NodeView",
    "PodInfo",
    "Selection",
    "caller_for_address",
    "identities_of",
    "is_excepted",
    "select_identities",
]

_DONE_PHASES = ("Succeeded", "Failed")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@attrs.frozen
class PodInfo:
    """What the proxy needs to know about a pod on its node.

    Attributes:
        namespace: the pod's namespace.
        name: the pod's name.
        uid: the pod's UID.
        ip: ``status.podIP`` (``""`` until the pod has one).
        host_network: ``spec.hostNetwork``.
        labels: the pod's labels.
        service_account: ``spec.serviceAccountName``.
        terminating: the pod has a ``deletionTimestamp``.
        phase: ``status.phase``.
        node_name: ``spec.nodeName``.
    """

    namespace: str
    name: str
    uid: str = ""
    ip: str = ""
    host_network: bool = False
    labels: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    service_account: str = "default"
    terminating: bool = False
    phase: str = "Pending"
    node_name: str = ""

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_dict(cls, pod: Mapping[str, Any]) -> PodInfo:
        """Build from a pod as the API server returns it (JSON)."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            ip=str(status.get("podIP") or ""),
            host_network=bool(spec.get("hostNetwork")),
            labels=dict(meta.get("labels") or {}),
            service_account=str(
                spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            ),
            terminating=bool(meta.get("deletionTimestamp")),
            phase=str(status.get("phase") or "Pending"),
            node_name=str(spec.get("nodeName") or ""),
        )


class NodeView(Protocol):
    """The node's observed state, as the proxy's watches hold it."""

    @property
    def node_name(self) -> str:
        """The node this view covers."""
        ...

    def pods_with_ip(self, ip: str) -> list[PodInfo]:
        """Every pod on the node whose ``status.podIP`` is ``ip`` (any phase)."""
        ...

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod ``namespace/name`` if it is on this node."""
        ...

    def assignments(self, namespace: str, name: str) -> list[AzureAssignedIdentity]:
        """Every assignment record for the pod on this node, in any state."""
        ...

    def exceptions(self, namespace: str) -> list[AzurePodIdentityException]:
        """The ``AzurePodIdentityException`` objects in ``namespace``."""
        ...

    @property
    def synced(self) -> bool:
        """Whether the view has listed everything once (the proxy is ready)."""
        ...

    async def changed(self) -> None:
        """Return at the next change of anything in the view (no polling)."""
        ...


def caller_for_address(view: NodeView, address: str) -> PodInfo:
    """The pod calling from ``address`` (the TCP peer), by the rules in the module doc.

    Raises:
        CallerNotIdentifiedError: no pod, or more than one live pod, has the address, or it is
            a host-network address.
    """
    candidates = view.pods_with_ip(address)
    usable = [p for p in candidates if not p.host_network and p.phase not in _DONE_PHASES]
    live = [p for p in usable if not p.terminating]
    chosen = live or usable
    if not chosen:
        if any(p.host_network for p in candidates):
            raise CallerNotIdentifiedError(
                f"{address} is node {view.node_name}'s own address (host network): callers on "
                "the host network get no pod identity"
            )
        raise CallerNotIdentifiedError(
            f"no pod on node {view.node_name} has the IP {address}; the token proxy only "
            "answers pods running on its node"
        )
    if len(chosen) > 1:
        names = ", ".join(sorted(p.key for p in chosen))
        raise CallerNotIdentifiedError(
            f"pods {names} on node {view.node_name} all have the IP {address}; refusing to "
            "guess which one is calling"
        )
    return chosen[0]


def is_excepted(
    pod: PodInfo,
    exceptions: Iterable[AzurePodIdentityException],
    *,
    controller_namespace: str,
    controller_labels: Sequence[tuple[str, str]],
) -> bool:
    """Whether ``pod`` gets the node's identities from IMDS directly.

    True for the controller's own pods (namespace and every label match) and for pods matched
    by an exception in their own namespace.
    """
    if (
        controller_labels
        and pod.namespace == controller_namespace
        and all(pod.labels.get(k) == v for k, v in controller_labels)
    ):
        return True
    return any(e.namespace == pod.namespace and e.matches(pod.labels) for e in exceptions)


def _order(record: AzureAssignedIdentity) -> tuple[dt.datetime, str]:
    return (record.metadata.creation_timestamp or _EPOCH, record.name)


def _still_bound(pod: PodInfo, record: AzureAssignedIdentity, cluster_wide: bool) -> bool:
    # Defence in depth: the record must still hold for the pod as it is now. A stale record
    # (labels changed, service account not allowed, binding or identity in another namespace)
    # gives nothing, even before the reconciler removes it. Missing namespaces fail closed.
    binding, identity = record.azure_binding_ref, record.azure_identity_ref
    if binding is None or identity is None:
        return False
    # The reconciler's rule, mirrored: a binding names an identity of its own namespace, and
    # both serve only that namespace unless bindings are cluster-wide (then an identity marked
    # "Behavior: namespaced" still does).
    if cluster_wide and not identity.is_namespaced:
        in_scope = True
    else:
        in_scope = identity.namespace == pod.namespace
    return (
        in_scope
        and binding.namespace == identity.namespace
        and binding.azure_identity == identity.name
        and binding.matches(pod.labels, service_account=pod.service_account)
    )


def identities_of(
    pod: PodInfo,
    records: Iterable[AzureAssignedIdentity],
    node_name: str,
    *,
    cluster_wide_bindings: bool = False,
) -> tuple[list[AzureIdentity], list[AzureIdentity]]:
    """The pod's (assigned, pending) identities on ``node_name``, assigned ones oldest first.

    Only records that name this pod and this node count, and only while their embedded binding
    still selects the pod (labels, service account) from the pod's own namespace, for an
    identity of that namespace (any namespace with ``cluster_wide_bindings``, except for
    identities marked ``Behavior: namespaced``); ``Assigned`` records are usable, ``Created``
    ones are pending, ``Unassigned`` ones are neither.
    """
    assigned: list[AzureAssignedIdentity] = []
    pending: list[AzureIdentity] = []
    for record in records:
        identity = record.azure_identity_ref
        if (
            identity is None
            or record.pod != pod.name
            or record.pod_namespace != pod.namespace
            or record.node_name != node_name
            or not _still_bound(pod, record, cluster_wide_bindings)
        ):
            continue
        if record.state is AssignedIdentityState.ASSIGNED:
            assigned.append(record)
        elif record.state in (None, AssignedIdentityState.CREATED):
            pending.append(identity)
    assigned.sort(key=_order)
    usable = [r.azure_identity_ref for r in assigned if r.azure_identity_ref is not None]
    return usable, pending


def _matches(identity: AzureIdentity, parameter: tuple[str, str]) -> bool:
    name, value = parameter
    wanted = value.strip().lower()
    if name == "client_id":
        return identity.client_id.lower() == wanted
    if name == "object_id":
        return True  # resolved from the tokens themselves, among the pod's own identities
    # msi_res_id, mi_res_id, resource_id: ARM IDs compare case-insensitively.
    return identity.type is IdentityType.USER_ASSIGNED_MSI and identity.resource_id.rstrip(
        "/"
    ).lower() == wanted.rstrip("/")


@attrs.frozen
class Selection:
    """The outcome of :func:`select_identities`.

    Attributes:
        candidates: identities that may answer, in order; one, except for ``object_id``
            requests (every assigned identity, to be matched by the token's ``oid``).
        wait: nothing usable yet, but a pending assignment (or none at all yet) may make one
            usable: wait for the watch.
    """

    candidates: tuple[AzureIdentity, ...] = ()
    wait: bool = False


def select_identities(
    pod: PodInfo,
    assigned: Sequence[AzureIdentity],
    pending: Sequence[AzureIdentity],
    parameter: tuple[str, str] | None,
) -> Selection:
    """Which of the pod's identities answer a request naming ``parameter``.

    Raises:
        IdentityNotPermittedError: the pod has identities, none pending matches, and none of
            its assigned ones is the one asked for. The message names its client IDs only.
    """
    if parameter is None:
        if assigned:
            return Selection(candidates=(assigned[0],))
        return Selection(wait=True)
    matching = tuple(i for i in assigned if _matches(i, parameter))
    if matching:
        return Selection(candidates=matching if parameter[0] == "object_id" else matching[:1])
    if not assigned and not pending:
        return Selection(wait=True)  # the reconciler may not have written the record yet
    if any(_matches(i, parameter) for i in pending):
        return Selection(wait=True)
    raise not_permitted(pod, assigned, parameter)


def not_permitted(
    pod: PodInfo, assigned: Sequence[AzureIdentity], parameter: tuple[str, str]
) -> IdentityNotPermittedError:
    """The refusal for a pod asking for an identity it does not have."""
    have = sorted({i.client_id for i in assigned})
    listed = ", ".join(have) if have else "none"
    return IdentityNotPermittedError(
        f"pod {pod.key} has no identity with {parameter[0]} {parameter[1]!r}; the client IDs "
        f"assigned to it are: {listed}"
    )
