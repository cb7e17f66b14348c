"""The emulated cluster runs pods: scheduling, pod IPs, nodes on Azure, service accounts.

Everything goes through the official clients over HTTP, except node registration, which is
the kubelet's job and has a Python helper.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator
from podidentity.testing.kube._cluster import Cluster
from tests.testing.kube.aio_client import aio_api_client


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """An emulator with the cluster and token plug-ins (the default)."""
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture
def cluster(kube: KubeEmulator) -> Cluster:
    return kube.cluster


@pytest.fixture
def core(kube: KubeEmulator) -> Iterator[kubernetes.client.CoreV1Api]:
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    yield kubernetes.client.CoreV1Api(client)
    client.close()


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }


def condition(obj: Any, kind: str) -> Any:
    return next(c for c in obj.status.conditions if c.type == kind)


def running(kube: KubeEmulator, core: kubernetes.client.CoreV1Api, name: str) -> Any:
    """The pod once the scheduler and the kubelet have started it, read through the client."""
    kube.wait_for_pod_running(name)
    return core.read_namespaced_pod(name, "default")


def unschedulable(pod: dict[str, Any] | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions)


# --- control-plane basics -------------------------------------------------------------------


def test_system_namespaces_have_default_service_accounts(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= namespaces
    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert core.read_namespaced_service_account("default", namespace).metadata.uid


def test_a_new_namespace_gets_a_default_service_account(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    kube.settle()
    assert core.read_namespaced_service_account("default", "team-a").metadata.name == "default"
    core.delete_namespaced_service_account("default", "team-a")
    kube.settle()
    assert core.read_namespaced_service_account("default", "team-a").metadata.name == "default"


def test_a_pod_right_after_its_namespace_does_not_race_the_controller(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    core.create_namespace({"metadata": {"name": "fresh"}})
    created = core.create_namespaced_pod("fresh", pod("p"))
    assert created.spec.service_account_name == "default"
    assert created.status.phase == "Pending"
    kube.wait_for_pod_running("p", namespace="fresh")


def test_pods_run_as_default_unless_they_name_a_service_account(
    cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    assert core.create_namespaced_pod("default", pod("a")).spec.service_account_name == "default"
    core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    named = core.create_namespaced_pod("default", pod("b", serviceAccountName="robot"))
    assert named.spec.service_account_name == "robot"
    assert named.spec.service_account == "robot"


def test_a_pod_naming_a_missing_service_account_is_forbidden(
    cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod("p", serviceAccountName="ghost"))
    assert caught.value.status == 403
    body = json.loads(caught.value.body)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods "p" is forbidden: error looking up service account default/ghost: '
        'serviceaccount "ghost" not found'
    )
    assert core.list_namespaced_pod("default").items == []
    assert len(cluster.pod_addresses) == 0


# --- nodes ----------------------------------------------------------------------------------


def test_nodes_carry_azure_provider_ids_addresses_and_labels(
    cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("vm-node", vm="vm-0", subscription_id="sub", resource_group="rg")
    cluster.add_node(
        "aks-nodepool1-12345678-vmss000003",
        vmss=("aks-nodepool1-12345678-vmss", 3),
        subscription_id="sub",
        resource_group="rg",
        region="eastus",
    )
    vm = core.read_node("vm-node")
    assert vm.spec.provider_id == (
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
        "virtualMachines/vm-0"
    )
    vmss = core.read_node("aks-nodepool1-12345678-vmss000003")
    assert vmss.spec.provider_id == (
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
        "virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/3"
    )
    labels = vmss.metadata.labels
    assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
    assert labels["topology.kubernetes.io/region"] == "eastus"
    assert labels["kubernetes.io/hostname"] == "aks-nodepool1-12345678-vmss000003"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["node.kubernetes.io/instance-type"]
    addresses = set()
    for node in (vm, vmss):
        (internal,) = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert ipaddress.ip_address(internal) in ipaddress.ip_network("127.20.0.0/16")
        addresses.add(internal)
        assert condition(node, "Ready").status == "True"
        assert node.status.capacity["pods"] == "110"
    assert len(addresses) == 2


def test_a_node_registered_through_the_api_gets_a_kubelet_status(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_node({"metadata": {"name": "raw"}})
    node = core.read_node("raw")
    assert condition(node, "Ready").status == "True"
    assert node.status.addresses[0].type == "InternalIP"
    core.create_namespaced_pod("default", pod("p"))
    assert running(kube, core, "p").spec.node_name == "raw"


def test_set_node_ready(cluster: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    cluster.add_node("n1")
    cluster.set_node_ready("n1", False)
    assert condition(core.read_node("n1"), "Ready").status == "False"
    cluster.set_node_ready("n1", True)
    assert condition(core.read_node("n1"), "Ready").status == "True"


# --- scheduling and the kubelet -------------------------------------------------------------


def test_pods_are_spread_over_ready_nodes_with_unique_loopback_ips(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    nodes = {n: cluster.add_node(n) for n in ("n1", "n2", "n3")}
    node_ips = {
        name: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        for name, n in nodes.items()
    }
    for i in range(9):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    created = [running(kube, core, f"p{i}") for i in range(9)]
    per_node: dict[str, int] = {}
    ips = set()
    for p in created:
        assert p.status.phase == "Running"
        ip = ipaddress.ip_address(p.status.pod_ip)
        assert ip in ipaddress.ip_network("127.0.0.0/8")
        assert str(ip) != "127.0.0.1"
        assert [i.ip for i in p.status.pod_ips] == [p.status.pod_ip]
        assert p.status.host_ip == node_ips[p.spec.node_name]
        assert p.status.start_time is not None
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert condition(p, kind).status == "True"
        (status,) = p.status.container_statuses
        assert status.ready
        assert status.state.running is not None
        per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        ips.add(p.status.pod_ip)
    assert len(ips) == 9
    assert per_node == {"n1": 3, "n2": 3, "n3": 3}
    # What a list returns agrees with what each pod says.
    listed = {p.metadata.name: p.status.pod_ip for p in core.list_namespaced_pod("default").items}
    assert listed == {p.metadata.name: p.status.pod_ip for p in created}


def test_pods_wait_for_a_ready_node(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    created = core.create_namespaced_pod("default", pod("early"))
    assert created.status.phase == "Pending"
    kube.wait_for("pods", "early", unschedulable, namespace="default")
    waiting = core.read_namespaced_pod("early", "default")
    assert waiting.status.pod_ip is None
    scheduled = condition(waiting, "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message == "no nodes available to schedule pods"

    cluster.add_node("sick", ready=False)
    kube.settle()
    still = core.read_namespaced_pod("early", "default")
    assert still.status.phase == "Pending"
    assert still.spec.node_name is None

    cluster.set_node_ready("sick", True)
    started = running(kube, core, "early")
    assert started.spec.node_name == "sick"
    assert ipaddress.ip_address(started.status.pod_ip).is_loopback


def test_a_pod_bound_by_name_goes_to_its_node_even_if_not_ready(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("ready")
    cluster.add_node("not-ready", ready=False)
    bound = core.create_namespaced_pod("default", pod("p", nodeName="not-ready"))
    assert bound.spec.node_name == "not-ready"
    assert running(kube, core, "p").spec.node_name == "not-ready"

    # Bound to a node that does not exist yet: it waits for that node's kubelet.
    later = core.create_namespaced_pod("default", pod("q", nodeName="later"))
    assert later.status.phase == "Pending"
    kube.settle()
    assert core.read_namespaced_pod("q", "default").status.host_ip is None
    cluster.add_node("later", ready=False)
    assert running(kube, core, "q").spec.node_name == "later"


def test_node_selectors_and_cordoned_nodes(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("gpu", labels={"accelerator": "nvidia"})
    cluster.add_node("plain")
    cluster.add_node("cordoned", unschedulable=True, labels={"accelerator": "tpu"})
    for i in range(3):
        core.create_namespaced_pod("default", pod(f"g{i}", nodeSelector={"accelerator": "nvidia"}))
        assert running(kube, core, f"g{i}").spec.node_name == "gpu"
    core.create_namespaced_pod("default", pod("t", nodeSelector={"accelerator": "tpu"}))
    kube.wait_for("pods", "t", unschedulable, namespace="default")
    tpu = core.read_namespaced_pod("t", "default")
    assert tpu.status.phase == "Pending"
    message = condition(tpu, "PodScheduled").message
    assert message.startswith("0/3 nodes are available:")
    assert "1 node(s) were unschedulable" in message
    assert "2 node(s) didn't match Pod's node affinity/selector" in message


def test_host_network_pods_share_their_nodes_address(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    node = cluster.add_node("n1")
    node_ip = node["status"]["addresses"][0]["address"]
    core.create_namespaced_pod("default", pod("nmi", hostNetwork=True))
    p = running(kube, core, "nmi")
    assert p.status.pod_ip == p.status.host_ip == node_ip
    assert len(cluster.pod_addresses) == 0


def test_a_deleted_pods_ip_goes_to_the_next_pod(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    core.create_namespaced_pod("default", pod("p"))
    ip = running(kube, core, "p").status.pod_ip
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("p", "default")
    assert caught.value.status == 404
    kube.settle()
    assert ip not in cluster.pod_addresses
    # The lowest free address goes to the next pod, as on a busy node: the same IP, another pod.
    core.create_namespaced_pod("default", pod("successor"))
    assert running(kube, core, "successor").status.pod_ip == ip
    assert cluster.pod_addresses.owner_of(ip) == "default/successor"


def test_ips_are_not_shared_while_pods_exist(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    for round_ in range(3):
        for i in range(5):
            core.create_namespaced_pod("default", pod(f"p{i}"))
        for i in range(5):
            kube.wait_for_pod_running(f"p{i}")
        ips = [p.status.pod_ip for p in core.list_namespaced_pod("default").items]
        assert len(set(ips)) == 5, round_
        for i in range(5):
            core.delete_namespaced_pod(f"p{i}", "default", grace_period_seconds=0)
        kube.settle()
    assert len(cluster.pod_addresses) == 0


def test_a_deleted_node_takes_its_pods_and_address_with_it(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    core.create_namespaced_pod("default", pod("p"))
    kube.wait_for_pod_running("p")
    core.delete_node("n1")
    kube.settle()
    assert core.list_namespaced_pod("default").items == []
    assert len(cluster.node_addresses) == 0
    assert len(cluster.pod_addresses) == 0


def test_a_socket_bound_to_a_pod_ip_is_seen_as_that_pod(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    core.create_namespaced_pod("default", pod("caller"))
    pod_ip = running(kube, core, "caller").status.pod_ip
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), source_address=(pod_ip, 0)):
            conn, (peer, _) = server.accept()
            conn.close()
    by_ip = [
        p.metadata.name
        for p in core.list_namespaced_pod("default").items
        if p.status.pod_ip == peer
    ]
    assert by_ip == ["caller"]


async def test_the_aio_client_sees_running_pods() -> None:
    from kubernetes.aio import client as aclient

    async with KubeEmulator() as kube:
        kube.cluster.add_node("n1")
        async with aio_api_client(kube) as api:
            v1 = aclient.CoreV1Api(api)
            created = await v1.create_namespaced_pod("default", pod("p"))
            assert created.status.phase == "Pending"
            started = await kube.wait_for_pod_running_async("p")
            read = await v1.read_namespaced_pod("p", "default")
            assert read.status.phase == "Running"
            assert read.status.pod_ip == started["status"]["podIP"]
            assert read.spec.node_name == "n1"


def test_a_pod_created_with_a_status_keeps_it_and_its_address_is_held(
    kube: KubeEmulator, cluster: Cluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.add_node("n1")
    manifest = pod("preset", nodeName="n1")
    manifest["status"] = {"phase": "Running", "podIP": "127.10.0.1", "hostIP": "127.20.0.1"}
    kube.create({**manifest, "metadata": {"name": "preset", "namespace": "default"}})
    kept = core.read_namespaced_pod("preset", "default")
    assert (kept.status.phase, kept.status.pod_ip) == ("Running", "127.10.0.1")
    assert cluster.pod_addresses.owner_of("127.10.0.1") == "default/preset"
    core.create_namespaced_pod("default", pod("next"))
    assert running(kube, core, "next").status.pod_ip != "127.10.0.1"
