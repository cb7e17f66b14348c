"""Emulators of the Azure endpoints pod identity talks to: Azure AD, IMDS, ARM and Key Vault.

:class:`AzureEmulator` ties them into one emulated tenant on 127.0.0.1 whose real host names are
reached through an HTTPS CONNECT proxy, so azure-identity and the Key Vault SDKs run unmodified.
See ``docs/testing-azure.md``.
"""

from __future__ import annotations

from podidentity.testing._clock import Clock, ManualClock, system_clock
from podidentity.testing.azure._arm import (
    DEFAULT_OPERATION_DURATION,
    ArmLimits,
    ArmService,
    arm_error_json,
    arm_resource_id,
)
from podidentity.testing.azure._emulator import AzureEmulator, Endpoint, ImdsEndpoint
from podidentity.testing.azure._imds import (
    DEFAULT_PROPAGATION_DELAY,
    ImdsLimits,
    ImdsService,
    RequestGate,
    TokenCachePolicy,
)
from podidentity.testing.azure._keyvault import VAULT_RATE_LIMIT, KeyVaultService
from podidentity.testing.azure._operations import IdentityOperation
from podidentity.testing.azure._proxy import HostRoutingProxy
from podidentity.testing.azure._sdk_state import clear_key_vault_challenge_caches
from podidentity.testing.azure._tokens import IssuedToken
from podidentity.testing.azure._world import (
    ARM_AUDIENCES,
    WORKLOAD_IDENTITY_AUDIENCE,
    AzureWorld,
    ComputeResource,
    FederatedCredential,
    ManagedIdentity,
    Principal,
    ServicePrincipal,
    SystemIdentity,
)

__all__ = [
    "ARM_AUDIENCES",
    "ArmLimits",
    "ArmService",
    "AzureEmulator",
    "AzureWorld",
    "Clock",
    "ComputeResource",
    "DEFAULT_OPERATION_DURATION",
    "DEFAULT_PROPAGATION_DELAY",
    "Endpoint",
    "FederatedCredential",
    "HostRoutingProxy",
    "IdentityOperation",
    "ImdsEndpoint",
    "ImdsLimits",
    "ImdsService",
    "IssuedToken",
    "KeyVaultService",
    "ManagedIdentity",
    "ManualClock",
    "Principal",
    "RequestGate",
    "ServicePrincipal",
    "SystemIdentity",
    "TokenCachePolicy",
    "VAULT_RATE_LIMIT",
    "WORKLOAD_IDENTITY_AUDIENCE",
    "arm_error_json",
    "arm_resource_id",
    "clear_key_vault_challenge_caches",
    "system_clock",
]
