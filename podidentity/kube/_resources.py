"""Which API resource a request is about: group, version, plural and scope."""

from __future__ import annotations

import urllib.parse

import attrs

__all__ = [
    "ASSIGNED_IDENTITIES",
    "EVENTS",
    "IDENTITIES",
    "BINDINGS",
    "EXCEPTIONS",
    "LEASES",
    "NODES",
    "PODS",
    "ApiResource",
]


@attrs.frozen
class ApiResource:
    """An API resource as the REST paths name it.

    Attributes:
        group: the API group; ``""`` for the core group (``/api/v1``).
        version: the version (``v1``).
        plural: the resource name in paths (``pods``, ``azureidentities``).
        kind: the object kind (``Pod``), for messages.
        namespaced: whether objects live in namespaces.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The REST path: a collection (all namespaces or one), an object, or a subresource."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{urllib.parse.quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(urllib.parse.quote(name, safe=""))
            if sub:
                parts.append(sub)
        return "/".join(parts)


PODS = ApiResource("", "v1", "pods", "Pod")
"""Core ``v1`` pods."""
NODES = ApiResource("", "v1", "nodes", "Node", namespaced=False)
"""Core ``v1`` nodes (cluster-scoped)."""
EVENTS = ApiResource("", "v1", "events", "Event")
"""Core ``v1`` events (what the controller writes)."""
LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease")
"""``coordination.k8s.io/v1`` leases (leader election)."""
IDENTITIES = ApiResource("aadpodidentity.k8s.io", "v1", "azureidentities", "AzureIdentity")
"""``AzureIdentity`` objects."""
BINDINGS = ApiResource(
    "aadpodidentity.k8s.io", "v1", "azureidentitybindings", "AzureIdentityBinding"
)
"""``AzureIdentityBinding`` objects."""
EXCEPTIONS = ApiResource(
    "aadpodidentity.k8s.io", "v1", "azurepodidentityexceptions", "AzurePodIdentityException"
)
"""``AzurePodIdentityException`` objects."""
ASSIGNED_IDENTITIES = ApiResource(
    "aadpodidentity.k8s.io", "v1", "azureassignedidentities", "AzureAssignedIdentity"
)
"""``AzureAssignedIdentity`` objects."""
