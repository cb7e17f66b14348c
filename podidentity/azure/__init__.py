"""The Azure edge: the only code that talks to Azure (IMDS, Azure AD, ARM).

Each module covers one endpoint and turns its answers into :mod:`podidentity.errors` classes,
so the engines above never see an SDK's or an HTTP library's exceptions. Exported here:

- :func:`machine_of_provider_id`, :func:`normalize_id`, :class:`MachineRef`: which VM or scale
  set backs a node, and case-insensitive ARM IDs.
- :class:`ArmClient`: read and change the user-assigned identities of VMs and scale sets
  (long-running operations, throttling, refused identities); :class:`AzureCloud` and the
  sovereign clouds; :func:`cloud_named`.
"""

from __future__ import annotations

from podidentity.azure.arm import (
    AZURE_CHINA_CLOUD,
    AZURE_PUBLIC_CLOUD,
    AZURE_US_GOVERNMENT,
    ArmClient,
    AsyncTokenCredential,
    AzureCloud,
    IdentityChangeResult,
    MachineIdentities,
    cloud_named,
)
from podidentity.azure.ids import MachineRef, machine_of_provider_id, normalize_id

__all__ = [
    "AZURE_CHINA_CLOUD",
    "AZURE_PUBLIC_CLOUD",
    "AZURE_US_GOVERNMENT",
    "ArmClient",
    "AsyncTokenCredential",
    "AzureCloud",
    "IdentityChangeResult",
    "MachineIdentities",
    "MachineRef",
    "cloud_named",
    "machine_of_provider_id",
    "normalize_id",
]

# The token sources of the node token proxy live in their own modules and are imported from
# there: podidentity.azure.imds (a node's IMDS), .aad (service principals, federation),
# .tokens (the access token value and retry within a deadline).
