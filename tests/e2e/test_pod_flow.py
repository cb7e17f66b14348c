"""The whole flow with every real component: the controller assigns, the token proxy serves,
the Key Vault helper reads, for every identity type, through ``Sandbox.as_pod``.

Nothing is written by hand on the controller's behalf: the test creates only what a cluster
administrator and an application would (identities, bindings, pods, a vault), and every
AzureAssignedIdentity, ARM write and token comes from the components themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity import keyvault
from podidentity.errors import AzureAuthenticationError
from podidentity.keyvault import aio as keyvault_aio
from podidentity.models import AzureIdentityBinding, ObjectMeta
from podidentity.nmi import TokenProxySettings
from podidentity.testing import Sandbox
from podidentity.testing._jwt import unverified_claims
from tests.e2e.test_controller import (
    FAST,
    OPERATION_DURATION,
    identity_manifest,
    states,
)
from tests.nmi.world import GROUP, VAULT, VERSION, NmiWorld, unique
from tests.waiting import eventually

SCOPE = f"{VAULT}/.default"
SECRET = "s3cret-value-of-the-flow"


@attrs.define
class Flow:
    world: NmiWorld
    vault_url: str


@pytest.fixture(scope="module")
def flow() -> Iterator[Flow]:
    # ARM and IMDS delays stay on, so the proxy waits for the controller's Assigned, then for
    # IMDS, within its pending timeout; each is the shortest that still makes it wait (a
    # Retry-After is whole seconds): the sandbox's 2 s and 5 s only made every pod wait longer.
    with Sandbox(operation_duration=OPERATION_DURATION, propagation_delay=1.0) as sandbox:
        sandbox.add_node_pool("agents", count=2)
        sandbox.start_controller(FAST)
        sandbox.start_token_proxies(TokenProxySettings(pending_timeout=30.0))
        vault_url = sandbox.azure.keyvault.create_vault("flow-kv")
        sandbox.azure.keyvault.set_secret("flow-kv", "db-password", SECRET)
        with sandbox.kube_client() as api:
            yield Flow(NmiWorld(sandbox, api), vault_url)


def create(world: NmiWorld, plural: str, namespace: str, body: dict[str, Any]) -> None:
    world.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


Made = tuple[str, str, dict[str, Any]]
"""An identity's client ID, the principal (object) ID its tokens carry, its AzureIdentity."""


def bind(world: NmiWorld, identity: str) -> None:
    """A binding for ``identity`` selecting pods labelled ``aadpodidbinding: <identity>``."""
    binding = AzureIdentityBinding(
        metadata=ObjectMeta(name=f"{identity}-binding", namespace="default"),
        azure_identity=identity,
        selector=identity,
    )
    create(world, "azureidentitybindings", "default", binding.to_dict())


def managed_identity(world: NmiWorld, name: str) -> Made:
    """A user-assigned identity the controller must put on the pod's scale set through ARM."""
    managed = world.sandbox.azure.world.add_managed_identity(unique(name))
    return managed.client_id, managed.principal_id, identity_manifest(name, managed)


def service_principal(world: NmiWorld, name: str, certificate: bool) -> Made:
    sp, model = world.service_principal(name, certificate=certificate)
    return sp.client_id, sp.object_id, model.to_dict()


def federated(world: NmiWorld, name: str) -> Made:
    managed, model = world.federated(name, service_account=name)
    return managed.client_id, managed.principal_id, model.to_dict()


KINDS: dict[str, Callable[[NmiWorld, str], Made]] = {
    "user-assigned": managed_identity,
    "service-principal": lambda w, n: service_principal(w, n, certificate=False),
    "service-principal-certificate": lambda w, n: service_principal(w, n, certificate=True),
    "federated": federated,
}


async def tokens(client_id: str) -> list[str]:
    """A token from the sync and the aio azure-identity client, both unmodified."""
    sync_token = ManagedIdentityCredential(client_id=client_id).get_token(SCOPE).token
    async with AsyncManagedIdentityCredential(client_id=client_id) as credential:
        aio_token = (await credential.get_token(SCOPE)).token
    return [sync_token, aio_token]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_every_identity_type_from_binding_to_a_vault_read(flow: Flow, kind: str) -> None:
    world = flow.world
    name = unique(kind.split("-")[0])
    client_id, principal_id, identity = KINDS[kind](world, name)
    create(world, "azureidentities", "default", identity)
    bind(world, name)
    service_account = name if kind == "federated" else "default"
    pod = world.pod(f"{name}-pod", selector=name, service_account=service_account)
    record = f"default/{pod['metadata']['name']}-default-{name}"
    eventually(lambda: states(world.sandbox).get(record) == "Assigned")
    world.sandbox.azure.keyvault.grant("flow-kv", principal_id, secrets=["get"])

    with world.sandbox.as_pod(pod["metadata"]["name"]):
        for token in await tokens(client_id):
            assert unverified_claims(token)["oid"] == principal_id
        # The Key Vault helper with its default credential: the pod's own identity.
        credential = ManagedIdentityCredential(client_id=client_id)
        assert keyvault.get_secret(flow.vault_url, "db-password", credential=credential) == SECRET
        async with AsyncManagedIdentityCredential(client_id=client_id) as aio_credential:
            value = await keyvault_aio.get_secret(
                flow.vault_url, "db-password", credential=aio_credential
            )
        assert value == SECRET


async def test_a_pod_asking_for_an_identity_it_was_not_given_reads_nothing(flow: Flow) -> None:
    world = flow.world
    name = unique("mine")
    mine_client_id, _, mine = managed_identity(world, name)
    create(world, "azureidentities", "default", mine)
    bind(world, name)
    # Another identity, on the same scale set through another pod, allowed to read the vault.
    theirs_name = unique("theirs")
    theirs_client_id, theirs_principal, theirs = managed_identity(world, theirs_name)
    create(world, "azureidentities", "default", theirs)
    bind(world, theirs_name)
    world.sandbox.azure.keyvault.grant("flow-kv", theirs_principal, secrets=["get"])
    pod = world.pod(f"{name}-pod", selector=name)
    other = world.pod(f"{theirs_name}-pod", selector=theirs_name, node=pod["spec"]["nodeName"])
    for owner, identity in ((pod, name), (other, theirs_name)):
        record = f"default/{owner['metadata']['name']}-default-{identity}"
        eventually(lambda record=record: states(world.sandbox).get(record) == "Assigned")

    with world.sandbox.as_pod(pod["metadata"]["name"]):
        assert ManagedIdentityCredential(client_id=mine_client_id).get_token(SCOPE).token
        with pytest.raises(ClientAuthenticationError):
            ManagedIdentityCredential(client_id=theirs_client_id).get_token(SCOPE)
        with pytest.raises(AzureAuthenticationError):
            keyvault.get_secret(
                flow.vault_url,
                "db-password",
                credential=ManagedIdentityCredential(client_id=theirs_client_id),
            )
