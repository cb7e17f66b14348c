"""The demo's steps: the seed article's walkthrough, then its four glitches, each refused.

Each step is a method of :class:`Scenario` that returns a short outcome, says what it sees
through ``say`` as it goes, and raises :class:`~podidentity.testing.demo._cluster.Misbehaved`
when something does not behave as expected. :data:`STEPS` lists them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from podidentity.keyvault import get_secret
from podidentity.models import (
    BINDING_LABEL,
    AzureIdentity,
    AzureIdentityBinding,
    IdentityType,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
)
from podidentity.nmi import TokenProxySettings
from podidentity.testing.default_world import (
    DEFAULT_SECRET_VALUE,
    DefaultWorld,
    populate_default_world,
)
from podidentity.testing.demo._cluster import DemoCluster, Misbehaved
from podidentity.testing.demo._report import DemoOptions
from podidentity.testing.sandbox import Sandbox, SandboxNode

__all__ = ["STEPS", "Scenario", "Step"]

NAMESPACE = "default"
OTHER_NAMESPACE = "other"
IDENTITY = "demo-aks-pod-id"  # the seed's demo_aks_pod_id, as a valid Kubernetes name
BINDING = f"{IDENTITY}-binding"
SELECTOR = IDENTITY
POD = "demo"
SERVICE_ACCOUNT = "demo"
WORKER_IDENTITY = "worker"
WORKER_BINDING = "worker-binding"


def _where(node: SandboxNode) -> str:
    kind = "VM" if node.instance is None else "scale set"
    return f"{node.name} ({kind} {node.compute.name})"


def _mask(value: str) -> str:
    return "*" * min(len(value), 8)


class Scenario:
    """The demo's state across steps: the sandbox, its default world, what was made.

    Args:
        options: how the world behaves.
        say: where a step's progress lines go.
    """

    def __init__(self, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.sandbox = Sandbox(
            operation_duration=options.operation_duration,
            propagation_delay=options.propagation_delay,
            throttling=options.throttling,
        )
        self._started = False
        self._world: DefaultWorld | None = None
        self._cluster: DemoCluster | None = None

    @property
    def world(self) -> DefaultWorld:
        """The default world (after the first step)."""
        if self._world is None:
            raise Misbehaved("the sandbox did not start")
        return self._world

    @property
    def cluster(self) -> DemoCluster:
        """The demo's hands on the sandbox (after the first step)."""
        if self._cluster is None:
            raise Misbehaved("the sandbox did not start")
        return self._cluster

    def close(self) -> None:
        """Stop everything the demo started."""
        try:
            if self._cluster is not None:
                self._cluster.close()
        finally:
            if self._started:
                self.sandbox.stop()

    # -- the walkthrough ---------------------------------------------------------------------

    def start(self) -> str:
        """Start the sandbox, its default world, the controller and the token proxies."""
        self.sandbox.start()
        self._started = True
        self.say(
            f"Kubernetes API {self.sandbox.kube.url} (HTTPS, RBAC on); "
            f"Azure tenant {self.sandbox.azure.tenant_id}"
        )
        world = self._world = populate_default_world(
            self.sandbox,
            controller_settings=self.options.controller,
            token_proxy_settings=TokenProxySettings(pending_timeout=self.options.pending_timeout),
        )
        for node in world.nodes:
            self.say(f"node {_where(node)}, with the kubelet identity")
        app, worker = world.identities
        self.say(
            f"vault {world.vault_name} with secret {world.secret_names[0]}; identities "
            f"{app.name} (may read it) and {worker.name} (may not)"
        )
        if self.options.controller.cluster_wide_bindings:
            self.say("controller: cluster_wide_bindings is ON (upstream's unsafe behaviour)")
        else:
            self.say("controller: secure defaults (a binding serves its own namespace only)")
        # Polled rather than awaited: a thread blocked in wait_synced() would outlive a timeout.
        deadline = time.monotonic() + self.options.timeout
        while not world.controller.ready:
            if not world.controller.healthy:
                raise Misbehaved("the controller stopped before it synced")
            if time.monotonic() > deadline:
                raise Misbehaved(f"the controller did not sync within {self.options.timeout:g} s")
            time.sleep(0.02)
        self._cluster = DemoCluster(self.sandbox, world.controller, timeout=self.options.timeout)
        self._cluster.start()
        return f"controller synced, {len(world.nodes)} token proxies"

    def identity(self) -> str:
        """Create the AzureIdentity for app-identity."""
        app = self.world.identities[0]
        self.cluster.apply(
            AzureIdentity(
                metadata=ObjectMeta(name=IDENTITY, namespace=NAMESPACE),
                type=IdentityType.USER_ASSIGNED_MSI,
                resource_id=app.resource_id,
                client_id=app.client_id,
            )
        )
        self.say(f"AzureIdentity {NAMESPACE}/{IDENTITY}: type 0 (user-assigned), {app.name}")
        self.say(f"clientID {app.client_id}")
        return f"created {NAMESPACE}/{IDENTITY}"

    def binding(self) -> str:
        """Create the AzureIdentityBinding: the label selector, and the one service account."""
        self.cluster.apply(
            AzureIdentityBinding(
                metadata=ObjectMeta(name=BINDING, namespace=NAMESPACE),
                azure_identity=IDENTITY,
                selector=SELECTOR,
                service_account_names=(SERVICE_ACCOUNT,),
            )
        )
        self.say(
            f"AzureIdentityBinding {NAMESPACE}/{BINDING}: azureIdentity {IDENTITY}, "
            f"selector {SELECTOR}, serviceAccountNames [{SERVICE_ACCOUNT}]"
        )
        return f"created {NAMESPACE}/{BINDING}"

    def pod(self) -> str:
        """Create the labelled pod, running as the binding's service account."""
        self.cluster.service_account(NAMESPACE, SERVICE_ACCOUNT)
        node = self.cluster.pod(
            POD,
            NAMESPACE,
            labels={BINDING_LABEL: SELECTOR, "app": "demo"},
            service_account=SERVICE_ACCOUNT,
        )
        self.say(f"pod {NAMESPACE}/{POD}: label {BINDING_LABEL}={SELECTOR}, service account demo")
        self.say(f"Running on node {_where(node)}")
        return f"Running on {node.name}"

    def assign(self) -> str:
        """Watch the controller record the assignment and put the identity on the machine."""
        started = time.perf_counter()
        record = self.cluster.wait_assigned(POD, NAMESPACE)
        waited = time.perf_counter() - started
        self.say(f"AzureAssignedIdentity {record.namespace}/{record.name}: Assigned")
        self.say(f"on node {record.node_name}, {waited:.1f} s after the pod ran")
        node = self.sandbox.node(record.node_name)
        app = self.world.identities[0]
        if not self.cluster.on_machine(node, app.resource_id):
            raise Misbehaved(f"Assigned, but ARM does not have {app.name} on {node.compute.name}")
        if not self.cluster.on_machine(node, self.sandbox.kubelet_identity.resource_id):
            raise Misbehaved(f"the kubelet identity is gone from {node.compute.name}")
        self.say(f"ARM (a GET, as a Reader): {node.compute.name} has {app.name}")
        self.say("and still the kubelet identity")
        return f"Assigned in {waited:.1f} s"

    def token(self) -> str:
        """The pod gets a token through its node's token proxy, with ManagedIdentityCredential."""
        app = self.world.identities[0]
        node = self.sandbox.node_of_pod(POD, NAMESPACE)
        claims = self.cluster.token_as(POD, NAMESPACE)
        self.say(f"ManagedIdentityCredential() in pod {NAMESPACE}/{POD} -> proxy on {node.name}")
        if claims.get("appid") != app.client_id:
            raise Misbehaved(f"got a token for client ID {claims.get('appid')}, not {app.name}")
        self.say(f"a Key Vault token for {app.name} (client ID {app.client_id}); token not shown")
        return f"token for {app.name}"

    def secret(self) -> str:
        """The pod reads the vault's secret with the Key Vault helper."""
        world = self.world
        name = world.secret_names[0]
        with self.sandbox.as_pod(POD, NAMESPACE, timeout=self.options.timeout):
            value = get_secret(world.vault_name, name)
        self.say(f"podidentity.keyvault.get_secret({world.vault_name!r}, {name!r}) as the pod")
        if value != DEFAULT_SECRET_VALUE:
            raise Misbehaved(f"read {name}, but not the value the vault holds")
        self.say(f"{name} = {_mask(value)} ({len(value)} characters; value not shown)")
        return f"read {name} ({len(value)} characters)"

    # -- the glitches, fixed -----------------------------------------------------------------

    def other_namespace(self) -> str:
        """Glitch 1: a pod in another namespace, with the same label and service account."""
        self.say("the seed's glitch: bindings were blind to namespaces")
        self.cluster.namespace(OTHER_NAMESPACE)
        self.cluster.service_account(OTHER_NAMESPACE, SERVICE_ACCOUNT)
        node = self.cluster.pod(
            POD,
            OTHER_NAMESPACE,
            labels={BINDING_LABEL: SELECTOR},
            service_account=SERVICE_ACCOUNT,
        )
        self.say(
            f"pod {OTHER_NAMESPACE}/{POD} on {node.name}: same name, label and service account "
            f"name as {NAMESPACE}/{POD}"
        )
        self.cluster.expect_nothing_for(POD, OTHER_NAMESPACE, self.say)
        return "refused"

    def forged_label(self) -> str:
        """Glitch 2: the binding's label copied onto a pod running as another service account."""
        self.say("the seed's glitch: a label chose the identity, and any pod may set a label")
        self.cluster.service_account(NAMESPACE, "intruder")
        node = self.cluster.pod(
            "copycat",
            NAMESPACE,
            labels={BINDING_LABEL: SELECTOR},
            service_account="intruder",
        )
        self.say(
            f"pod {NAMESPACE}/copycat on {node.name}: label {BINDING_LABEL}={SELECTOR}, "
            "service account intruder (the binding allows demo)"
        )
        self.cluster.expect_nothing_for("copycat", NAMESPACE, self.say)
        return "refused"

    def label_selector(self) -> str:
        """Glitch 3: a binding with a real label selector; only matching pods get it."""
        self.say("the seed's glitch: a binding could only compare one label with one value")
        worker = self.world.identities[1]
        self.cluster.apply(
            AzureIdentity(
                metadata=ObjectMeta(name=WORKER_IDENTITY, namespace=NAMESPACE),
                type=IdentityType.USER_ASSIGNED_MSI,
                resource_id=worker.resource_id,
                client_id=worker.client_id,
            )
        )
        selector = LabelSelector(
            match_labels={"app": "worker"},
            match_expressions=(
                LabelSelectorRequirement(key="tier", operator="In", values=("api",)),
            ),
        )
        self.cluster.apply(
            AzureIdentityBinding(
                metadata=ObjectMeta(name=WORKER_BINDING, namespace=NAMESPACE),
                azure_identity=WORKER_IDENTITY,
                label_selector=selector,
            )
        )
        self.say(
            f"AzureIdentityBinding {NAMESPACE}/{WORKER_BINDING} for {worker.name}: "
            "labelSelector app=worker, tier in (api)"
        )
        # The matching pod first: once it is Assigned the controller knows the binding, so
        # its silence about the other pod is a decision, not a binding it has not seen yet.
        api = self.cluster.pod(
            "worker-api",
            NAMESPACE,
            labels={"app": "worker", "tier": "api"},
            service_account="default",
        )
        self.say(f"pod worker-api (app=worker, tier=api) on {api.name}: matches")
        record = self.cluster.wait_assigned("worker-api", NAMESPACE)
        self.say(f"AzureAssignedIdentity {record.namespace}/{record.name}: Assigned")
        claims = self.cluster.token_as("worker-api", NAMESPACE)
        if claims.get("appid") != worker.client_id:
            raise Misbehaved(f"worker-api got a token for {claims.get('appid')}, not {worker.name}")
        self.say(f"worker-api gets a token for {worker.name}; token not shown")
        batch = self.cluster.pod(
            "worker-batch",
            NAMESPACE,
            labels={"app": "worker", "tier": "batch"},
            service_account="default",
        )
        self.say(f"pod worker-batch (app=worker, tier=batch) on {batch.name}: does not match")
        self.cluster.expect_nothing_for("worker-batch", NAMESPACE, self.say)
        return "matching granted, other refused"

    def other_identity(self) -> str:
        """Glitch 4: the pod names an identity that is not its own."""
        self.say("the seed's glitch: a pod naming an identity on its node that is not its own")
        worker = self.world.identities[1]
        node = self.sandbox.node_of_pod(POD, NAMESPACE)
        there = (
            "on the same machine"
            if self.cluster.on_machine(node, worker.resource_id)
            else ("assigned to worker-api")
        )
        reason = self.cluster.refused_as(POD, NAMESPACE, client_id=worker.client_id)
        self.say(f"client_id of {worker.name} ({there}): refused ({reason})")
        kubelet = self.sandbox.kubelet_identity
        reason = self.cluster.refused_as(
            POD, NAMESPACE, identity_config={"resource_id": kubelet.resource_id}
        )
        self.say(f"msi_res_id of the kubelet identity (on every node): refused ({reason})")
        return "refused"

    def kubelet_identity(self) -> str:
        """Nothing the controller did took the nodes' own identity away."""
        try:
            self.sandbox.check_kubelet_identity()
        except AssertionError as err:
            raise Misbehaved(str(err)) from None
        machines = sorted({node.compute.name for node in self.world.nodes})
        self.say(f"{self.sandbox.kubelet_identity.name} still on {', '.join(machines)}")
        return "untouched"


