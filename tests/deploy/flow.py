"""The whole flow, run as deploy/'s service accounts, and what RBAC refused along the way.

:func:`run_flow` starts a sandbox, installs deploy/'s namespace and RBAC (possibly with one
permission taken away), runs the real controller and the real token proxies with kubeconfigs
of the service accounts those manifests bind, and walks the flow:

1. a user-assigned identity, a service principal (client secret in a Secret) and a federated
   identity, each with a binding and a labelled pod;
2. the controller assigns all three (records ``Assigned``, the managed identity on the scale
   set), announces it with an Event, and holds and renews its leader-election Lease;
3. each pod gets a token through its node's token proxy with unmodified
   ``ManagedIdentityCredential``;
4. the managed identity's pod is deleted: its record is finalized and deleted, and the
   identity leaves the machine.

Every request the emulator answered 403 is collected. Waits end early at the first 403 (a
refused permission is already a failed flow), so a run with a permission missing is fast.
"""

from __future__ import annotations

import base64
import copy
import gc
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import yaml
from azure.identity import ManagedIdentityCredential

from podidentity.nmi import TokenProxySettings
from podidentity.reconciler import ControllerSettings
from podidentity.testing import Sandbox
from podidentity.testing._faults import RequestRecord
from podidentity.testing._jwt import unverified_claims

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RBAC_FILES = ("rbac-mic.yaml", "rbac-nmi.yaml")
#: Only for ``PODIDENTITY_NMI_REQUIRE_SERVICE_ACCOUNT_TOKEN=true``; not in the kustomization.
PROOF_OF_POD_RBAC = "optional/nmi-token-review.yaml"
NAMESPACE = "podidentity"
MIC, NMI = "podidentity-mic", "podidentity-nmi"
GROUP = "aadpodidentity.k8s.io"
VAULT = "https://vault.azure.net"


def load(*names: str) -> list[dict[str, Any]]:
    """The YAML documents of deploy/ files, in order."""
    docs: list[dict[str, Any]] = []
    for name in names:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d)
    return docs


def _mic_env(name: str) -> str:
    (deployment,) = load("mic-deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(next(e["value"] for e in container["env"] if e["name"] == name))


#: The Lease the deployed controller is told to use (what its Role lets it write).
LEASE = _mic_env("PODIDENTITY_MIC_LEASE_NAME")

#: Fast but legitimate timings: the controller renews its Lease every 0.2 s.
CONTROLLER = ControllerSettings(
    lease_namespace=NAMESPACE,
    lease_name=LEASE,
    lease_duration=3,
    renew_deadline=2,
    retry_period=0.2,
    resync_interval=2,
    retry_max_delay=1,
)
PROXY = TokenProxySettings(pending_timeout=5.0, controller_namespace=NAMESPACE)


# -- single permissions ---------------------------------------------------------------------


@attrs.frozen(order=True)
class Permission:
    """One verb on one resource of one API group, granted by one rule of one role."""

    role: str  # "ClusterRole/podidentity-mic"
    rule: int
    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.role}:{self.group or 'core'}/{self.resource}:{self.verb}"


def _roles(docs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d.get("kind") in ("Role", "ClusterRole"))


def permissions(docs: Iterable[dict[str, Any]]) -> list[Permission]:
    """Every (group, resource, verb) every rule grants, one :class:`Permission` each."""
    found = []
    for role in _roles(docs):
        label = f"{role['kind']}/{role['metadata']['name']}"
        for index, rule in enumerate(role.get("rules") or ()):
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule["verbs"]:
                        found.append(Permission(label, index, group, resource, verb))
    return found


def without(docs: Sequence[dict[str, Any]], gone: Permission) -> list[dict[str, Any]]:
    """``docs`` with exactly ``gone`` taken away: its rule is split so every other
    (group, resource, verb) it granted stays granted."""
    out = copy.deepcopy(list(docs))
    for role in _roles(out):
        if f"{role['kind']}/{role['metadata']['name']}" != gone.role:
            continue
        rules = role["rules"]
        rule = rules[gone.rule]
        kept = []
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                verbs = [
                    v
                    for v in rule["verbs"]
                    if (group, resource, v) != (gone.group, gone.resource, gone.verb)
                ]
                if verbs:
                    kept.append(
                        {**rule, "apiGroups": [group], "resources": [resource], "verbs": verbs}
                    )
        role["rules"] = rules[: gone.rule] + kept + rules[gone.rule + 1 :]
    assert permissions(out) != permissions(docs), f"{gone} was not granted"
    return out


