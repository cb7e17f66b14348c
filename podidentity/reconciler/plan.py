"""The output of the pure core: desired assignments and a plan to reach them.

A :class:`Plan` lists AzureAssignedIdentity writes and, per VM or scale set, one
:class:`MachineChange` (identities to add and to remove). The
:class:`~podidentity.reconciler.Snapshot` computes it; the controller carries it out. Nothing
here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    IdentityType,
)
from podidentity.reconciler._views import PREEXISTING_ANNOTATION, AssignedView

__all__ = [
    "POD_LABEL",
    "POD_NAMESPACE_LABEL",
    "AssignedDelete",
    "AssignedUpdate",
    "Desired",
    "MachineChange",
    "Plan",
    "Skipped",
    "StatusChange",
]

POD_LABEL = "podidentity.k8s.io/pod"
"""Label on an AzureAssignedIdentity: its pod's name (when it is a valid label value)."""
POD_NAMESPACE_LABEL = "podidentity.k8s.io/pod-namespace"
"""Label on an AzureAssignedIdentity: its pod's namespace."""


@attrs.frozen(slots=True)
class Desired:
    """One pod should have one identity, through one binding.

    Attributes:
        namespace: where the AzureAssignedIdentity lives (the pod's namespace).
        name: its name (upstream's ``<pod>-<podNamespace>-<identity>``).
        pod: the pod's name.
        pod_namespace: the pod's namespace.
        pod_uid: the pod's UID.
        node: the pod's node.
        machine: the normalized ARM ID of the node's VM or scale set (``""``: unknown).
        identity: the identity.
        binding: the binding that matched.
    """

    namespace: str
    name: str
    pod: str
    pod_namespace: str
    pod_uid: str
    node: str
    machine: str
    identity: AzureIdentity
    binding: AzureIdentityBinding
    resource_id: str
    """The identity's normalized resource ID when it is user-assigned, else ``""``."""
    signature: tuple[Any, ...] = ()
    """What a record must say to match (see :attr:`AssignedView.signature`); filled in by
    :meth:`build`."""

    @classmethod
    def build(
        cls,
        *,
        pod: str,
        pod_namespace: str,
        pod_uid: str,
        node: str,
        machine: str,
        identity: AzureIdentity,
        binding: AzureIdentityBinding,
        name: str,
        resource_id: str,
        client_id: str,
    ) -> Desired:
        """A desired assignment, with its :attr:`signature` computed once."""
        return cls(
            namespace=pod_namespace,
            name=name,
            pod=pod,
            pod_namespace=pod_namespace,
            pod_uid=pod_uid,
            node=node,
            machine=machine,
            identity=identity,
            binding=binding,
            resource_id=resource_id,
            signature=(
                pod,
                pod_namespace,
                node,
                identity.metadata.name,
                identity.metadata.namespace,
                int(identity.type),
                resource_id,
                client_id,
                binding.metadata.name,
                binding.metadata.namespace,
            ),
        )

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)`` of the AzureAssignedIdentity."""
        return (self.namespace, self.name)

    @property
    def needs_machine(self) -> bool:
        """True for a user-assigned identity, which must be on the node's VM or scale set."""
        return self.identity.type is IdentityType.USER_ASSIGNED_MSI

    def differs_from(self, existing: AssignedView) -> bool:
        """True when ``existing`` records something else (pod, node, identity, binding)."""
        return existing.signature != self.signature

    def to_object(self, *, preexisting: bool = False) -> dict[str, Any]:
        """The AzureAssignedIdentity to create (no status: that is written separately)."""
        record = AzureAssignedIdentity.create(
            identity=_embedded(self.identity),
            binding=_embedded(self.binding),
            pod=self.pod,
            pod_namespace=self.pod_namespace,
            node_name=self.node,
            namespace=self.namespace,
        )
        body = record.to_dict()
        body.pop("status", None)
        labels = body["metadata"].setdefault("labels", {})
        if len(self.pod) <= 63:
            labels[POD_LABEL] = self.pod
        labels[POD_NAMESPACE_LABEL] = self.pod_namespace
        if preexisting:
            body["metadata"].setdefault("annotations", {})[PREEXISTING_ANNOTATION] = "true"
        return body


def _embedded(obj: Any) -> Any:
    """A copy without server bookkeeping, so the record does not churn on every resync."""
    meta = attrs.evolve(
        obj.metadata,
        resource_version="",
        extra={k: v for k, v in obj.metadata.extra.items() if k not in ("managedFields",)},
    )
    return attrs.evolve(obj, metadata=meta)


@attrs.frozen(slots=True)
class AssignedUpdate:
    """Rewrite an existing AzureAssignedIdentity to record ``desired``.

    Its status goes back to Created when the identity to put on the machine changed.
    """

    desired: Desired
    existing: AssignedView
    preexisting: bool = False

    @property
    def resets_status(self) -> bool:
        """True when the machine must get a different identity first."""
        return self.desired.resource_id != self.existing.resource_id


@attrs.frozen(slots=True)
class StatusChange:
    """Write ``status.status`` of an AzureAssignedIdentity."""

    namespace: str
    name: str
    state: AssignedIdentityState
    existing: AssignedView


@attrs.frozen(slots=True)
class AssignedDelete:
    """Delete an AzureAssignedIdentity (and drop its finalizer): nothing is left to undo."""

    existing: AssignedView


@attrs.frozen(slots=True)
class MachineChange:
    """User-assigned identities to add to and remove from one VM or scale set.

    Resource IDs are normalized; :attr:`machine` is the ARM ID as the node's ``providerID``
    wrote it.
    """

    machine: str
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def batches(self, size: int) -> Iterator[MachineChange]:
        """Split into changes of at most ``size`` identities each (ARM's limit is 150)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        entries = [(rid, True) for rid in sorted(self.add)] + [
            (rid, False) for rid in sorted(self.remove)
        ]
        for start in range(0, len(entries), size):
            chunk = entries[start : start + size]
            yield MachineChange(
                self.machine,
                add=frozenset(rid for rid, added in chunk if added),
                remove=frozenset(rid for rid, added in chunk if not added),
            )


@attrs.frozen(slots=True)
class Skipped:
    """An object the reconciler ignores, and why (reported as a Warning Event on it)."""

    kind: str
    namespace: str
    name: str
    reason: str


@attrs.frozen
class Plan:
    """Everything to do to reach the desired state, from one snapshot.

    Carry it out in this order: :attr:`creates` and :attr:`updates`, then :attr:`machines`,
    then (after the machines' identities are observed again) :attr:`status` and
    :attr:`deletes`. Re-planning after each step is always safe: the plan is level-triggered.
    """

    creates: tuple[tuple[Desired, bool], ...] = ()
    """New records and whether each identity was on the machine already (pre-existing)."""
    updates: tuple[AssignedUpdate, ...] = ()
    status: tuple[StatusChange, ...] = ()
    deletes: tuple[AssignedDelete, ...] = ()
    machines: tuple[MachineChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.creates or self.updates or self.status or self.deletes or self.machines)

    @property
    def request_count(self) -> int:
        """AzureAssignedIdentity writes plus machine changes (one per machine)."""
        return (
            len(self.creates)
            + len(self.updates)
            + len(self.status)
            + len(self.deletes)
            + len(self.machines)
        )
