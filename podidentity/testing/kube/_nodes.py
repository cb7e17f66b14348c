"""Node objects as the Azure cloud provider and the kubelet register them on AKS.

Pure data: :func:`node_manifest` builds the ``v1/Node`` dict the emulator stores. The
``spec.providerID`` is what the reconciler reads to find the VM or scale set whose identities
it must change, so its two shapes are built exactly as cloud-provider-azure writes them::

    azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>
    azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachineScaleSets/<vmss>/virtualMachines/<instance>
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import attrs

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "DEFAULT_REGION",
    "DEFAULT_RESOURCE_GROUP",
    "DEFAULT_SUBSCRIPTION_ID",
    "AzureVM",
    "AzureScaleSetInstance",
    "node_manifest",
    "ready_condition",
]

DEFAULT_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
#: AKS puts agent nodes in the managed ``MC_<rg>_<cluster>_<region>`` resource group.
DEFAULT_RESOURCE_GROUP = "MC_podidentity_emulated_westeurope"
DEFAULT_REGION = "westeurope"
DEFAULT_INSTANCE_TYPE = "Standard_D2s_v3"
_KUBELET_VERSION = "v1.30.0"

# AKS names scale sets ``aks-<pool>-<8 digits>-vmss``; the pool name is what users see.
_AKS_VMSS = re.compile(r"^aks-(?P<pool>[a-z0-9]+)-\d+-vmss$")


def _compute_provider_id(subscription_id: str, resource_group: str, path: str) -> str:
    # The part both providerID shapes share; ``path`` names the machine under Microsoft.Compute.
    return (
        f"azure:///subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Compute/{path}"
    )


@attrs.frozen
class AzureVM:
    """An availability-set (plain) virtual machine that backs a node."""

    name: str
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    resource_group: str = DEFAULT_RESOURCE_GROUP

    @property
    def provider_id(self) -> str:
        """The node's ``spec.providerID``."""
        return _compute_provider_id(
            self.subscription_id, self.resource_group, f"virtualMachines/{self.name}"
        )


@attrs.frozen
class AzureScaleSetInstance:
    """One instance of a virtual machine scale set that backs a node."""

    scale_set: str
    instance_id: str
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    resource_group: str = DEFAULT_RESOURCE_GROUP

    @property
    def provider_id(self) -> str:
        """The node's ``spec.providerID``."""
        return _compute_provider_id(
            self.subscription_id,
            self.resource_group,
            f"virtualMachineScaleSets/{self.scale_set}/virtualMachines/{self.instance_id}",
        )

    @property
    def agent_pool(self) -> str:
        """The AKS agent pool name: ``aks-<pool>-NNNN-vmss`` gives ``<pool>``, else the set."""
        match = _AKS_VMSS.match(self.scale_set)
        return match["pool"] if match else self.scale_set


def ready_condition(ready: bool, *, now: str) -> dict[str, str]:
    """The node ``Ready`` condition as the kubelet posts it."""
    if ready:
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    return {
        "type": "Ready",
        "status": "False",
        "reason": "KubeletNotReady",
        "message": "container runtime network not ready: NetworkReady=false",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def _pressure(kind: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "False",
        "reason": f"KubeletHasNo{kind}" if kind != "PIDPressure" else "KubeletHasSufficientPID",
        "message": "kubelet has no pressure",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_manifest(
    name: str,
    *,
    address: str,
    machine: AzureVM | AzureScaleSetInstance | None,
    ready: bool,
    now: str,
    region: str = DEFAULT_REGION,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """The ``v1/Node`` a freshly registered AKS node has.

    Args:
        name: the node name (also its host name).
        address: its InternalIP (a loopback address in the emulator).
        machine: the VM or scale-set instance behind it; ``None`` for a node with no
            ``providerID`` (not on Azure, like a kind node).
        ready: whether the kubelet reports Ready.
        now: the RFC 3339 timestamp for the conditions.
        region: ``topology.kubernetes.io/region``.
        instance_type: ``node.kubernetes.io/instance-type`` (the VM size).
        labels: extra labels, applied last (they may override the defaults).
        unschedulable: ``spec.unschedulable`` (a cordoned node).
    """
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": instance_type,
        "beta.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": "0",
        "failure-domain.beta.kubernetes.io/region": region,
        "kubernetes.azure.com/role": "agent",
    }
    if isinstance(machine, AzureScaleSetInstance):
        all_labels["kubernetes.azure.com/agentpool"] = machine.agent_pool
        all_labels["agentpool"] = machine.agent_pool
    all_labels.update(labels or {})
    spec: dict[str, Any] = {}
    if machine is not None:
        spec["providerID"] = machine.provider_id
    if unschedulable:
        spec["unschedulable"] = True
    capacity = {
        "cpu": "2",
        "memory": "8144036Ki",
        "pods": "110",
        "ephemeral-storage": "129886128Ki",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "capacity": capacity,
            "allocatable": {**capacity, "cpu": "1900m", "memory": "5758116Ki"},
            "conditions": [
                *(
                    _pressure(kind, now)
                    for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
                ),
                ready_condition(ready, now=now),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.uuid4()),
                "containerRuntimeVersion": "containerd://1.7.15-1",
                "kernelVersion": "5.15.0-1064-azure",
                "kubeProxyVersion": _KUBELET_VERSION,
                "kubeletVersion": _KUBELET_VERSION,
                "machineID": uuid.uuid4().hex,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.4 LTS",
                "systemUUID": str(uuid.uuid4()),
            },
        },
    }