_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def requested(record: RequestRecord) -> tuple[str, str, str] | None:
    """(group, resource[/subresource], verb) of a resource request, as RBAC decides it."""
    match = _PATH.match(record.path)
    if match is None:
        return None
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if record.method == "GET":
        watching = re.search(r"(^|&)watch=(1|true)", record.query) is not None
        verb = "get" if match["name"] else ("watch" if watching else "list")
    else:
        verb = _VERBS.get(record.method, record.method.lower())
    return match["group"] or "", resource, verb


# -- the flow -------------------------------------------------------------------------------


class FlowFailed(AssertionError):
    """A step of the flow did not happen (or a request was refused meanwhile)."""


@attrs.define
class FlowResult:
    """What happened: the step that failed (``None`` if all did) and the refused requests."""

    failed: str | None = None
    denied: list[RequestRecord] = attrs.field(factory=list)

    @property
    def denied_permissions(self) -> set[tuple[str, str, str]]:
        """(group, resource, verb) of every 403."""
        return {p for p in map(requested, self.denied) if p is not None}

    @property
    def ok(self) -> bool:
        """The flow completed and nothing was refused."""
        return self.failed is None and not self.denied


def _denied(world: Sandbox) -> list[RequestRecord]:
    return [r for r in world.kube.requests.records if r.status == 403]


def _until(world: Sandbox, step: str, check: Callable[[], Any], within: float) -> Any:
    # The bound only turns a hang into a failure; a 403 ends the wait at once.
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if _denied(world):
            raise FlowFailed(f"{step}: a request was refused")
        if time.monotonic() > deadline:
            raise FlowFailed(f"{step}: not within {within:g} s")
        time.sleep(0.02)


def _pod(name: str, label: str, service_account: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"aadpodidbinding": label}},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "nginx:1.27"}],
        },
    }


