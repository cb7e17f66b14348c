"""``AzureAssignedIdentity``: the record that one pod has been given one identity.

The reconciler writes one per (pod, binding) pair it decides on; the node's token proxy reads
them to decide whose token a pod may have. Upstream embedded the full identity and binding
objects, so the proxy never has to look them up; we keep that shape.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from podidentity.models._frozen import FrozenDict
from podidentity.models._names import is_dns1123_label, is_dns1123_subdomain
from podidentity.models._resource import Resource, nested_problems
from podidentity.models._wire import Embedded, EnumCodec, Field, Int, Str, check_extra
from podidentity.models.binding import AzureIdentityBinding
from podidentity.models.identity import AzureIdentity
from podidentity.models.meta import ObjectMeta, frozen_extra
from podidentity.models.problems import Problem, Severity

__all__ = [
    "ASSIGNED_IDENTITY_FINALIZER",
    "NODE_NAME_LABEL",
    "AssignedIdentityState",
    "AssignedIdentityStatus",
    "AzureAssignedIdentity",
    "assigned_identity_name",
]

ASSIGNED_IDENTITY_FINALIZER = "azureassignedidentity.finalizers.aadpodidentity.k8s.io"
"""Upstream's finalizer: the record stays until the identity is off the VM."""

NODE_NAME_LABEL = "nodename"
"""Label carrying the node name, so a node's proxy can list only its own records."""


class AssignedIdentityState(str, enum.Enum):
    """``status.status``: how far the assignment has got."""

    CREATED = "Created"
    """Recorded; the identity is not on the node's VM yet."""
    ASSIGNED = "Assigned"
    """The identity is on the VM (or needs no VM, for federated identities)."""
    UNASSIGNED = "Unassigned"
    """Being removed: the pod is gone or no longer matches."""


_STATE_RULE = "expected Created, Assigned or Unassigned"


def assigned_identity_name(pod: str, pod_namespace: str, identity: str) -> str:
    """Upstream's record name, ``<pod>-<podNamespace>-<identity>``.

    Distinct pods can collide (``a-b`` in ``c`` and ``a`` in ``b-c``); callers that must be
    unique should also compare :attr:`AzureAssignedIdentity.pod` and ``pod_namespace``.
    """
    return f"{pod}-{pod_namespace}-{identity}"


@attrs.frozen(kw_only=True)
class AssignedIdentityStatus:
    """``status`` of an assigned identity (no status subresource, as upstream)."""

    _fields: ClassVar[tuple[Field, ...]]

    state: AssignedIdentityState | None = None
    available_replicas: int | None = None
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "status")


AssignedIdentityStatus._fields = (
    Field("state", "status", EnumCodec(AssignedIdentityState, _STATE_RULE)),
    Field("available_replicas", "availableReplicas", Int()),
)


