"""Pure scheduler and kubelet decisions: where a pod goes and what status it gets."""

from __future__ import annotations

from typing import Any

from podidentity.testing.kube._nodes import AzureScaleSetInstance, AzureVM, node_manifest
from podidentity.testing.kube._scheduling import (
    choose_node,
    is_node_ready,
    node_internal_ip,
    pending_status,
    running_status,
    unschedulable_message,
    why_not,
)

NOW = "2024-05-01T12:00:00Z"


def node(name: str, *, ready: bool = True, **kwargs: Any) -> dict[str, Any]:
    return node_manifest(
        name, address=f"127.20.0.{len(name)}", machine=None, ready=ready, now=NOW, **kwargs
    )


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec},
    }


def test_ready_and_address_are_read_from_status() -> None:
    assert is_node_ready(node("a"))
    assert not is_node_ready(node("a", ready=False))
    assert not is_node_ready({"status": {}})
    assert node_internal_ip(node("abc")) == "127.20.0.3"
    assert node_internal_ip({}) is None


def test_the_least_loaded_fitting_node_wins_ties_by_name() -> None:
    nodes = [node("b"), node("a"), node("c")]
    assert choose_node(pod(), nodes, {})["metadata"]["name"] == "a"
    assert choose_node(pod(), nodes, {"a": 2, "b": 1, "c": 1})["metadata"]["name"] == "b"


def test_not_ready_unschedulable_and_selector_mismatch_are_skipped() -> None:
    nodes = [
        node("a", ready=False),
        node("b", unschedulable=True),
        node("c", labels={"pool": "x"}),
        node("d", labels={"pool": "y"}),
    ]
    chosen = choose_node(pod(nodeSelector={"pool": "y"}), nodes, {"d": 50})
    assert chosen is not None
    assert chosen["metadata"]["name"] == "d"
    assert choose_node(pod(nodeSelector={"pool": "z"}), nodes, {}) is None
    assert why_not(pod(), nodes[0]) is not None
    assert why_not(pod(), nodes[1]) == "node(s) were unschedulable"
    message = unschedulable_message(pod(nodeSelector={"pool": "z"}), nodes)
    assert message.startswith("0/4 nodes are available: ")
    assert "2 node(s) didn't match Pod's node affinity/selector" in message


def test_no_nodes_message() -> None:
    assert unschedulable_message(pod(), []) == "no nodes available to schedule pods"
    status = pending_status("no nodes available to schedule pods", now=NOW)
    assert status["phase"] == "Pending"
    (cond,) = status["conditions"]
    assert cond["type"] == "PodScheduled"
    assert cond["status"] == "False"
    assert cond["reason"] == "Unschedulable"


def test_running_status_has_the_kubelets_shape() -> None:
    p = pod(initContainers=[{"name": "init", "image": "alpine"}])
    status = running_status(p, pod_ip="127.10.0.1", host_ip="127.20.0.1", now=NOW)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.10.0.1"
    assert status["podIPs"] == [{"ip": "127.10.0.1"}]
    assert status["hostIP"] == "127.20.0.1"
    assert status["startTime"] == NOW
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conditions[kind] == "True"
    (app,) = status["containerStatuses"]
    assert app["name"] == "app"
    assert app["ready"] is True
    assert "running" in app["state"]
    assert app["containerID"].startswith("containerd://")
    (init,) = status["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed"


def test_azure_provider_ids_and_aks_labels() -> None:
    vm = AzureVM("vm-0", subscription_id="sub", resource_group="rg")
    assert vm.provider_id == (
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
        "virtualMachines/vm-0"
    )
    vmss = AzureScaleSetInstance(
        "aks-nodepool1-12345678-vmss", "3", subscription_id="sub", resource_group="rg"
    )
    assert vmss.provider_id == (
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
        "virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/3"
    )
    assert vmss.agent_pool == "nodepool1"
    assert AzureScaleSetInstance("custom", "0").agent_pool == "custom"
    manifest = node_manifest("n", address="127.20.0.9", machine=vmss, ready=True, now=NOW)
    labels = manifest["metadata"]["labels"]
    assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
    assert labels["kubernetes.io/hostname"] == "n"
    assert labels["kubernetes.io/os"] == "linux"
    assert manifest["spec"]["providerID"] == vmss.provider_id
    vm_labels = node_manifest("v", address="127.20.0.9", machine=vm, ready=True, now=NOW)
    assert "kubernetes.azure.com/agentpool" not in vm_labels["metadata"]["labels"]
