"""Azure I/O for podidentity's engines: ARM resource IDs and the ARM client for VM identities.

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
