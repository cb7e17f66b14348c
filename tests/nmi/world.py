"""A sandbox with token proxies, and the objects the reconciler would write, for NMI tests.

The reconciler's job is emulated by hand: put the managed identity on the node's scale set in
the Azure world (its ARM PATCH) and write the ``AzureAssignedIdentity`` record in state
``Assigned``, labelled with the node, through the official Kubernetes client.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import attrs
import kubernetes

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
from podidentity.testing import Sandbox
from podidentity.testing.azure import ManagedIdentity, ServicePrincipal

GROUP, VERSION = "aadpodidentity.k8s.io", "v1"
VAULT = "https://vault.azure.net"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@attrs.define
class NmiWorld:
    sandbox: Sandbox
    api: kubernetes.client.ApiClient

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def namespace(self, name: str) -> str:
        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except kubernetes.client.ApiException as err:
            if err.status != 409:
                raise
        return name

    def pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        selector: str | None = None,
        node: str | None = None,
        service_account: str = "default",
        host_network: bool = False,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_labels = dict(labels or {})
        if selector is not None:
            all_labels["aadpodidbinding"] = selector
        spec: dict[str, Any] = {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "example.com/app:1"}],
        }
        if node:
            spec["nodeName"] = node
        if host_network:
            spec["hostNetwork"] = True
        if service_account != "default":
            try:
                self.core.create_namespaced_service_account(
                    namespace, {"metadata": {"name": service_account}}
                )
            except kubernetes.client.ApiException as err:
                if err.status != 409:
                    raise
        self.core.create_namespaced_pod(
            namespace, {"metadata": {"name": name, "labels": all_labels}, "spec": spec}
        )
        return self.running(name, namespace)

    def running(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.sandbox._running_pod(name, namespace, 30.0)

    # -- identities as AzureIdentity models --------------------------------------------------

    def msi(
        self, name: str, *, namespace: str = "default", on_node: str | None = None
    ) -> tuple[ManagedIdentity, AzureIdentity]:
        managed = self.sandbox.azure.world.add_managed_identity(unique(name))
        if on_node is not None:
            self.put_on_node(managed, on_node)
        model = AzureIdentity(
            metadata=ObjectMeta(name=name, namespace=namespace),
            type=IdentityType.USER_ASSIGNED_MSI,
            resource_id=managed.resource_id,
            client_id=managed.client_id,
        )
        return managed, model

    def put_on_node(self, managed: ManagedIdentity, node: str) -> None:
        """What the reconciler's ARM PATCH does: the identity goes on the node's machine.

        The assignment is dated one propagation window back, so IMDS serves it at once: these
        tests are about the proxy, not about waiting out IMDS's lag (tests/azure covers that).
        """
        azure = self.sandbox.azure
        azure.world.assign_identities(
            self.sandbox.node(node).compute,
            [managed],
            assigned_at=azure.world.clock() - azure.imds_service.identity_delay,
        )

    def service_principal(
        self, name: str, *, namespace: str = "default", certificate: bool = False
    ) -> tuple[ServicePrincipal, AzureIdentity]:
        sp = self.sandbox.azure.world.add_service_principal(
            unique(name), with_secret=not certificate, with_certificate=certificate
        )
        secret_name = f"{name}-credential"
        if certificate:
            data = {"certificate": sp.certificate.pkcs12(b"pfx-pass"), "password": b"pfx-pass"}
        else:
            data = {"clientSecret": sp.secret.encode()}
        self.core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": secret_name},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            },
        )
        model = AzureIdentity(
            metadata=ObjectMeta(name=name, namespace=namespace),
            type=IdentityType.SERVICE_PRINCIPAL_CERTIFICATE
            if certificate
            else IdentityType.SERVICE_PRINCIPAL,
            client_id=sp.client_id,
            tenant_id=self.sandbox.azure.tenant_id,
            client_password=SecretReference(name=secret_name, namespace=namespace),
        )
        return sp, model

    def federated(
        self, name: str, *, namespace: str = "default", service_account: str = "default"
    ) -> tuple[ManagedIdentity, AzureIdentity]:
        managed = self.sandbox.azure.world.add_managed_identity(unique(name))
        self.sandbox.federate(managed, namespace=namespace, service_account=service_account)
        model = AzureIdentity(
            metadata=ObjectMeta(name=name, namespace=namespace),
            type=IdentityType.FEDERATED_WORKLOAD_IDENTITY,
            client_id=managed.client_id,
            tenant_id=self.sandbox.azure.tenant_id,
        )
        return managed, model

    # -- what the reconciler writes ----------------------------------------------------------

    def assign(
        self,
        pod: dict[str, Any],
        identity: AzureIdentity,
        *,
        selector: str | None = None,
        service_accounts: list[str] | None = None,
        state: AssignedIdentityState = AssignedIdentityState.ASSIGNED,
        binding_namespace: str | None = None,
    ) -> dict[str, Any]:
        meta = pod["metadata"]
        binding = AzureIdentityBinding(
            metadata=ObjectMeta(
                name=f"{identity.name}-binding",
                namespace=binding_namespace or identity.namespace,
            ),
            azure_identity=identity.name,
            selector=selector or meta.get("labels", {}).get("aadpodidbinding", identity.name),
            service_account_names=service_accounts,
        )
        record = AzureAssignedIdentity.create(
            identity=identity,
            binding=binding,
            pod=meta["name"],
            pod_namespace=meta["namespace"],
            node_name=pod["spec"]["nodeName"],
        )
        record = attrs.evolve(record, status=AssignedIdentityStatus(state=state))
        body = record.to_dict()
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], AzureAssignedIdentity.plural, body
        )
        # The status is a subresource: the create drops it, the reconciler writes it after.
        return dict(
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                meta["namespace"],
                AzureAssignedIdentity.plural,
                created["metadata"]["name"],
                {"status": body.get("status", {})},
            )
        )

    def set_state(self, record: dict[str, Any], state: AssignedIdentityState) -> None:
        meta = record["metadata"]
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            meta["namespace"],
            AzureAssignedIdentity.plural,
            meta["name"],
            {"status": {"status": state.value}},
        )
