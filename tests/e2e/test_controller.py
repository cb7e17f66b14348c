"""The controller in the sandbox: the seed walkthrough, its glitches, and faults."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from podidentity.reconciler import Controller, ControllerSettings
from podidentity.testing import Sandbox
from podidentity.testing.azure import ManagedIdentity
from tests.waiting import eventually

GROUP, VERSION = "aadpodidentity.k8s.io", "v1"
FAST = ControllerSettings(
    lease_duration=3, renew_deadline=2, retry_period=0.2, resync_interval=2, retry_max_delay=2
)


_BASELINE: weakref.WeakKeyDictionary[Sandbox, dict[str, set[str]]] = weakref.WeakKeyDictionary()


def remember_baseline(world: Sandbox) -> None:
    """Record the identities on every scale set before any controller runs (the kubelet
    identity, for one): those are never podidentity's to remove."""
    _BASELINE[world] = {
        node.compute.name: {
            "/" + k.strip("/") for k in world.azure.world.vmss(node.compute.name).user_assigned
        }
        for node in world.nodes.values()
    }


# ARM identity writes stay long-running operations the controller must poll, but take the
# shortest time a poll can observe (Azure's Retry-After is whole seconds, at least 1): the
# sandbox's default 2 s doubles every assignment's wait and no test here is about its length.
# IMDS is not read here, so its propagation delay plays no part.
OPERATION_DURATION = 1.0


@pytest.fixture
def world() -> Iterator[Sandbox]:
    with Sandbox(operation_duration=OPERATION_DURATION) as sandbox:
        sandbox.add_node_pool("pool", count=2)
        remember_baseline(sandbox)
        yield sandbox


def identity_manifest(
    name: str, identity: ManagedIdentity, namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AzureIdentity",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": 0, "resourceID": identity.resource_id, "clientID": identity.client_id},
    }


def binding_manifest(
    name: str, identity: str, selector: str, namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"azureIdentity": identity, "selector": selector, **spec},
    }


def pod_manifest(
    name: str, namespace: str = "default", sa: str | None = None, **labels: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    if sa:
        spec["serviceAccountName"] = sa
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def assigned(world: Sandbox, namespace: str | None = None) -> dict[str, dict[str, Any]]:
    items = world.kube.list("azureassignedidentities", namespace=namespace)
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in items}


def states(world: Sandbox) -> dict[str, str]:
    return {k: (v.get("status") or {}).get("status", "") for k, v in assigned(world).items()}


def on_scale_set(world: Sandbox, pool: str) -> set[str]:
    return set(world.azure.world.vmss(pool).user_assigned)


def check_invariants(world: Sandbox, controller: Controller) -> None:
    """ARM agrees with the desired state: nothing missing, nothing left that no pod needs."""
    desired = controller.snapshot.desired()
    for d in desired.values():
        if d.needs_machine:
            node = world.node(d.node)
            assert d.resource_id.lower() in {
                "/" + k.strip("/") for k in world.azure.world.vmss(node.compute.name).user_assigned
            }
    for node in world.nodes.values():
        machine = node.compute
        needed = {
            d.resource_id
            for d in desired.values()
            if world.node(d.node).compute.name == machine.name
        }
        live = {"/" + k.strip("/") for k in world.azure.world.vmss(machine.name).user_assigned}
        before = _BASELINE.get(world, {}).get(machine.name, set())
        assert before <= live, f"removed from {machine.name}: {before - live}"
        assert live <= needed | before, f"left on {machine.name}: {live - needed - before}"
    assert set(states(world)) == {f"{d.namespace}/{d.name}" for d in desired.values()}
    assert set(states(world).values()) <= {"Assigned"}


def setup_seed(world: Sandbox) -> ManagedIdentity:
    identity = world.azure.world.add_managed_identity("web-id")
    world.kube.create(identity_manifest("web-id", identity))
    world.kube.create(binding_manifest("web-binding", "web-id", "web"))
    return identity


def test_seed_walkthrough_and_its_glitches(world: Sandbox) -> None:
    identity = setup_seed(world)
    world.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    world.kube.create(pod_manifest("web", app="x", aadpodidbinding="web"))
    world.kube.create(pod_manifest("intruder", namespace="other", aadpodidbinding="web"))
    controller = world.start_controller(FAST)
    asyncio.run(asyncio.wait_for(controller.wait_synced(), 60))
    pool = next(iter(world.nodes.values())).compute.name

    def done() -> bool:
        return states(world) == {"default/web-default-web-id": "Assigned"}

    eventually(done)
    assert identity.resource_id.lower() in on_scale_set(world, pool)
    record = assigned(world)["default/web-default-web-id"]
    assert (
        record["metadata"]["labels"]["nodename"]
        == world.kube.get("pods", "web", namespace="default")["spec"]["nodeName"]
    )
    finalizer = "azureassignedidentity.finalizers.aadpodidentity.k8s.io"
    assert finalizer in record["metadata"]["finalizers"]
    # the pod in another namespace got nothing
    assert assigned(world, "other") == {}
    check_invariants(world, controller)

    # A service-account allow-list that does not name the pod's account: the pod loses it.
    world.kube.patch(
        "azureidentitybindings",
        "web-binding",
        {"spec": {"serviceAccountNames": ["robot"]}},
        namespace="default",
    )
    eventually(lambda: assigned(world) == {})
    eventually(lambda: identity.resource_id.lower() not in on_scale_set(world, pool))
    # A new pod with the label but an unlisted service account gets nothing either, while
    # one running as the listed account does.
    world.kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
        namespace="default",
    )
    world.kube.create(pod_manifest("unlisted", aadpodidbinding="web"))
    world.kube.create(pod_manifest("listed", sa="robot", aadpodidbinding="web"))
    eventually(lambda: states(world) == {"default/listed-default-web-id": "Assigned"})
    assert "default/unlisted-default-web-id" not in assigned(world)
    check_invariants(world, controller)


async def test_embedded_in_asyncio_with_probes(world: Sandbox) -> None:
    import httpx

    from podidentity.kube import load_api_client
    from podidentity.reconciler import probe_app

    setup_seed(world)
    api = await load_api_client(world.kube.kubeconfig_path)
    settings = ControllerSettings(mode="managed", leader_election=False, resync_interval=1)
    async with api, Controller(api, settings=settings) as controller:
        probes = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=probe_app(controller)), base_url="http://probe"
        )
        await asyncio.wait_for(controller.wait_synced(), 60)
        assert (await probes.get("/readyz")).status_code == 200
        assert (await probes.get("/healthz")).status_code == 200
        assert controller.is_leader
        await asyncio.to_thread(world.kube.create, pod_manifest("a", aadpodidbinding="web"))
        for _ in range(3000):
            if states(world) == {"default/a-default-web-id": "Assigned"}:
                break
            await asyncio.sleep(0.02)
        assert states(world) == {"default/a-default-web-id": "Assigned"}
        # The controller's own cache may see its status write a moment after the server.
        for _ in range(3000):
            metrics = (await probes.get("/metrics")).text
            if 'podidentity_assignments{status="Assigned"} 1.0' in metrics:
                break
            await asyncio.sleep(0.02)
        assert 'podidentity_assignments{status="Assigned"} 1.0' in metrics
        assert "podidentity_reconcile_duration_seconds_count" in metrics
        assert (await probes.get("/nope")).status_code == 404
    assert not controller.healthy
    assert (await probes.get("/healthz")).status_code == 503
    await probes.aclose()
