"""Azure I/O for podidentity's engines: ARM resource IDs and the ARM client for VM identities."""

from __future__ import annotations

from podidentity.azure.ids import MachineRef, machine_of_provider_id, normalize_id

__all__ = ["MachineRef", "machine_of_provider_id", "normalize_id"]
