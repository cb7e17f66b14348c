"""Unmodified azure-identity clients, sync and aio, get tokens through the proxy as a pod."""

from __future__ import annotations

import pytest
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity.testing._jwt import unverified_claims
from tests.nmi.world import VAULT, NmiWorld, unique

SCOPE = f"{VAULT}/.default"


async def both_clients(client_id: str | None) -> tuple[str, str]:
    sync_token = ManagedIdentityCredential(client_id=client_id).get_token(SCOPE).token
    async with AsyncManagedIdentityCredential(client_id=client_id) as credential:
        aio_token = (await credential.get_token(SCOPE)).token
    return sync_token, aio_token


async def test_user_assigned_managed_identity(world: NmiWorld, nodes: list[str]) -> None:
    name = unique("msi-pod")
    pod = world.pod(name, selector="orders", node=nodes[0])
    managed, identity = world.msi("orders", on_node=nodes[0])
    world.assign(pod, identity)
    with world.sandbox.as_pod(name):
        for client_id in (managed.client_id, None):
            for token in await both_clients(client_id):
                claims = unverified_claims(token)
                assert claims["oid"] == managed.principal_id
                assert claims["aud"] == VAULT


@pytest.mark.parametrize("certificate", [False, True], ids=["secret", "certificate"])
async def test_service_principal(world: NmiWorld, nodes: list[str], certificate: bool) -> None:
    name = unique("sp-pod")
    pod = world.pod(name, selector="billing", node=nodes[1])
    sp, identity = world.service_principal(unique("billing"), certificate=certificate)
    world.assign(pod, identity, selector="billing")
    with world.sandbox.as_pod(name):
        for token in await both_clients(sp.client_id):
            assert unverified_claims(token)["oid"] == sp.object_id


async def test_federated_workload_identity(world: NmiWorld, nodes: list[str]) -> None:
    name = unique("fed-pod")
    pod = world.pod(name, selector="reports", node=nodes[0], service_account="reports")
    managed, identity = world.federated("reports", service_account="reports")
    world.assign(pod, identity)
    with world.sandbox.as_pod(name):
        for token in await both_clients(managed.client_id):
            assert unverified_claims(token)["oid"] == managed.principal_id
