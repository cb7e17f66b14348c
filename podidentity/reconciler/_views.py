"""Light read-only views of pods and AzureAssignedIdentities, taken from their JSON.

The hot path never builds the official client's models (seconds per 20,000 pods) nor our full
models for the objects it only compares; it reads the handful of fields it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from podidentity.azure.ids import normalize_id
from podidentity.models import ASSIGNED_IDENTITY_FINALIZER, AssignedIdentityState

__all__ = ["PREEXISTING_ANNOTATION", "AssignedView", "PodView"]

PREEXISTING_ANNOTATION = "podidentity.k8s.io/preexisting"
"""On an AzureAssignedIdentity: the identity was on the machine before podidentity assigned it,
so podidentity never removes it from that machine."""

_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_NO_LABELS: Mapping[str, str] = {}


@attrs.frozen(slots=True)
class PodView:
    """What the reconciler reads from a pod."""

    namespace: str
    name: str
    uid: str
    node: str
    labels: Mapping[str, str]
    service_account: str
    terminated: bool

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PodView:
        """Read a pod's JSON (``metadata``, ``spec.nodeName``, ``status.phase``)."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        return cls(
            namespace=meta.get("namespace") or "default",
            name=meta.get("name") or "",
            uid=meta.get("uid") or "",
            node=spec.get("nodeName") or "",
            labels=meta.get("labels") or _NO_LABELS,
            service_account=spec.get("serviceAccountName")
            or spec.get("serviceAccount")
            or "default",
            terminated=status.get("phase") in _TERMINAL_PHASES,
        )


@attrs.frozen(slots=True)
class AssignedView:
    """What the reconciler reads from an AzureAssignedIdentity it finds in the cluster."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    pod: str
    pod_namespace: str
    node: str
    identity_name: str
    identity_namespace: str
    identity_type: int
    resource_id: str
    """Normalized (:func:`~podidentity.azure.ids.normalize_id`); ``""`` when none."""
    client_id: str
    binding_name: str
    binding_namespace: str
    state: AssignedIdentityState | None
    deleting: bool
    has_finalizer: bool
    preexisting: bool
    _signature: tuple[Any, ...] = attrs.field(init=False, eq=False, repr=False, default=())

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``."""
        return (self.namespace, self.name)

    @property
    def signature(self) -> tuple[Any, ...]:
        """What the record says: compared with :attr:`Desired.signature`."""
        return self._signature

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self,
            "_signature",
            (
                self.pod,
                self.pod_namespace,
                self.node,
                self.identity_name,
                self.identity_namespace,
                self.identity_type,
                self.resource_id,
                self.client_id,
                self.binding_name,
                self.binding_namespace,
            ),
        )

    @property
    def pod_key(self) -> str:
        """``podNamespace/pod``."""
        return f"{self.pod_namespace}/{self.pod}"

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AssignedView:
        """Read an AzureAssignedIdentity's JSON; tolerant of upstream's legacy spellings."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        identity = spec.get("azureIdentityRef") or {}
        identity_meta = identity.get("metadata") or {}
        identity_spec = identity.get("spec") or {}
        binding = spec.get("azureBindingRef") or {}
        binding_meta = binding.get("metadata") or {}
        raw_state = status.get("status")
        try:
            state = AssignedIdentityState(raw_state) if raw_state else None
        except ValueError:
            state = None
        resource_id = identity_spec.get("resourceID") or identity_spec.get("ResourceID") or ""
        raw_type = identity_spec.get("type", 0)
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta.get("name") or "",
            uid=meta.get("uid") or "",
            resource_version=str(meta.get("resourceVersion") or ""),
            pod=spec.get("pod") or "",
            pod_namespace=spec.get("podNamespace") or "",
            node=spec.get("nodename") or spec.get("nodeName") or "",
            identity_name=identity_meta.get("name") or "",
            identity_namespace=identity_meta.get("namespace") or "",
            identity_type=raw_type if isinstance(raw_type, int) else 0,
            resource_id=normalize_id(resource_id) if resource_id else "",
            client_id=(
                identity_spec.get("clientID") or identity_spec.get("ClientID") or ""
            ).lower(),
            binding_name=binding_meta.get("name") or "",
            binding_namespace=binding_meta.get("namespace") or "",
            state=state,
            deleting=bool(meta.get("deletionTimestamp")),
            has_finalizer=ASSIGNED_IDENTITY_FINALIZER in (meta.get("finalizers") or ()),
            preexisting=(meta.get("annotations") or {}).get(PREEXISTING_ANNOTATION) == "true",
        )
