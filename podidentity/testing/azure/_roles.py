"""Azure RBAC for the emulated ARM: which principal may do what, on which scope.

Secure by default, as in Azure: a principal can do nothing at ARM until a role is assigned to
it on a scope (a subscription, a resource group or one resource, and everything below it).
Only the few built-in roles the pod-identity flow uses are known, each with the actions (and
not-actions) of its real definition, so a role that lacks something in Azure lacks it here:

- ``Reader``: ``*/read``.
- ``Virtual Machine Contributor``: VMs, scale sets, Compute locations (operation status) and the
  networking and storage bits a VM needs; **no** read on managed identities (aad-pod-identity's
  MIC also needs ``Managed Identity Operator``).
- ``Managed Identity Operator``: ``userAssignedIdentities/*/read`` and
  ``userAssignedIdentities/*/assign/action`` (which ARM checks as a linked authorization on
  every identity a VM or scale-set write references), but not VMs.
- ``Contributor``: everything but writing and deleting authorization; ``Owner``: everything.

Action patterns match as Azure's do: case-insensitively, ``*`` matching any run of
characters, and ``/*/`` also matching a single ``/`` (``userAssignedIdentities/*/read`` covers
``userAssignedIdentities/read``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping

import attrs

__all__ = [
    "ASSIGN_IDENTITY_ACTION",
    "ROLE_ACTIONS",
    "ROLE_DEFINITIONS",
    "RoleAssignment",
    "RoleAssignments",
    "action_matches",
    "in_scope",
]

#: The action a caller needs on an identity to put it on a VM or scale set.
ASSIGN_IDENTITY_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

#: Built-in roles by name: ``(actions, not_actions)`` of their real definitions.
ROLE_DEFINITIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Owner": (("*",), ()),
    "Contributor": (
        ("*",),
        (
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ),
    ),
    "Reader": (("*/read",), ()),
    "Virtual Machine Contributor": (
        (
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/availabilitySets/*",
            "Microsoft.Compute/locations/*",
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Compute/virtualMachineScaleSets/*",
            "Microsoft.Compute/cloudServices/*",
            "Microsoft.Compute/disks/write",
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/delete",
            "Microsoft.DevTestLab/schedules/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
            "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
            "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
            "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
            "Microsoft.Network/loadBalancers/probes/join/action",
            "Microsoft.Network/loadBalancers/read",
            "Microsoft.Network/locations/*",
            "Microsoft.Network/networkInterfaces/*",
            "Microsoft.Network/networkSecurityGroups/join/action",
            "Microsoft.Network/networkSecurityGroups/read",
            "Microsoft.Network/publicIPAddresses/join/action",
            "Microsoft.Network/publicIPAddresses/read",
            "Microsoft.Network/virtualNetworks/read",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.RecoveryServices/locations/*",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.SerialConsole/serialPorts/connect/action",
            "Microsoft.SqlVirtualMachine/*",
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Support/*",
        ),
        (),
    ),
    "Managed Identity Operator": (
        (
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ),
        (),
    ),
}
#: Built-in roles by name, with the actions they grant.
ROLE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    name: actions for name, (actions, _) in ROLE_DEFINITIONS.items()
}


@functools.lru_cache(maxsize=512)
def _pattern(action_pattern: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in action_pattern.lower().split("*")]
    regex = ".*".join(parts).replace("/.*/", "/(?:.*/)?")
    return re.compile(f"^{regex}$")


def action_matches(pattern: str, action: str) -> bool:
    """Whether an RBAC action pattern covers ``action``, as Azure matches them."""
    return _pattern(pattern).match(action.lower()) is not None


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
            and any(action_matches(p, action) for p in ROLE_DEFINITIONS[self.role][0])
            and not any(action_matches(p, action) for p in ROLE_DEFINITIONS[self.role][1])
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