def _identity(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def _binding(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": f"{name}-binding", "namespace": "default"},
        "spec": {"azureIdentity": name, "selector": name},
    }


def run_flow(
    rbac: Sequence[dict[str, Any]], *, within: float = 30.0, proof_of_pod: bool = False
) -> FlowResult:
    """Run the flow with ``rbac`` (deploy's RBAC documents, maybe changed) in a new sandbox.

    With ``proof_of_pod`` the token proxies require callers' service-account tokens
    (``require_service_account_token``), and each pod sends its own, bound to it.
    """
    result = FlowResult()
    with Sandbox(operation_duration=0, propagation_delay=0) as world:
        world.kube.pod_start_delay = 0
        pool = world.add_node_pool("pool", count=1)
        for doc in load("namespace.yaml") + list(rbac):
            world.kube.create(doc)
        mic = world.kube.service_account(MIC, namespace=NAMESPACE)
        nmi = world.kube.service_account(NMI, namespace=NAMESPACE)
        try:
            _walk(
                world,
                pool.scale_set.name,
                mic.kubeconfig_path,
                nmi.kubeconfig_path,
                within,
                proof_of_pod,
            )
        except FlowFailed as err:
            result.failed = str(err)
        result.denied = _denied(world)
    # Clients cancelled mid-retry (the flow stopped at a 403) may leave a socket for the
    # garbage collector; collect it here, where this module's warning filter applies, rather
    # than in whichever test runs next on this worker.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return result


def _token(
    world: Sandbox, pod: str, service_account: str, client_id: str, proof_of_pod: bool
) -> str:
    with world.as_pod(pod) as env:
        if not proof_of_pod:
            credential = ManagedIdentityCredential(client_id=client_id, retry_total=0)
            return str(credential.get_token(f"{VAULT}/.default").token)
        # What a client that proves its pod sends: the projected token for the proxy's audience.
        proof = world.kube.service_accounts.issue_token(
            "default", service_account, audiences=[PROXY.service_account_audience], pod=pod
        )
        answer = httpx.get(
            f"{env['AZURE_POD_IDENTITY_AUTHORITY_HOST']}/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": VAULT, "client_id": client_id},
            headers={"Metadata": "true", "Authorization": f"Bearer {proof}"},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


def _walk(
    world: Sandbox, scale_set: str, mic: Path, nmi: Path, within: float, proof_of_pod: bool
) -> None:
    azure, kube = world.azure.world, world.kube
    managed = azure.add_managed_identity("web-id")
    kube.create(
        _identity(
            "web", {"type": 0, "resourceID": managed.resource_id, "clientID": managed.client_id}
        )
    )
    principal = azure.add_service_principal("billing-app")
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "billing-credential", "namespace": "default"},
            "data": {"clientSecret": base64.b64encode(principal.secret.encode()).decode()},
        }
    )
    kube.create(
        _identity(
            "billing",
            {
                "type": 1,
                "clientID": principal.client_id,
                "tenantID": world.azure.tenant_id,
                "clientPassword": {"name": "billing-credential", "namespace": "default"},
            },
        )
    )
    federated = azure.add_managed_identity("reports-id")
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reports", "namespace": "default"},
        }
    )
    world.federate(federated, namespace="default", service_account="reports")
    kube.create(
        _identity(
            "reports",
            {"type": 3, "clientID": federated.client_id, "tenantID": world.azure.tenant_id},
        )
    )
    for name in ("web", "billing", "reports"):
        kube.create(_binding(name))
    kube.create(_pod("web", "web"))
    kube.create(_pod("billing", "billing"))
    kube.create(_pod("reports", "reports", service_account="reports"))

    controller = world.start_controller(CONTROLLER, kubeconfig=mic)
    settings = attrs.evolve(PROXY, require_service_account_token=proof_of_pod)
    world.start_token_proxies(settings, kubeconfig=nmi)

    def states() -> dict[str, str]:
        return {
            o["metadata"]["name"]: (o.get("status") or {}).get("status", "")
            for o in kube.list("azureassignedidentities", namespace="default")
        }

    expected = {f"{n}-default-{n}": "Assigned" for n in ("web", "billing", "reports")}
    _until(world, "all three pods assigned", lambda: states() == expected, within)

    def on_machine() -> set[str]:
        return {k.lower() for k in azure.vmss(scale_set).user_assigned}

    if managed.resource_id.lower() not in on_machine():
        raise FlowFailed("the managed identity is not on the scale set")

    def event(reason: str) -> Callable[[], bool]:
        def seen() -> bool:
            events = kube.list("events", namespace="default")
            return any(e.get("reason") == reason for e in events)

        return seen

    _until(world, "IdentityAssigned event", event("IdentityAssigned"), within)

    def lease_renewed() -> bool:
        try:
            spec = kube.get("leases", LEASE, namespace=NAMESPACE).get("spec") or {}
        except Exception:  # not there yet
            return False
        return spec.get("holderIdentity") == controller.holder_identity and spec.get(
            "renewTime"
        ) != spec.get("acquireTime")

    _until(world, "Lease held and renewed", lease_renewed, within)

    for pod, service_account, client_id, oid in (
        ("web", "default", managed.client_id, managed.principal_id),
        ("billing", "default", principal.client_id, principal.object_id),
        ("reports", "reports", federated.client_id, federated.principal_id),
    ):
        try:
            token = _token(world, pod, service_account, client_id, proof_of_pod)
        except Exception as err:
            raise FlowFailed(f"token for pod {pod}: {type(err).__name__}") from err
        if unverified_claims(token).get("oid") != oid:
            raise FlowFailed(f"pod {pod} got a token of another identity")

    kube.delete("pods", "web", namespace="default", grace_period_seconds=0)
    _until(world, "web's record removed", lambda: "web-default-web" not in states(), within)
    _until(
        world,
        "the managed identity off the scale set",
        lambda: managed.resource_id.lower() not in on_machine(),
        within,
    )
    if _denied(world):
        raise FlowFailed("a request was refused")
