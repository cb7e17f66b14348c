from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential, WorkloadIdentityCredential

from podidentity.testing import ManualClock, Sandbox
from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure import WORKLOAD_IDENTITY_AUDIENCE

VAULT = "https://vault.azure.net/.default"


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def sandbox(clock: ManualClock) -> Iterator[Sandbox]:
    with Sandbox(clock=clock) as world:
        yield world


def pod(name: str, service_account: str = "default", node: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "serviceAccountName": service_account,
        "containers": [{"name": "app", "image": "example.com/app:1"}],
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_nodes_and_machines_agree(sandbox: Sandbox) -> None:
    pool = sandbox.add_node_pool("agents", count=2)
    vm_node = sandbox.add_vm_node("standalone-vm")
    with sandbox.kube_client() as api:
        nodes = {n.metadata.name: n for n in kubernetes.client.CoreV1Api(api).list_node().items}
    for node in pool.nodes:
        provider_id = nodes[node.name].spec.provider_id
        assert provider_id.endswith(
            f"/virtualMachineScaleSets/{pool.scale_set.name}/virtualMachines/{node.instance}"
        )
        assert node.compute.resource_id.lower() in provider_id.lower()
    assert nodes["standalone-vm"].spec.provider_id.endswith("/virtualMachines/standalone-vm")
    assert sandbox.node("standalone-vm") == vm_node
    assert sandbox.nodes[pool.nodes[1].name] == pool.nodes[1]
    assert pool.scale_set.resource_id.lower().startswith(sandbox.node_resource_group_id.lower())


def test_a_node_is_found_from_its_provider_id_alone(sandbox: Sandbox) -> None:
    pool = sandbox.add_node_pool("lookup", count=1)
    # A node registered directly in the cluster, backed by the pool's scale set.
    sandbox.kube.cluster.add_node(
        "joined-later",
        vmss=(pool.scale_set.name, 0),
        subscription_id=pool.scale_set.subscription_id,
        resource_group=pool.scale_set.resource_group,
    )
    found = sandbox.node("joined-later")
    assert (found.compute.resource_id, found.instance) == (pool.scale_set.resource_id, 0)


def test_unknown_machines_are_reported_not_guessed(sandbox: Sandbox) -> None:
    sandbox.kube.cluster.add_node("elsewhere", vm="not-in-this-world")
    with pytest.raises(KeyError, match="not in the Azure world"):
        sandbox.node("elsewhere")
    # No providerID at all, like a node of a kind cluster.
    sandbox.kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kind-node"}})
    with pytest.raises(KeyError, match="no Azure providerID"):
        sandbox.node("kind-node")
    with pytest.raises(ValueError, match="at least one node"):
        sandbox.add_node_pool("empty", count=0)


def test_an_identity_on_one_pool_is_not_available_on_another(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    granted = sandbox.add_node_pool("granted", count=1)
    other = sandbox.add_node_pool("other", count=1)
    identity = sandbox.azure.world.add_managed_identity("pool-identity")
    sandbox.azure.world.assign_identities(granted.scale_set, [identity])
    clock.advance(sandbox.azure.imds_service.identity_delay)
    sandbox.kube.create(pod("on-granted", node=granted.nodes[0].name), namespace="default")
    sandbox.kube.create(pod("on-other", node=other.nodes[0].name), namespace="default")

    with sandbox.on_node(sandbox.node_of_pod("on-granted")):
        token = ManagedIdentityCredential(client_id=identity.client_id).get_token(VAULT)
    assert unverified_claims(token.token)["oid"] == identity.principal_id

    with sandbox.on_node(sandbox.node_of_pod("on-other")), pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(client_id=identity.client_id, retry_total=0).get_token(VAULT)


def test_service_account_tokens_federate_to_azure_ad(sandbox: Sandbox, tmp_path: Path) -> None:
    identity = sandbox.azure.world.add_managed_identity("federated-app")
    sandbox.federate(identity, namespace="default", service_account="orders")
    with sandbox.kube_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        for name in ("orders", "intruder"):
            core.create_namespaced_service_account("default", {"metadata": {"name": name}})
        tokens = {
            name: core.create_namespaced_service_account_token(
                name, "default", {"spec": {"audiences": [WORKLOAD_IDENTITY_AUDIENCE]}}
            ).status.token
            for name in ("orders", "intruder")
        }
    results = {}
    for name, sa_token in tokens.items():
        token_file = tmp_path / name
        token_file.write_text(sa_token)
        credential = WorkloadIdentityCredential(
            tenant_id=sandbox.azure.tenant_id,
            client_id=identity.client_id,
            token_file_path=str(token_file),
        )
        with sandbox.azure.patched_environ():
            try:
                results[name] = unverified_claims(credential.get_token(VAULT).token)["oid"]
            except ClientAuthenticationError as err:
                refused = "AADSTS700213" in str(err)
                results[name] = "refused: AADSTS700213" if refused else str(err)
    assert results == {"orders": identity.principal_id, "intruder": "refused: AADSTS700213"}


def test_every_pool_carries_the_kubelet_identity(sandbox: Sandbox) -> None:
    pool = sandbox.add_node_pool("kubelet", count=1)
    kubelet = pool.kubelet_identity
    assert kubelet == sandbox.kubelet_identity
    assert kubelet.name == "sandbox-agentpool"
    assert kubelet.resource_group == sandbox.node_resource_group
    assert kubelet.resource_id.lower() in pool.scale_set.user_assigned
    # The nodes use it from the start: IMDS serves it without a propagation window.
    with sandbox.on_node(pool.nodes[0]):
        token = ManagedIdentityCredential(client_id=kubelet.client_id).get_token(VAULT)
    assert unverified_claims(token.token)["oid"] == kubelet.principal_id
    sandbox.check_kubelet_identity()
    # Azure does not stop anyone from removing it; the sandbox notices.
    sandbox.azure.world.unassign_identities(pool.scale_set, [kubelet])
    try:
        with pytest.raises(AssertionError, match="kubelet identity was removed"):
            sandbox.check_kubelet_identity()
    finally:
        sandbox.azure.world.assign_identities(pool.scale_set, [kubelet])
    sandbox.check_kubelet_identity()


def test_one_clock_drives_both_emulators(tmp_path: Path) -> None:
    clock = ManualClock(1_900_000_000)
    with Sandbox(clock=clock) as world:
        assert world.kube.clock is clock
        assert world.azure.world.clock is clock
        identity = world.azure.world.add_managed_identity("clocked")
        world.federate(identity, namespace="default", service_account="default")
        sa_token = world.kube.service_accounts.issue_token(
            "default", "default", audiences=[WORKLOAD_IDENTITY_AUDIENCE]
        )
        assert unverified_claims(sa_token)["iat"] == 1_900_000_000
        token_file = tmp_path / "token"
        token_file.write_text(sa_token)
        credential = WorkloadIdentityCredential(
            tenant_id=world.azure.tenant_id,
            client_id=identity.client_id,
            token_file_path=str(token_file),
        )
        with world.azure.patched_environ():
            access = credential.get_token(VAULT).token
        assert unverified_claims(access)["iat"] == 1_900_000_000
        # Moving the one clock expires the service-account token on both sides.
        clock.advance(2 * 3600)
        with world.azure.patched_environ(), pytest.raises(ClientAuthenticationError):
            WorkloadIdentityCredential(
                tenant_id=world.azure.tenant_id,
                client_id=identity.client_id,
                token_file_path=str(token_file),
            ).get_token(VAULT)


async def test_async_context_manager() -> None:
    async with Sandbox() as world:
        pool = world.add_node_pool(count=1)
        assert world.imds_url(pool.nodes[0]).startswith("http://127.0.0.1:")
        assert "Sandbox(nodes=" in repr(world)


def test_the_docs_example_runs() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "testing-sandbox.md"
    (block,) = re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    exec(compile(block, str(page), "exec"), {"__name__": "docs_sandbox"})  # noqa: S102