@attrs.frozen(kw_only=True)
class AzureAssignedIdentity(Resource):
    """One pod's assignment of one identity through one binding.

    Attributes:
        azure_identity_ref: the identity, embedded in full.
        azure_binding_ref: the binding that matched, embedded in full.
        pod: the pod's name.
        pod_namespace: the pod's namespace.
        node_name: the node the pod runs on (wire ``nodename``).
        replicas: declared by upstream; unused.
        status: see :class:`AssignedIdentityStatus`.
    """

    kind: ClassVar[str] = "AzureAssignedIdentity"
    plural: ClassVar[str] = "azureassignedidentities"
    singular: ClassVar[str] = "azureassignedidentity"
    description: ClassVar[str] = (
        "AzureAssignedIdentity contains the identity <-> pod mapping which is matched."
    )

    metadata: ObjectMeta
    azure_identity_ref: AzureIdentity | None = None
    azure_binding_ref: AzureIdentityBinding | None = None
    pod: str = ""
    pod_namespace: str = ""
    node_name: str = ""
    replicas: int | None = None
    status: AssignedIdentityStatus = attrs.field(factory=AssignedIdentityStatus)
    spec_extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    @classmethod
    def create(
        cls,
        *,
        identity: AzureIdentity,
        binding: AzureIdentityBinding,
        pod: str,
        pod_namespace: str,
        node_name: str,
        namespace: str | None = None,
    ) -> AzureAssignedIdentity:
        """A new record in state ``Created``, named, labelled and finalized as upstream did.

        Args:
            identity: the identity to assign.
            binding: the binding that matched the pod.
            pod: the pod's name.
            pod_namespace: the pod's namespace.
            node_name: the node the pod runs on.
            namespace: where to store the record; defaults to the pod's namespace.
        """
        return cls(
            metadata=ObjectMeta(
                name=assigned_identity_name(pod, pod_namespace, identity.name),
                namespace=pod_namespace if namespace is None else namespace,
                labels={NODE_NAME_LABEL: node_name},
                finalizers=(ASSIGNED_IDENTITY_FINALIZER,),
            ),
            azure_identity_ref=identity,
            azure_binding_ref=binding,
            pod=pod,
            pod_namespace=pod_namespace,
            node_name=node_name,
            status=AssignedIdentityStatus(state=AssignedIdentityState.CREATED),
        )

    @property
    def state(self) -> AssignedIdentityState | None:
        """Shortcut for ``status.state``."""
        return self.status.state

    def _spec_problems(self) -> list[Problem]:
        found: list[Problem] = []
        for value, path in (
            (self.pod, "spec.pod"),
            (self.pod_namespace, "spec.podNamespace"),
            (self.node_name, "spec.nodename"),
        ):
            if not value:
                found.append(Problem(path=path, message="is required"))
        if self.pod_namespace and not is_dns1123_label(self.pod_namespace):
            found.append(
                Problem(path="spec.podNamespace", message="is not a valid namespace (DNS-1123)")
            )
        if self.node_name and not is_dns1123_subdomain(self.node_name):
            found.append(
                Problem(path="spec.nodename", message="is not a valid node name (DNS-1123)")
            )
        if self.azure_identity_ref is None:
            found.append(Problem(path="spec.azureIdentityRef", message="is required"))
        else:
            found += nested_problems("spec.azureIdentityRef", self.azure_identity_ref.problems())
        if self.azure_binding_ref is None:
            found.append(Problem(path="spec.azureBindingRef", message="is required"))
        else:
            found += nested_problems("spec.azureBindingRef", self.azure_binding_ref.problems())
            bound = self.azure_binding_ref.azure_identity
            if self.azure_identity_ref is not None and bound != self.azure_identity_ref.name:
                found.append(
                    Problem(
                        path="spec.azureBindingRef.spec.azureIdentity",
                        message=f"binds {bound!r}, but the embedded identity is "
                        f"{self.azure_identity_ref.name!r}",
                    )
                )
        if self.pod and self.pod_namespace and self.azure_identity_ref is not None:
            expected = assigned_identity_name(
                self.pod, self.pod_namespace, self.azure_identity_ref.name
            )
            if self.name != expected:
                found.append(
                    Problem(
                        path="metadata.name",
                        message=f"differs from the conventional name {expected!r}",
                        severity=Severity.WARNING,
                        suggestion=expected,
                    )
                )
        return found


AzureAssignedIdentity._spec_fields = (
    Field(
        "azure_identity_ref",
        "azureIdentityRef",
        Embedded(
            AzureIdentity,
            "AzureIdentityRef is an embedded resource referencing the AzureIdentity used by "
            "the AzureAssignedIdentity, which requires x-kubernetes-embedded-resource fields "
            "to be true",
        ),
    ),
    Field(
        "azure_binding_ref",
        "azureBindingRef",
        Embedded(
            AzureIdentityBinding,
            "AzureBindingRef is an embedded resource referencing the AzureIdentityBinding "
            "used by the AzureAssignedIdentity, which requires x-kubernetes-embedded-resource "
            "fields to be true",
        ),
    ),
    Field("pod", "pod", Str()),
    Field("pod_namespace", "podNamespace", Str()),
    Field("node_name", "nodename", Str()),
    Field("replicas", "replicas", Int(nullable=True)),
)
AzureAssignedIdentity._status_type = AssignedIdentityStatus
