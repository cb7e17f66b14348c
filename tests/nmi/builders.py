"""Builders for the NMI tests: identities, bindings and assignment records as dicts and models."""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    IdentityType,
    ObjectMeta,
    SecretReference,
)
from podidentity.models.assigned import AssignedIdentityStatus

SUB = "00000000-0000-0000-0000-000000000000"


def msi_resource_id(name: str, group: str = "identities") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )


def identity(
    name: str,
    *,
    namespace: str = "default",
    kind: IdentityType = IdentityType.USER_ASSIGNED_MSI,
    client_id: str | None = None,
    resource_id: str | None = None,
    tenant_id: str = "",
    secret: tuple[str, str] | None = None,
) -> AzureIdentity:
    return AzureIdentity(
        metadata=ObjectMeta(name=name, namespace=namespace),
        type=kind,
        client_id=client_id or str(uuid.uuid4()),
        resource_id=(resource_id or msi_resource_id(name))
        if kind is IdentityType.USER_ASSIGNED_MSI
        else "",
        tenant_id=tenant_id,
        client_password=SecretReference(namespace=secret[0], name=secret[1]) if secret else None,
    )


def binding(
    name: str,
    identity_name: str,
    *,
    namespace: str = "default",
    selector: str | None = None,
    service_accounts: list[str] | None = None,
) -> AzureIdentityBinding:
    return AzureIdentityBinding(
        metadata=ObjectMeta(name=name, namespace=namespace),
        azure_identity=identity_name,
        selector=selector if selector is not None else identity_name,
        service_account_names=service_accounts,
    )


def assigned(
    pod: str,
    node: str,
    ident: AzureIdentity,
    *,
    pod_namespace: str = "default",
    bind: AzureIdentityBinding | None = None,
    state: AssignedIdentityState = AssignedIdentityState.ASSIGNED,
) -> AzureAssignedIdentity:
    record = AzureAssignedIdentity.create(
        identity=ident,
        binding=bind or binding(f"{ident.name}-binding", ident.name, namespace=ident.namespace),
        pod=pod,
        pod_namespace=pod_namespace,
        node_name=node,
    )
    return attrs.evolve(record, status=AssignedIdentityStatus(state=state))


def assigned_dict(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return assigned(*args, **kwargs).to_dict()
