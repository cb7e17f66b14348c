"""Azure RBAC for the emulated ARM: which principal may do what, on which scope.

Secure by default, as in Azure: a principal can do nothing at ARM until a role is assigned to
it on a scope (a subscription, a resource group or one resource, and everything below it).
Only the few built-in roles the pod-identity flow uses are known, each with the actions it
grants on the resources the emulator serves:

- ``Reader``: read anything.
- ``Virtual Machine Contributor``: read and write VMs and scale sets (aad-pod-identity's MIC
  needs it on the node resource group).
- ``Managed Identity Operator``: read identities and assign them
  (``Microsoft.ManagedIdentity/userAssignedIdentities/assign/action``), which ARM checks as a
  linked authorization on every identity a VM or scale-set write references.
- ``Contributor`` and ``Owner``: everything.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Mapping

import attrs

__all__ = [
    "ASSIGN_IDENTITY_ACTION",
    "ROLE_ACTIONS",
    "RoleAssignment",
    "RoleAssignments",
    "in_scope",
]

#: The action a caller needs on an identity to put it on a VM or scale set.
ASSIGN_IDENTITY_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

#: Built-in roles by name, with the actions they grant (``*`` matches any run of characters).
ROLE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "Owner": ("*",),
    "Contributor": ("*",),
    "Reader": ("*/read",),
    "Virtual Machine Contributor": (
        "Microsoft.Compute/virtualMachines/*",
        "Microsoft.Compute/virtualMachineScaleSets/*",
        "*/read",
    ),
    "Managed Identity Operator": (
        "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        ASSIGN_IDENTITY_ACTION,
    ),
}


def in_scope(resource_id: str, scope: str) -> bool:
    """Whether ``resource_id`` is ``scope`` or below it (ARM IDs compare case-insensitively)."""
    resource, prefix = resource_id.rstrip("/").lower(), scope.rstrip("/").lower()
    return resource == prefix or resource.startswith(prefix + "/")


@attrs.frozen
class RoleAssignment:
    """A role given to a principal (by object ID) on a scope (an ARM resource ID prefix)."""

    principal_id: str
    scope: str
    role: str

    def allows(self, principal_id: str, action: str, resource_id: str) -> bool:
        """Whether this assignment lets ``principal_id`` do ``action`` on ``resource_id``."""
        return (
            self.principal_id.lower() == principal_id.lower()
            and in_scope(resource_id, self.scope)
            and any(
                fnmatch.fnmatchcase(action.lower(), pattern.lower())
                for pattern in ROLE_ACTIONS[self.role]
            )
        )


class RoleAssignments:
    """The tenant's role assignments; thread-safe (tests grant while ARM serves)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assignments: list[RoleAssignment] = []

    def grant(self, principal_id: str, scope: str, role: str) -> RoleAssignment:
        """Assign ``role`` to a principal on ``scope`` (idempotent).

        Raises:
            ValueError: an unknown role, or a scope that is not an ARM ID under a subscription.
        """
        if role not in ROLE_ACTIONS:
            raise ValueError(f"unknown role {role!r}; known roles: {sorted(ROLE_ACTIONS)}")
        if not scope.lower().startswith("/subscriptions/"):
            raise ValueError(f"a role scope is an ARM ID under /subscriptions/, got {scope!r}")
        assignment = RoleAssignment(principal_id.lower(), scope.rstrip("/"), role)
        with self._lock:
            if assignment not in self._assignments:
                self._assignments.append(assignment)
        return assignment

    def revoke(self, assignment: RoleAssignment) -> None:
        """Remove one assignment (no error if it is gone already)."""
        with self._lock:
            if assignment in self._assignments:
                self._assignments.remove(assignment)

    def allows(self, principal_id: str, action: str, resource_id: str) -> bool:
        """Whether any assignment lets the principal do ``action`` on ``resource_id``."""
        with self._lock:
            assignments = list(self._assignments)
        return any(a.allows(principal_id, action, resource_id) for a in assignments)

    def __len__(self) -> int:
        with self._lock:
            return len(self._assignments)
