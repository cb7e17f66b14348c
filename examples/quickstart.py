"""The pod identity flow, end to end, in the local test world.

Starts the Kubernetes and Azure emulators, applies an AzureIdentity and an
AzureIdentityBinding with the official Kubernetes client, decides which pods the binding
grants (the pure matching the reconciler builds on), assigns the identity to the node's scale
set through ARM (a long-running operation, polled as azure-mgmt clients poll it), then gets a
token from that node's IMDS and reads a Key Vault secret with it, the way a pod will through
the token proxy. An intruder pod that copies the binding's label but runs as another service
account gets nothing.

The emulators run on a manual clock shared by both sides: where a real controller would sleep
for Retry-After or for IMDS to catch up, the demo moves the clock instead.

Everything runs on 127.0.0.1 through the real clients: kubernetes, azure-identity,
azure-keyvault-secrets and httpx. Run: python3 examples/quickstart.py
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
import kubernetes
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    load_yaml,
    parse,
)
from podidentity.testing import ManualClock, Sandbox

GROUP, VERSION = "aadpodidentity.k8s.io", "v1"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def manifests(resource_id: str, client_id: str) -> str:
    return f"""
apiVersion: {GROUP}/{VERSION}
kind: AzureIdentity
metadata: {{name: orders-api, namespace: shop}}
spec:
  type: 0
  resourceID: {resource_id}
  clientID: {client_id}
---
apiVersion: {GROUP}/{VERSION}
kind: AzureIdentityBinding
metadata: {{name: orders-api-binding, namespace: shop}}
spec:
  azureIdentity: orders-api
  selector: orders-api
  serviceAccountNames: [orders]
