"""The demo's hands: create objects, wait for the controller, and act as a pod.

Objects are created through the Kubernetes API over HTTPS with the admin kubeconfig (as
``kubectl create -f`` would), through podidentity's own JSON client on a private event loop.
Tokens are asked for *as the pod* (:meth:`~podidentity.testing.Sandbox.as_pod`): unmodified
azure-identity ``ManagedIdentityCredential`` reaching the pod's node's token proxy from the pod's
IP. Nothing here returns or prints a token or a secret value.
"""

from __future__ import annotations

import concurrent.futures
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ClientSecretCredential

from podidentity.azure import ArmClient, normalize_id
from podidentity.kube import (
    ASSIGNED_IDENTITIES,
    BINDINGS,
    IDENTITIES,
    PODS,
    ApiResource,
    KubeClient,
    load_api_client,
)
from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    Severity,
)
from podidentity.reconciler import Controller, Desired
from podidentity.testing._jwt import unverified_claims
from podidentity.testing._server import ServerThread
from podidentity.testing.sandbox import Sandbox, SandboxNode

__all__ = ["DemoCluster", "Misbehaved"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

SCOPE = "https://vault.azure.net/.default"
"""What the pod asks a token for: Key Vault, as in the seed article."""

_NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", namespaced=False)
_SERVICE_ACCOUNTS = ApiResource("", "v1", "serviceaccounts", "ServiceAccount")


class Misbehaved(Exception):
    """A step did not behave as expected; the message says what happened instead."""


def _reason(message: str) -> str:
    """The token proxy's answer inside azure-identity's message: ``code: description``.

    azure-identity wraps it as ``... Token request error: (code) description``; the
    description's first clause is enough (the rest lists client IDs). Refusals carry no token.
    """
    _, _, answer = message.partition("Token request error: ")
    answer = (answer or message).strip().splitlines()[0] if (answer or message).strip() else ""
    code, _, description = answer.partition(") ")
    if code.startswith("(") and description:
        answer = f"{code[1:]}: {description}"
    return answer.split("; ")[0]


class DemoCluster:
    """The sandbox as the demo drives it (see the module doc).

    Args:
        sandbox: a started sandbox with its controller and token proxies running.
        controller: the running controller (its decisions are read, never changed).
        timeout: the longest any wait lasts before the step fails.
    """

    def __init__(self, sandbox: Sandbox, controller: Controller, *, timeout: float) -> None:
        self.sandbox = sandbox
        self.controller = controller
        self.timeout = timeout
        self._thread = ServerThread("podidentity-demo")
        self._api: Any = None
        self._kube: KubeClient | None = None
        self._arm: ArmClient | None = None
        self._arm_credential: ClientSecretCredential | None = None
        self._arm_http: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Open the Kubernetes client, and an ARM client that may only read."""
        self._thread.start()
        self._api = self._call(load_api_client(self.sandbox.kube.kubeconfig_path))
        self._kube = KubeClient(self._api)
        self._arm = self._call(self._open_arm())

    async def _open_arm(self) -> ArmClient:
        # The demo looks at ARM as an observer with the Reader role on the node resource
        # group, not with the controller's rights: what it reads is what ARM serves.
        azure = self.sandbox.azure
        reader = azure.world.add_service_principal("podidentity-demo-reader")
        azure.world.grant_role(reader, self.sandbox.node_resource_group_id, "Reader")
        self._arm_credential = ClientSecretCredential(
            azure.tenant_id,
            reader.client_id,
            reader.secret,
            authority=azure.authority,
            **azure.client_kwargs(),
        )
        verify = ssl.create_default_context(cafile=str(azure.ca_bundle))
        self._arm_http = httpx.AsyncClient(
            proxy=azure.proxy.url, verify=verify, timeout=self.timeout
        )
        return ArmClient(self._arm_credential, http_client=self._arm_http)

    async def _close_clients(self) -> None:
        if self._arm_http is not None:
            await self._arm_http.aclose()
        if self._arm_credential is not None:
            await self._arm_credential.close()
        if self._api is not None:
            await self._api.close()

    def close(self) -> None:
        """Close the clients and their loop."""
        try:
            if self._api is not None or self._arm_http is not None:
                # Not bounded by the steps' timeout: closing must happen even after a step
                # ran out of time, and a failure here must not hide the report.
                self._thread.call(self._close_clients(), timeout=30)
        except Exception:
            logger.debug("could not close the demo's clients", exc_info=True)
        finally:
            self._api = self._kube = self._arm = None
            self._arm_credential = self._arm_http = None
            self._thread.stop()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return self._thread.call(coro, timeout=self.timeout)
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError from Python 3.11
            raise Misbehaved(
                f"no answer from the Kubernetes API within {self.timeout:g} s"
            ) from None

    @property
    def kube(self) -> KubeClient:
        """The Kubernetes client (after :meth:`start`)."""
        if self._kube is None:
            raise RuntimeError("DemoCluster.start() first")
        return self._kube

    # -- creating objects --------------------------------------------------------------------

    def apply(self, model: AzureIdentity | AzureIdentityBinding) -> None:
        """Create a podidentity object after checking it has no problems (as ``validate``)."""
        errors = [p for p in model.problems() if p.severity is Severity.ERROR]
        if errors:
            raise Misbehaved(f"{model.kind} {model.name} has problems: {errors[0]}")
        resource = IDENTITIES if isinstance(model, AzureIdentity) else BINDINGS
        self._call(self.kube.create(resource, model.to_dict(), model.namespace or "default"))

    def namespace(self, name: str) -> None:
        """Create a namespace."""
        self._call(self.kube.create(_NAMESPACES, {"metadata": {"name": name}}))

    def service_account(self, namespace: str, name: str) -> None:
        """Create a service account."""
        self._call(self.kube.create(_SERVICE_ACCOUNTS, {"metadata": {"name": name}}, namespace))

    def pod(
        self, name: str, namespace: str, *, labels: Mapping[str, str], service_account: str
    ) -> SandboxNode:
        """Create a pod and wait until it runs; returns its node (with the machine behind it)."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {
                "serviceAccountName": service_account,
                "containers": [{"name": "app", "image": "mcr.microsoft.com/azure-cli:latest"}],
            },
        }
        self._call(self.kube.create(PODS, body, namespace))
        self.sandbox.kube.wait_for_pod_running(name, namespace=namespace, timeout=self.timeout)
        return self.sandbox.node_of_pod(name, namespace)

    # -- what the controller did -------------------------------------------------------------

    def records(self, pod: str, namespace: str) -> list[AzureAssignedIdentity]:
        """The AzureAssignedIdentities that name the pod ``namespace/pod``, in any namespace."""
        listed = self._call(self.kube.list(ASSIGNED_IDENTITIES))
        found = [AzureAssignedIdentity.from_dict(obj) for obj in listed.get("items", [])]
        return [r for r in found if r.pod == pod and r.pod_namespace == namespace]

    def wait_assigned(self, pod: str, namespace: str) -> AzureAssignedIdentity:
        """Wait for the pod's AzureAssignedIdentity to reach ``Assigned``; return it."""
        seen = "no AzureAssignedIdentity"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for record in self.records(pod, namespace):
                state = record.status.state
                if state is AssignedIdentityState.ASSIGNED:
                    return record
                seen = (
                    f"AzureAssignedIdentity {record.name} in state {state.value if state else '-'}"
                )
            time.sleep(0.05)
        raise Misbehaved(f"pod {namespace}/{pod} not assigned after {self.timeout:g} s: {seen}")

    def decision(self, pod: str, namespace: str) -> tuple[Desired, ...]:
        """What the controller decided for the pod, once its informer has seen it scheduled."""
        informer = self.controller.informers["pods"]
        deadline = time.monotonic() + self.timeout
        while not (informer.get_by_name(pod, namespace) or {}).get("spec", {}).get("nodeName"):
            if time.monotonic() > deadline:
                raise Misbehaved(f"the controller never saw pod {namespace}/{pod} scheduled")
            time.sleep(0.02)
        return self.controller.snapshot.desired_for_pod(f"{namespace}/{pod}")

    def on_machine(self, node: SandboxNode, resource_id: str) -> bool:
        """Whether ARM says the VM or scale set behind ``node`` has the identity (a GET)."""
        if self._arm is None:
            raise RuntimeError("DemoCluster.start() first")
        found = self._call(self._arm.get_identities(node.compute.resource_id))
        return normalize_id(resource_id) in found.user_assigned

    # -- as the pod --------------------------------------------------------------------------

    def token_as(self, pod: str, namespace: str, **which: Any) -> Mapping[str, Any]:
        """Get a Key Vault token as the pod; return its claims (the token itself never leaves).

        Raises:
            Misbehaved: the token proxy refused.
        """
        with self.sandbox.as_pod(pod, namespace, timeout=self.timeout):
            credential = ManagedIdentityCredential(**which)
            try:
                token = credential.get_token(SCOPE).token
            except ClientAuthenticationError as err:
                raise Misbehaved(
                    f"the token proxy refused pod {namespace}/{pod}: {_reason(str(err))}"
                ) from None
            finally:
                credential.close()
        claims = unverified_claims(token)
        del token
        return claims

    def refused_as(self, pod: str, namespace: str, **which: Any) -> str:
        """Ask for a token as the pod, expecting a refusal; return the proxy's reason.

        One request (``retry_total=0``): azure-identity would otherwise retry a "not yet"
        answer for many seconds before giving up the same way.

        Raises:
            Misbehaved: a token was issued.
        """
        with self.sandbox.as_pod(pod, namespace, timeout=self.timeout):
            credential = ManagedIdentityCredential(retry_total=0, **which)
            try:
                claims = unverified_claims(credential.get_token(SCOPE).token)
            except ClientAuthenticationError as err:
                return _reason(str(err))
            finally:
                credential.close()
        raise Misbehaved(
            f"the token proxy gave pod {namespace}/{pod} a token for client ID "
            f"{claims.get('appid') or claims.get('azp')} (token not shown)"
        )

    def expect_nothing_for(self, pod: str, namespace: str, say: Callable[[str], None]) -> None:
        """The whole refusal: no decision, no record, and the pod's token request refused.

        All three are checked even when one fails, so the report shows which layers held.

        Raises:
            Misbehaved: naming every layer that did not refuse.
        """
        wrong: list[str] = []
        decided = self.decision(pod, namespace)
        if decided:
            names = ", ".join(d.identity.name for d in decided)
            wrong.append(f"the controller decided to give pod {namespace}/{pod}: {names}")
        else:
            say(f"controller: no identity for {namespace}/{pod}")
        try:
            reason = self.refused_as(pod, namespace)
        except Misbehaved as err:
            wrong.append(str(err))
        else:
            say(f"token proxy: refused ({reason})")
        records = self.records(pod, namespace)
        if records:
            names = ", ".join(f"{r.namespace}/{r.name}" for r in records)
            wrong.append(f"AzureAssignedIdentity {names} names {namespace}/{pod}")
        else:
            say(f"no AzureAssignedIdentity names {namespace}/{pod}")
        if wrong:
            raise Misbehaved("; ".join(wrong))
