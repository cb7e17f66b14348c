"""ARM resource IDs of the machines behind nodes; compared case-insensitively, as Azure does.

Azure keeps the case a resource was created with but compares IDs without it, and answers with
``resourcegroups`` where callers wrote ``resourceGroups``; every comparison here goes through
:func:`normalize_id`. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["MachineRef", "machine_of_provider_id", "normalize_id"]

_PROVIDER_ID = re.compile(
    r"^azure:///?(?P<prefix>subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/"
    r"microsoft\.compute/(?P<kind>virtualmachines|virtualmachinescalesets)/(?P<name>[^/]+))"
    r"(?:/virtualmachines/(?P<instance>[^/]+))?/?$",
    re.IGNORECASE,
)


def normalize_id(resource_id: str) -> str:
    """The comparison key of an ARM ID: lower case, one leading ``/``, no trailing ``/``."""
    return "/" + resource_id.strip().strip("/").lower()


class MachineRef(str):
    """The ARM ID of a VM or scale set, as written by the node's ``providerID`` (a ``str``).

    Equality and hashing are those of the original string; use :attr:`key` to compare.
    """

    @property
    def key(self) -> str:
        """:func:`normalize_id` of the ID."""
        return normalize_id(self)

    @property
    def is_scale_set(self) -> bool:
        """True for a ``virtualMachineScaleSets`` ID."""
        return "/virtualmachinescalesets/" in self.lower()

    @property
    def subscription(self) -> str:
        """The subscription ID (lower case)."""
        return self.key.split("/")[2]


def machine_of_provider_id(provider_id: str) -> MachineRef | None:
    """The VM or scale set behind a node's ``spec.providerID``; ``None`` if not Azure's.

    ``azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/
    virtualMachineScaleSets/pool/virtualMachines/3`` gives the scale set's ID: identities are
    assigned to the whole scale set, never to one instance.
    """
    match = _PROVIDER_ID.match(provider_id or "")
    if match is None:
        return None
    return MachineRef("/" + match["prefix"])