"""


def pod(name: str, service_account: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"aadpodidbinding": "orders-api"}},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "example.com/orders:1.0"}],
        },
    }


def main() -> int:
    clock = ManualClock()
    with Sandbox(clock=clock) as sandbox:
        kube, azure = sandbox.kube, sandbox.azure
        step(f"Kubernetes API emulator at {kube.url}; Azure emulator (tenant {azure.tenant_id})")

        # The Azure side: the controller's service principal, the identity the pods should
        # run as, and a vault only that identity may read.
        mic = azure.world.add_service_principal("podidentity-mic")
        identity = azure.world.add_managed_identity("orders-api", resource_group="identities")
        # The roles aad-pod-identity's docs ask for: the controller may change the node
        # resource group's machines, and may assign this identity (and no other).
        azure.world.grant_role(mic, sandbox.node_resource_group_id, "Virtual Machine Contributor")
        azure.world.grant_role(mic, identity, "Managed Identity Operator")
        vault_url = azure.keyvault.create_vault("orders-vault")
        azure.keyvault.set_secret("orders-vault", "db-password", "correct-horse-battery")
        azure.keyvault.grant("orders-vault", identity.principal_id, secrets=["get"])

        # An AKS-style node pool: a scale set, and one Kubernetes node per instance whose
        # providerID names it.
        sandbox.add_node_pool("nodepool1", count=2)
        api = sandbox.kube_client()
        core = kubernetes.client.CoreV1Api(api)
        custom = kubernetes.client.CustomObjectsApi(api)

        step("Applying the identity and its binding (validated by the models first)")
        core.create_namespace({"metadata": {"name": "shop"}})
        for obj in load_yaml(manifests(identity.resource_id, identity.client_id)):
            assert not isinstance(obj, dict)
            for problem in obj.problems():
                print(f"    problem: {problem}")
            custom.create_namespaced_custom_object(
                GROUP, VERSION, obj.namespace or "shop", obj.plural, obj.to_dict()
            )
            print(f"    created {obj.kind} shop/{obj.name}")

        core.create_namespaced_service_account("shop", {"metadata": {"name": "orders"}})
        core.create_namespaced_service_account("shop", {"metadata": {"name": "intruder"}})
        core.create_namespaced_pod("shop", pod("orders-7d4f9", "orders"))
        core.create_namespaced_pod("shop", pod("copycat", "intruder"))
        # Pods are created Pending; the scheduler binds them and the kubelet starts them.
        for name in ("orders-7d4f9", "copycat"):
            kube.wait_for_pod_running(name, namespace="shop")
        for p in core.list_namespaced_pod("shop").items:
            where = f"{p.status.phase} on {p.spec.node_name}, IP {p.status.pod_ip}"
            print(f"    pod {p.metadata.name}: {where}")

        step("Deciding which pods the binding grants (label AND service account)")
        identities = {
            o["metadata"]["name"]: parse(o)
            for o in custom.list_namespaced_custom_object(
                GROUP, VERSION, "shop", "azureidentities"
            )["items"]
        }
        bindings = [
            parse(o)
            for o in custom.list_namespaced_custom_object(
                GROUP, VERSION, "shop", "azureidentitybindings"
            )["items"]
        ]
        granted = []
        for p in core.list_namespaced_pod("shop").items:
            for binding in bindings:
                assert isinstance(binding, AzureIdentityBinding)
                ok = binding.matches(
                    p.metadata.labels or {}, service_account=p.spec.service_account_name
                )
                verdict = "granted" if ok else "refused"
                who = f"{p.metadata.name} (service account {p.spec.service_account_name})"
                print(f"    {who}: {verdict}")
                if ok:
                    granted.append((p, binding, identities[binding.azure_identity]))

        step("Assigning the identity to the node's scale set through ARM")
        (granted_pod, binding, azure_identity), *_ = granted
        assert isinstance(azure_identity, AzureIdentity)
        node = sandbox.node(granted_pod.spec.node_name)
        scale_set = node.compute
        with azure.patched_environ():
            credential = ClientSecretCredential(azure.tenant_id, mic.client_id, mic.secret)
            arm_token = credential.get_token("https://management.azure.com/.default").token
            response = httpx.patch(
                f"https://management.azure.com{scale_set.resource_id}",
                params={"api-version": "2023-03-01"},
                headers={"Authorization": f"Bearer {arm_token}"},
                json={
                    "identity": {
                        "type": "UserAssigned",
                        "userAssignedIdentities": {identity.resource_id: {}},
                    }
                },
            )
            response.raise_for_status()
            body = response.json()
            print(
                f"    {scale_set.name}: identity type {body['identity']['type']},"
                f" {body['properties']['provisioningState']}"
            )
            # ARM writes are long-running: poll Azure-AsyncOperation, waiting Retry-After.
            status_url = response.headers["Azure-AsyncOperation"]
            retry_after = response.headers.get("Retry-After", "1")
            status = "InProgress"
            while status == "InProgress":
                clock.advance(float(retry_after))  # a real controller sleeps here
                poll = httpx.get(status_url, headers={"Authorization": f"Bearer {arm_token}"})
                poll.raise_for_status()
                status = poll.json()["status"]
                retry_after = poll.headers.get("Retry-After", "1")
            print(f"    operation {status}")
            if status != "Succeeded":
                raise SystemExit(f"the identity write ended {status}")
        # IMDS on the node learns about the identity a few seconds after the operation.
        clock.advance(azure.imds_service.identity_delay)
        assigned = AzureAssignedIdentity.create(
            identity=azure_identity,
            binding=binding,
            pod=granted_pod.metadata.name,
            pod_namespace="shop",
            node_name=node.name,
        )
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "shop", "azureassignedidentities", assigned.to_dict()
        )
        # The status is a subresource: written on its own, as the controller does.
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "shop",
            "azureassignedidentities",
            assigned.name,
            {"status": {"status": AssignedIdentityState.ASSIGNED.value}},
        )
        print(f"    recorded AzureAssignedIdentity shop/{assigned.name}")

        step(f"Reading Key Vault with a token from {node.name}'s IMDS")
        with sandbox.on_node(node):
            secrets = SecretClient(
                vault_url, ManagedIdentityCredential(client_id=identity.client_id)
            )
            value = secrets.get_secret("db-password").value or ""
        # Never print a secret value: its length proves the read.
        print(f"    read secret db-password ({len(value)} characters; value not shown)")
        api.close()
    step("Done: nothing left the machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