@attrs.frozen
class Step:
    """One step of the demo.

    Attributes:
        key: a stable short name.
        title: what the step does.
        expected: what should happen.
        run: the :class:`Scenario` method that does it.
        critical: later steps cannot run when it fails (the walkthrough builds on itself).
    """

    key: str
    title: str
    expected: str
    run: Callable[[Scenario], str]
    critical: bool = False


STEPS: tuple[Step, ...] = (
    Step("sandbox", "Start a sandbox", "controller and token proxies up", Scenario.start, True),
    Step("identity", "Create an AzureIdentity", "created", Scenario.identity, True),
    Step("binding", "Create an AzureIdentityBinding", "created", Scenario.binding, True),
    Step("pod", "Create a labelled pod", "Running", Scenario.pod, True),
    Step(
        "assign",
        "The controller assigns the identity",
        "Assigned, on the node in ARM",
        Scenario.assign,
        True,
    ),
    Step("token", "The pod gets a token via its node's proxy", "token", Scenario.token, True),
    Step("secret", "The pod reads a Key Vault secret", "secret read", Scenario.secret),
    Step(
        "other-namespace",
        "Glitch 1: a pod in another namespace",
        "refused",
        Scenario.other_namespace,
    ),
    Step(
        "forged-label",
        "Glitch 2: forged label, wrong service account",
        "refused",
        Scenario.forged_label,
    ),
    Step(
        "label-selector",
        "Glitch 3: a binding with a label selector",
        "only the matching pod",
        Scenario.label_selector,
    ),
    Step(
        "other-identity",
        "Glitch 4: a pod asks for another identity",
        "refused",
        Scenario.other_identity,
    ),
    Step(
        "kubelet-identity",
        "The nodes keep their kubelet identity",
        "untouched",
        Scenario.kubelet_identity,
    ),
)
