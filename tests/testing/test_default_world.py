"""The default world of ``podidentity sandbox``: what it makes, seen through real clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import kubernetes
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from podidentity.testing import DefaultWorld, Sandbox, populate_default_world
from podidentity.testing.default_world import DEFAULT_SECRET_VALUE


@pytest.fixture(scope="module")
def populated() -> Iterator[tuple[Sandbox, DefaultWorld]]:
    with Sandbox(operation_duration=0, propagation_delay=0, throttling=False) as sandbox:
        yield sandbox, populate_default_world(sandbox)


def test_two_nodes_one_vm_one_scale_set_instance(populated: tuple[Sandbox, DefaultWorld]) -> None:
    sandbox, world = populated
    with sandbox.kube_client() as api:
        nodes = kubernetes.client.CoreV1Api(api).list_node().items
    by_name = {n.metadata.name: n.spec.provider_id for n in nodes}
    assert sorted(by_name) == sorted(n.name for n in world.nodes)
    assert "/virtualMachines/vm-node-0" in by_name["vm-node-0"]
    (pool_node,) = world.node_pool.nodes
    assert "/virtualMachineScaleSets/" in by_name[pool_node.name]
    assert world.vm_node.instance is None
    assert pool_node.instance == 0


def test_one_token_proxy_per_node_answers_its_probe(
    populated: tuple[Sandbox, DefaultWorld],
) -> None:
    sandbox, world = populated
    for node in world.nodes:
        server = sandbox.token_proxy(node)
        probe = httpx.get(f"http://{server.probe_host}:{server.probe_port}/healthz")
        assert probe.status_code == 200, (node.name, probe.text)


def test_the_controller_runs(populated: tuple[Sandbox, DefaultWorld]) -> None:
    _, world = populated
    asyncio.run(asyncio.wait_for(world.controller.wait_synced(), 60))


def test_only_the_readers_may_read_the_vault(populated: tuple[Sandbox, DefaultWorld]) -> None:
    sandbox, world = populated
    app, worker = world.identities
    assert [i.name for i in world.identities] == ["app-identity", "worker-identity"]
    assert {r.name for r in world.vault_readers} == {"app-identity", "workload-identity"}
    # Put both on the VM node, as the controller would, and read as each through that IMDS.
    sandbox.azure.world.assign_identities(world.vm_node.compute, [app, worker])
    with sandbox.on_node(world.vm_node):
        for identity, allowed in ((app, True), (worker, False)):
            credential = ManagedIdentityCredential(client_id=identity.client_id)
            client = SecretClient(world.vault_url, credential)
            if allowed:
                assert client.get_secret(world.secret_names[0]).value == DEFAULT_SECRET_VALUE
            else:
                with pytest.raises(HttpResponseError) as refused:
                    client.get_secret(world.secret_names[0])
                assert refused.value.status_code == 403
    sandbox.azure.world.unassign_identities(world.vm_node.compute, [app, worker])


def test_the_federated_identity_trusts_the_cluster_issuer(
    populated: tuple[Sandbox, DefaultWorld],
) -> None:
    sandbox, world = populated
    assert world.federated_subject == "system:serviceaccount:default:workload"
    assert world.federated_credential.issuer == sandbox.kube.service_accounts.issuer
    assert sandbox.azure.world.federated_credentials(world.federated_identity.client_id) == [
        world.federated_credential
    ]


def test_an_occupied_sandbox_is_refused() -> None:
    with Sandbox() as sandbox:
        sandbox.add_vm_node("already-here")
        with pytest.raises(ValueError, match="empty sandbox"):
            populate_default_world(sandbox)
