"""A Kubernetes cluster on Azure, emulated: :class:`Sandbox`.

One :class:`~podidentity.testing.KubeEmulator` and one
:class:`~podidentity.testing.AzureEmulator` that agree with each other the way an AKS cluster
and its subscription do: every Kubernetes node is backed by a VM or a scale-set instance in the
Azure world (its ``spec.providerID`` names it), that machine's IMDS is one call away, and the
cluster's service-account issuer is trusted by Azure AD for workload identity federation.

As in AKS, every node pool's scale set (and every VM node) carries the cluster's *kubelet
identity*, a user-assigned identity the nodes themselves use; pod identity must leave it in
place (:meth:`Sandbox.check_kubelet_identity`). One :class:`~podidentity.testing.Clock` drives
both emulators, so a test moves time on both sides at once with a
:class:`~podidentity.testing.ManualClock`.

The reconciler, the token proxy and the end-to-end demo are tested in a sandbox; so can your
own code that spans both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import kubernetes

from podidentity.testing._clock import Clock, system_clock
from podidentity.testing._server import start_daemon
from podidentity.testing.azure import (
    DEFAULT_OPERATION_DURATION,
    DEFAULT_PROPAGATION_DELAY,
    WORKLOAD_IDENTITY_AUDIENCE,
    AzureEmulator,
    ComputeResource,
    FederatedCredential,
    ManagedIdentity,
)
from podidentity.testing.azure._world import ComputeKind
from podidentity.testing.kube import KubeEmulator

if TYPE_CHECKING:
    from podidentity.nmi import TokenProxyServer, TokenProxySettings
    from podidentity.reconciler import Controller, ControllerSettings
    from podidentity.testing._token_proxies import PodRelay, TokenProxyFleet

__all__ = ["NodePool", "Sandbox", "SandboxNode"]

_PROVIDER_ID = re.compile(
    r"^azure:///subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/(?:virtualMachines/(?P<vm>[^/]+)|"
    r"virtualMachineScaleSets/(?P<vmss>[^/]+)/virtualMachines/(?P<instance>\d+))$",
    re.IGNORECASE,
)


@attrs.frozen
class SandboxNode:
    """A Kubernetes node and the Azure machine behind it.

    Attributes:
        name: the node's name in Kubernetes.
        compute: the VM, or the scale set the instance belongs to (a snapshot taken when the
            node was added: read ``azure.world`` for its current identities).
        instance: the scale-set instance id; ``None`` for a plain VM.
    """

    name: str
    compute: ComputeResource
    instance: int | None = None


@attrs.frozen
class NodePool:
    """An AKS-style node pool: one scale set and a node per instance.

    Attributes:
        name: the pool's name (``nodepool1``).
        scale_set: its scale set (a snapshot taken when the pool was added).
        nodes: a node per instance.
        kubelet_identity: the cluster's kubelet identity, on the scale set from the start, as
            AKS puts it there; pod identity must never take it off.
    """

    name: str
    scale_set: ComputeResource
    nodes: tuple[SandboxNode, ...]
    kubelet_identity: ManagedIdentity


class Sandbox:
    """A Kubernetes emulator and an Azure emulator wired into one consistent world.

    Use it as a context manager (``with Sandbox() as sandbox:`` or ``async with``); the two
    emulators are :attr:`kube` and :attr:`azure`.

    Args:
        tenant_id: the Azure AD tenant (generated when ``None``).
        node_resource_group: where node VMs and scale sets live, as AKS's ``MC_...`` group.
        clock: the time of both emulators (:class:`~podidentity.testing.ManualClock` to move
            it by hand on both sides at once).
        operation_duration: seconds an ARM identity write takes (see
            :class:`~podidentity.testing.AzureEmulator`; 0 for immediate).
        propagation_delay: seconds IMDS lags behind a completed write (0 for immediate).
        throttling: enforce Azure's request limits (the default).
        cluster_name: names the kubelet identity ``<cluster_name>-agentpool``, as AKS does.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        node_resource_group: str = "MC_podidentity_sandbox_eastus",
        clock: Clock = system_clock,
        operation_duration: float = DEFAULT_OPERATION_DURATION,
        propagation_delay: float = DEFAULT_PROPAGATION_DELAY,
        throttling: bool = True,
        cluster_name: str = "sandbox",
    ) -> None:
        self.clock = clock
        # HTTPS and bearer tokens on the Kubernetes side: Azure AD only trusts an HTTPS issuer,
        # and a sandbox should refuse anonymous callers the way a cluster does.
        self.kube = KubeEmulator(tls=True, clock=clock)
        self.azure = AzureEmulator(
            tenant_id=tenant_id,
            clock=clock,
            operation_duration=operation_duration,
            propagation_delay=propagation_delay,
            throttling=throttling,
        )
        self.node_resource_group = node_resource_group
        self.cluster_name = cluster_name
        self._nodes: dict[str, SandboxNode] = {}
        self._pool_count = 0
        self._kubelet_identity: ManagedIdentity | None = None
        self._token_proxies: TokenProxyFleet | None = None

    def __repr__(self) -> str:
        return f"Sandbox(nodes={sorted(self._nodes)!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Start both emulators; Azure AD trusts the cluster's CA for federated issuers."""
        self.kube.start()
        try:
            self.azure.start()
        except BaseException:
            self.kube.stop()
            raise
        assert self.kube.ca_bundle is not None  # tls=True always writes one
        self.azure.oidc.trust(self.kube.ca_bundle)
        return self

    def stop(self) -> None:
        """Stop the token proxies and controllers (if started), then both emulators."""
        fleet, self._token_proxies = self._token_proxies, None
        try:
            if fleet is not None:
                fleet.stop()
        finally:
            self._stop_emulators()

    def _stop_emulators(self) -> None:
        try:
            self.stop_controllers()
            self.azure.stop()
        finally:
            self.kube.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Sandbox:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def node_resource_group_id(self) -> str:
        """ARM ID of the node resource group: the scope a controller needs roles on."""
        subscription = self.azure.world.default_subscription_id
        return f"/subscriptions/{subscription}/resourceGroups/{self.node_resource_group}"

    # -- nodes -------------------------------------------------------------------------------

    @property
    def kubelet_identity(self) -> ManagedIdentity:
        """The cluster's kubelet identity (``<cluster_name>-agentpool`` in the node group).

        Created with the first node; every node pool's scale set and every VM node carries it.
        """
        if self._kubelet_identity is None:
            self._kubelet_identity = self.azure.world.add_managed_identity(
                f"{self.cluster_name}-agentpool", resource_group=self.node_resource_group
            )
        return self._kubelet_identity

    def add_node_pool(self, name: str = "nodepool1", *, count: int = 2) -> NodePool:
        """Add an AKS-style pool: scale set ``aks-<name>-<n>-vmss`` and ``count`` Ready nodes.

        The scale set starts with the kubelet identity on it, as in AKS.
        """
        if count < 1:
            raise ValueError(f"a node pool needs at least one node, got count={count}")
        self._pool_count += 1
        prefix = f"aks-{name}-{10_000_000 + self._pool_count}-vmss"
        kubelet = self.kubelet_identity
        scale_set = self.azure.world.add_vmss(
            prefix, capacity=count, resource_group=self.node_resource_group, identities=[kubelet]
        )
        nodes = tuple(
            self._register(f"{prefix}{index:06d}", scale_set, index) for index in range(count)
        )
        return NodePool(name=name, scale_set=scale_set, nodes=nodes, kubelet_identity=kubelet)

    def add_vm_node(self, name: str) -> SandboxNode:
        """Add a node backed by a plain VM of the same name (with the kubelet identity)."""
        vm = self.azure.world.add_vm(
            name, resource_group=self.node_resource_group, identities=[self.kubelet_identity]
        )
        return self._register(name, vm, None)

    def check_kubelet_identity(self) -> None:
        """Fail if any node's VM or scale set lost the kubelet identity.

        Azure lets any caller with write access take it off; the nodes then lose access to
        the registry and the cluster breaks. Pod identity tests call this after the
        reconciler ran.

        Raises:
            AssertionError: naming the machines without it.
        """
        if self._kubelet_identity is None:
            return
        key = self._kubelet_identity.resource_id.lower()
        missing = sorted(
            {
                node.compute.resource_id
                for node in self._nodes.values()
                if key
                not in self.azure.world.compute(
                    node.compute.kind, node.compute.name, resource_group=node.compute.resource_group
                ).user_assigned
            }
        )
        if missing:
            raise AssertionError(f"the kubelet identity was removed from {', '.join(missing)}")

    def _register(self, name: str, compute: ComputeResource, instance: int | None) -> SandboxNode:
        self.kube.cluster.add_node(
            name,
            vm=compute.name if instance is None else None,
            vmss=None if instance is None else (compute.name, instance),
            subscription_id=compute.subscription_id,
            resource_group=compute.resource_group,
        )
        node = SandboxNode(name=name, compute=compute, instance=instance)
        self._nodes[name] = node
        if self._token_proxies is not None:
            self._token_proxies.add(name)
        return node

    @property
    def nodes(self) -> Mapping[str, SandboxNode]:
        """Every node added through the sandbox, by name."""
        return dict(self._nodes)

    def node(self, name: str) -> SandboxNode:
        """The node ``name`` with its Azure machine, found through its ``spec.providerID``.

        Raises:
            KeyError: no such node, or its providerID names no machine of this Azure world.
        """
        if name in self._nodes:
            return self._nodes[name]
        provider_id = self.kube.get("nodes", name).get("spec", {}).get("providerID", "")
        match = _PROVIDER_ID.match(provider_id)
        if match is None:
            raise KeyError(f"node {name!r} has no Azure providerID ({provider_id!r})")
        name_in_azure = match["vm"] or match["vmss"]
        kind: ComputeKind = "virtualMachines" if match["vm"] else "virtualMachineScaleSets"
        compute = self.azure.world.lookup_compute(kind, match["sub"], match["rg"], name_in_azure)
        if compute is None:
            raise KeyError(f"node {name!r}: {provider_id} is not in the Azure world")
        return SandboxNode(name, compute, None if match["vm"] else int(match["instance"]))

    def node_of_pod(self, name: str, namespace: str = "default") -> SandboxNode:
        """The node a pod was scheduled onto."""
        node_name = self.kube.get("pods", name, namespace=namespace)["spec"].get("nodeName")
        if not node_name:
            raise KeyError(f"pod {namespace}/{name} is not scheduled onto a node yet")
        return self.node(node_name)

    # -- on a node ---------------------------------------------------------------------------

    def imds_url(self, node: str | SandboxNode) -> str:
        """The IMDS URL of the machine behind ``node``."""
        where = node if isinstance(node, SandboxNode) else self.node(node)
        if where.instance is None:
            return self.azure.imds_url(vm=where.compute)
        return self.azure.imds_url(vmss=where.compute, instance=where.instance)

    def environ(self, node: str | SandboxNode | None = None) -> dict[str, str]:
        """Environment variables for Azure SDKs, as if running on ``node`` (when given)."""
        env = self.azure.environ()
        if node is not None:
            env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = self.imds_url(node)
        return env

    @contextlib.contextmanager
    def on_node(self, node: str | SandboxNode) -> Iterator[dict[str, str]]:
        """Set :meth:`environ` for ``node`` in ``os.environ`` for the block, then restore."""
        env = self.environ(node)
        with self.azure.patched_environ(
            extra={"AZURE_POD_IDENTITY_AUTHORITY_HOST": env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]}
        ) as patched:
            yield patched

    # -- token proxies (NMI) -----------------------------------------------------------------

    def start_token_proxies(
        self, settings: TokenProxySettings | None = None, *, kubeconfig: Path | None = None
    ) -> None:
        """Run a :class:`~podidentity.nmi.TokenProxy` on every node, and on nodes added later.

        Each proxy talks to its own node's IMDS and watches the cluster with the admin
        kubeconfig, or with ``kubeconfig`` (e.g. a service account's from
        ``kube.service_account(...)``, to run it with only the permissions RBAC grants that
        account); all stop with the sandbox. Reach one as a pod with :meth:`as_pod`.
        """
        from podidentity.nmi import TokenProxySettings
        from podidentity.testing._token_proxies import TokenProxyFleet

        if self._token_proxies is not None:
            raise RuntimeError("the token proxies are already running")
        assert self.kube.kubeconfig_path is not None, "start the sandbox first"
        fleet = TokenProxyFleet(
            kubeconfig=kubeconfig or self.kube.kubeconfig_path,
            imds_url=self.imds_url,
            settings=settings or TokenProxySettings(),
            credential_options=self.azure.client_kwargs(),
        )
        fleet.start()
        self._token_proxies = fleet
        try:
            for name in self._nodes:
                fleet.add(name)
        except BaseException:
            self._token_proxies = None
            fleet.stop()
            raise

    def token_proxy(self, node: str | SandboxNode) -> TokenProxyServer:
        """The running token proxy server of ``node`` (started on first use)."""
        name = node.name if isinstance(node, SandboxNode) else node
        if self._token_proxies is None:
            raise RuntimeError("call start_token_proxies() first")
        self.node(name)  # a node that is not backed by an Azure machine has no IMDS to use
        return self._token_proxies.add(name)

    def _running_pod(self, name: str, namespace: str, timeout: float) -> dict[str, Any]:
        # A pod is bound and given its IP by updates after it is created; wait for both.
        deadline = time.monotonic() + timeout
        while True:
            pod = self.kube.get("pods", name, namespace=namespace)
            if pod.get("spec", {}).get("nodeName") and pod.get("status", {}).get("podIP"):
                return pod
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"pod {namespace}/{name} has no node and IP after {timeout:g}s "
                    f"(phase {pod.get('status', {}).get('phase')!r})"
                )
            time.sleep(0.01)

    @contextlib.contextmanager
    def as_pod(
        self, name: str, namespace: str = "default", *, timeout: float = 30.0
    ) -> Iterator[dict[str, str]]:
        """Inside the block, Azure SDKs in this process act as pod ``namespace/name``.

        Their IMDS requests reach the token proxy of the pod's node **from the pod's IP** (a
        relay connects onward from it, as the node's DNAT rule would deliver them), and their
        other Azure calls reach the emulated Azure. The environment set in ``os.environ`` for
        the block is yielded, so a child process given it acts as the pod too.

        Args:
            name: the pod's name.
            namespace: the pod's namespace.
            timeout: how long to wait for the pod to be scheduled and get its IP.
        """
        relay = self.pod_relay(name, namespace, timeout=timeout)
        try:
            with self.azure.patched_environ(
                extra={"AZURE_POD_IDENTITY_AUTHORITY_HOST": relay.url}
            ) as env:
                yield env
        finally:
            relay.close()

    def pod_relay(
        self, name: str, namespace: str = "default", *, timeout: float = 30.0
    ) -> PodRelay:
        """A relay to the token proxy of pod ``namespace/name``'s node, connecting from its IP.

        What :meth:`as_pod` points SDKs at, for callers that outlive a ``with`` block (the
        ``podidentity sandbox`` command hands its URL to other processes). It runs until
        closed or until the sandbox stops.

        Raises:
            RuntimeError: the token proxies are not started.
            TimeoutError: the pod got no node and IP within ``timeout`` seconds.
        """
        if self._token_proxies is None:
            raise RuntimeError("call start_token_proxies() first")
        pod = self._running_pod(name, namespace, timeout)
        node = pod["spec"]["nodeName"]
        self.token_proxy(node)
        return self._token_proxies.relay(node, pod["status"]["podIP"])

    # -- identities --------------------------------------------------------------------------

    def federate(
        self,
        identity: ManagedIdentity,
        *,
        namespace: str,
        service_account: str,
        audiences: Sequence[str] = (WORKLOAD_IDENTITY_AUDIENCE,),
    ) -> FederatedCredential:
        """Let pods running as ``namespace/service_account`` use ``identity``.

        Adds a federated identity credential naming this cluster's service-account issuer, so
        their projected tokens can be exchanged at Azure AD (``WorkloadIdentityCredential``).
        """
        return self.azure.world.add_federated_credential(
            identity,
            issuer=self.kube.service_accounts.issuer,
            subject=f"system:serviceaccount:{namespace}:{service_account}",
            audiences=list(audiences),
        )

    def kube_client(self) -> kubernetes.client.ApiClient:
        """A new sync ``kubernetes`` API client for the cluster (close it when done)."""
        assert self.kube.kubeconfig_path is not None, "start the sandbox first"
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kube.kubeconfig_path)
        )
        return client

    # -- the reconciler ----------------------------------------------------------------------

    @property
    def identity_resource_group_id(self) -> str:
        """ARM ID of the resource group where ``azure.world`` creates identities by default."""
        subscription = self.azure.world.default_subscription_id
        return f"/subscriptions/{subscription}/resourceGroups/podidentity"

    controller_principal: Any = None
    """The service principal the controllers run as (created by the first
    :meth:`start_controller`)."""

    @property
    def _controllers(self) -> list[tuple[Controller, threading.Thread]]:
        # Created on first use: controllers are optional, and __init__ stays the emulators'.
        found: list[tuple[Controller, threading.Thread]] | None = self.__dict__.get(
            "_controller_threads"
        )
        if found is None:
            found = self.__dict__["_controller_threads"] = []
        return found

    def _controller_principal(self) -> Any:
        if self.controller_principal is None:
            app = self.azure.world.add_service_principal("podidentity-controller")
            # The roles AKS gives pod identity's controller.
            self.azure.world.grant_role(
                app, self.node_resource_group_id, "Virtual Machine Contributor"
            )
            self.azure.world.add_resource_group("podidentity")
            self.azure.world.grant_role(
                app, self.identity_resource_group_id, "Managed Identity Operator"
            )
            self.controller_principal = app
        return self.controller_principal

    def start_controller(
        self, settings: ControllerSettings | None = None, *, kubeconfig: Path | None = None
    ) -> Controller:
        """Run the real reconciler against this sandbox, in a thread with its own event loop.

        It authenticates to ARM as a service principal created once per sandbox
        (:attr:`controller_principal`) with Virtual Machine Contributor on the node resource
        group and Managed Identity Operator on :attr:`identity_resource_group_id`, and to
        Kubernetes with the admin kubeconfig, or with ``kubeconfig`` (e.g. a service
        account's, to run it with only the permissions RBAC grants that account). Each call
        starts another replica (leader election decides which one writes); all stop with the
        sandbox or :meth:`stop_controllers`. ``await controller.wait_synced()`` works from any
        loop.
        """
        from podidentity.reconciler import ControllerSettings

        app = self._controller_principal()
        chosen = settings or ControllerSettings()
        started = threading.Event()
        holder: dict[str, Any] = {}

        async def main() -> None:
            import httpx
            from azure.identity.aio import ClientSecretCredential

            from podidentity.kube import load_api_client
            from podidentity.reconciler import ControllerRunner

            try:
                api = await load_api_client(
                    kubeconfig or self.kube.kubeconfig_path, in_cluster=False
                )
                credential = ClientSecretCredential(
                    self.azure.tenant_id,
                    app.client_id,
                    app.secret,
                    authority=self.azure.authority,
                    **self.azure.client_kwargs(),
                )
                verify = ssl.create_default_context(cafile=str(self.azure.ca_bundle))
                http = httpx.AsyncClient(proxy=self.azure.proxy.url, verify=verify, timeout=30)
                runner = ControllerRunner(api, credential, chosen, http_client=http)
            except BaseException as err:
                holder["error"] = err
                started.set()
                raise
            holder["controller"] = runner.controller
            started.set()
            try:
                await runner.run()
            finally:
                await http.aclose()
                await credential.close()
                await api.close()

        def target() -> None:
            with contextlib.suppress(Exception):
                asyncio.run(main())

        thread = start_daemon(target, "podidentity-controller")
        started.wait(60)
        if "error" in holder:
            raise holder["error"]
        controller: Controller = holder["controller"]
        self._controllers.append((controller, thread))
        return controller

    def stop_controllers(self, timeout: float = 30.0) -> None:
        """Stop every controller started by :meth:`start_controller` and wait for them."""
        while self._controllers:
            controller, thread = self._controllers.pop()
            controller.stop()
            thread.join(timeout)
