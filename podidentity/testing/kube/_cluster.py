"""The control plane and kubelets around the emulated API server: a cluster that runs pods.

:func:`install` plugs a :class:`Cluster` into a :class:`~podidentity.testing.kube.KubeEmulator`
(it becomes ``emulator.cluster``). From then on the emulator behaves like a small AKS cluster:

* **Nodes.** :meth:`Cluster.add_node` registers a node backed by an Azure VM or scale-set
  instance (``spec.providerID``), with an InternalIP in 127.20.0.0/16 and AKS labels; a node
  created through the API without a status is given one by its "kubelet" (Ready, an address).
* **Scheduler and kubelet.** A new pod is bound to the Ready, schedulable node with the fewest
  pods that matches its ``nodeSelector`` (or to ``spec.nodeName`` if set) and starts at once:
  ``Running``, Ready, with a unique ``podIP`` in 127.10.0.0/16 and ``hostIP`` = the node's
  address (``hostNetwork`` pods share the node's address). With no fitting node the pod stays
  ``Pending`` (``PodScheduled=False``, ``Unschedulable``) and is started as soon as one
  appears. Because Linux routes all of 127.0.0.0/8 to loopback, a test that binds a socket to
  a pod's IP *is* that pod to a token proxy that maps source addresses to pods.
* **Service accounts.** Every namespace gets a ``default`` service account (the
  ServiceAccount controller); pods run as ``default`` unless they say otherwise, and a pod
  naming a missing service account is refused with the ServiceAccount admission plug-in's 403.
* **Deletion.** Pods go at once (grace periods are not waited for) and their IPs are freed;
  pods on a deleted node are removed, as the pod garbage collector does.

Decisions live in the pure modules :mod:`._scheduling`, :mod:`._nodes` and :mod:`._addresses`;
this module only reads and writes the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._addresses import NODE_NETWORK, POD_NETWORK, AddressPool
from ._apiserver import AdmissionRequest, APIServer, now_rfc3339
from ._errors import APIError
from ._lifecycle import bind
from ._nodes import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_REGION,
    DEFAULT_RESOURCE_GROUP,
    DEFAULT_SUBSCRIPTION_ID,
    AzureScaleSetInstance,
    AzureVM,
    node_manifest,
    ready_condition,
)
from ._resources import ResourceType
from ._scheduling import (
    accepted_status,
    choose_node,
    node_internal_ip,
    pending_status,
    running_status,
    sandbox_status,
    terminated_status,
    unschedulable_message,
)

if TYPE_CHECKING:
    from ._emulator import KubeEmulator

__all__ = ["Cluster", "install"]

_log = logging.getLogger(__name__)

# Real seconds before an address reserved during admission is checked for a pod that holds it.
_CLAIM_CHECK_DELAY = 2.0


def _pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Cluster:
    """Scheduler, kubelets and the service-account controller of an emulated cluster.

    Reach it as ``emulator.cluster``; :meth:`add_node` and :meth:`set_node_ready` may be called
    from any thread except the emulator's own loop (use the ``*_async`` forms there).
    """

    def __init__(self, emulator: KubeEmulator) -> None:
        self._emulator = emulator
        self._api: APIServer = emulator.apiserver
        self.pod_addresses = AddressPool(POD_NETWORK, reuse=True)
        self.node_addresses = AddressPool(NODE_NETWORK)
        self._pods = self._api.resource("pods")
        self._nodes = self._api.resource("nodes")
        self._namespaces = self._api.resource("namespaces")
        self._service_accounts = self._api.resource("serviceaccounts")
        self._starting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Cluster(pods={len(self.pod_addresses)}, nodes={len(self.node_addresses)})"

    def starting(self) -> list[asyncio.Task[None]]:
        """Pod starts in progress (the scheduler's and kubelets' work not yet written)."""
        return list(self._tasks)

    # ------------------------------------------------------------------ wiring

    async def _install(self) -> None:
        self._api.add_admission("pods", self._admit_pod)
        self._api.add_admission("nodes", self._admit_node)
        self._api.add_observer(self._observe)
        for namespace in self._stored(self._namespaces):
            await self._ensure_default_service_account(namespace["metadata"]["name"])
        for pod in self._stored(self._pods):
            self._start(pod)

    def _stored(self, resource: ResourceType) -> list[dict[str, Any]]:
        # Committed objects are never mutated by the store; callers only read them.
        return [s.obj for s in self._api.store.of(resource).objects.values()]

    def _get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        stored = self._api.store.of(resource).objects.get((namespace, name))
        return None if stored is None else stored.obj

    # ------------------------------------------------------------------ nodes (public)

    def add_node(
        self,
        name: str,
        *,
        vm: str | None = None,
        vmss: tuple[str, int | str] | None = None,
        subscription_id: str = DEFAULT_SUBSCRIPTION_ID,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        ready: bool = True,
        region: str = DEFAULT_REGION,
        instance_type: str = DEFAULT_INSTANCE_TYPE,
        labels: Mapping[str, str] | None = None,
        unschedulable: bool = False,
        address: str | None = None,
    ) -> dict[str, Any]:
        """Register a node, as the kubelet and the Azure cloud provider would.

        Args:
            name: the node name.
            vm: back it with a plain VM of this name (``virtualMachines/<vm>``).
            vmss: back it with scale-set instance ``(scale_set, instance_id)``. With neither
                ``vm`` nor ``vmss`` the node gets a VM named after itself.
            subscription_id: the Azure subscription in the ``providerID``.
            resource_group: the (node) resource group in the ``providerID``.
            ready: the kubelet's ``Ready`` condition; pods are only scheduled on Ready nodes.
            region: ``topology.kubernetes.io/region``.
            instance_type: ``node.kubernetes.io/instance-type``.
            labels: extra labels (override the defaults).
            unschedulable: a cordoned node.
            address: a specific InternalIP in 127.20.0.0/16 (default: the next free one).

        Returns:
            The stored node.
        """
        return self._emulator.call(
            self.add_node_async(
                name,
                vm=vm,
                vmss=vmss,
                subscription_id=subscription_id,
                resource_group=resource_group,
                ready=ready,
                region=region,
                instance_type=instance_type,
                labels=labels,
                unschedulable=unschedulable,
                address=address,
            )
        )

    async def add_node_async(
        self,
        name: str,
        *,
        vm: str | None = None,
        vmss: tuple[str, int | str] | None = None,
        subscription_id: str = DEFAULT_SUBSCRIPTION_ID,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        ready: bool = True,
        region: str = DEFAULT_REGION,
        instance_type: str = DEFAULT_INSTANCE_TYPE,
        labels: Mapping[str, str] | None = None,
        unschedulable: bool = False,
        address: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`add_node` for code already running on the emulator's loop."""
        if vm is not None and vmss is not None:
            raise ValueError("a node is backed by a VM or a scale-set instance, not both")
        machine: AzureVM | AzureScaleSetInstance
        if vmss is not None:
            machine = AzureScaleSetInstance(
                vmss[0],
                str(vmss[1]),
                subscription_id=subscription_id,
                resource_group=resource_group,
            )
        else:
            machine = AzureVM(
                vm or name, subscription_id=subscription_id, resource_group=resource_group
            )
        if self._get(self._nodes, "", name) is not None:
            raise APIError.already_exists("", "nodes", name)
        ip = (
            self.node_addresses.reserve(name, address)
            if address
            else self.node_addresses.allocate(name)
        )
        manifest = node_manifest(
            name,
            address=ip,
            machine=machine,
            ready=ready,
            now=now_rfc3339(),
            region=region,
            instance_type=instance_type,
            labels=dict(labels or {}),
            unschedulable=unschedulable,
        )
        try:
            return await self._api.create(self._nodes, manifest, keep_status=True)
        except Exception:
            self.node_addresses.release(name)
            raise

    def set_node_ready(self, name: str, ready: bool) -> dict[str, Any]:
        """Flip a node's ``Ready`` condition (pending pods start when a node becomes Ready)."""
        return self._emulator.call(self.set_node_ready_async(name, ready))

    async def set_node_ready_async(self, name: str, ready: bool) -> dict[str, Any]:
        """:meth:`set_node_ready` for code already running on the emulator's loop."""
        node = await self._api.get(self._nodes, name)
        status = node.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        conditions.append(ready_condition(ready, now=now_rfc3339()))
        status["conditions"] = conditions
        return await self._api.update(self._nodes, node, subresource="status")

    # ------------------------------------------------------------------ admission

    async def _admit_node(self, request: AdmissionRequest) -> None:
        # A node registered through the API without a status gets what its kubelet would post:
        # an InternalIP and a Ready condition.
        if request.operation != "CREATE" or request.object is None or request.dry_run:
            return
        status = request.object.setdefault("status", {})
        if node_internal_ip(request.object) is None:
            ip = self.node_addresses.allocate(request.name)
            status.setdefault("addresses", []).insert(0, {"type": "InternalIP", "address": ip})
        if not status.get("conditions"):
            status["conditions"] = [ready_condition(True, now=now_rfc3339())]

    async def _admit_pod(self, request: AdmissionRequest) -> None:
        if request.operation != "CREATE" or request.object is None:
            return
        namespace = request.namespace or ""
        pod = request.object
        await self._check_service_account(pod, namespace, request.name)
        if not request.dry_run:
            self._keep_given_status(pod, namespace, request.name)

    def _keep_given_status(self, pod: dict[str, Any], namespace: str, name: str) -> None:
        """Hold the address of a pod a test created already started (``KubeEmulator.create``).

        Such a pod (a ``podIP``, or a phase past ``Pending``) is left as it is by the scheduler
        and the kubelet; its address, if it is one of ours, is held so no other pod gets it.
        """
        status = pod.get("status") or {}
        address = status.get("podIP")
        if address and not (pod.get("spec") or {}).get("hostNetwork"):
            # Outside the pool, or deliberately shared with another pod: the test's choice.
            with contextlib.suppress(ValueError):
                self.pod_addresses.reserve(_pod_key(namespace, name), str(address))
                # Admission runs before validation: a create refused afterwards must not keep
                # the address, so look again once the create has had time to finish.
                asyncio.get_running_loop().call_later(
                    _CLAIM_CHECK_DELAY, self._release_unless_used, namespace, name, str(address)
                )

    async def _check_service_account(self, pod: dict[str, Any], namespace: str, name: str) -> None:
        spec = pod.setdefault("spec", {})
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = account
        spec.setdefault("serviceAccount", account)
        ns = self._get(self._namespaces, "", namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return  # the namespace check that follows admission reports this
        if self._get(self._service_accounts, namespace, account) is not None:
            return
        if account == "default":
            # The ServiceAccount controller would have created it moments after the namespace;
            # create it now rather than make tests race the controller.
            await self._ensure_default_service_account(namespace)
            return
        raise APIError(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: error looking up service account '
            f'{namespace}/{account}: serviceaccount "{account}" not found',
            {"name": name, "kind": "pods"},
        )

    # ------------------------------------------------------------------ scheduling and kubelets

    def _pods_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self._stored(self._pods):
            node = pod.get("spec", {}).get("nodeName")
            if node:
                counts[node] = counts.get(node, 0) + 1
        return counts

    @staticmethod
    def _needs_start(pod: Mapping[str, Any]) -> bool:
        status = pod.get("status") or {}
        return (
            not pod["metadata"].get("deletionTimestamp")
            and not status.get("podIP")
            and status.get("phase", "Pending") == "Pending"
        )

    def _start(self, pod: Mapping[str, Any]) -> None:
        """Schedule and start ``pod`` in the background, once (per uid) at a time."""
        uid = pod["metadata"].get("uid", "")
        if uid in self._starting or not self._needs_start(pod):
            return
        self._starting.add(uid)
        meta = pod["metadata"]
        task = asyncio.get_running_loop().create_task(
            self._bring_up(meta["namespace"], meta["name"], uid)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _current(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        """The pod if it is still the same one and still waits to start."""
        pod = self._get(self._pods, namespace, name)
        if pod is None or pod["metadata"].get("uid") != uid or not self._needs_start(pod):
            return None
        return pod

    async def _pause(self) -> None:
        delay = self._emulator.pod_start_delay
        await asyncio.sleep(delay) if delay > 0 else await asyncio.sleep(0)

    async def _bring_up(self, namespace: str, name: str, uid: str) -> None:
        """The scheduler's binding, then the kubelet's three status writes, each after a pause."""
        try:
            await self._pause()
            pod = self._current(namespace, name, uid)
            if pod is None:
                return
            if not pod.get("spec", {}).get("nodeName"):
                if not await self._schedule(pod, namespace, name, uid):
                    return
                await self._pause()
            await self._run_on_node(namespace, name, uid)
        except APIError as err:
            # Deleted or changed meanwhile; its own events will bring it back here.
            _log.debug("could not start pod %s/%s: %s", namespace, name, err)
        finally:
            self._starting.discard(uid)

    async def _schedule(self, pod: dict[str, Any], namespace: str, name: str, uid: str) -> bool:
        nodes = self._stored(self._nodes)
        node = choose_node(pod, nodes, self._pods_per_node())
        if node is None:
            status = pending_status(unschedulable_message(pod, nodes), now=now_rfc3339())
            old = (pod.get("status") or {}).get("conditions")
            if old and [{**c, "lastTransitionTime": None} for c in old] == [
                {**c, "lastTransitionTime": None} for c in status["conditions"]
            ]:
                return False
            await self._write_status(namespace, name, uid, status)
            return False
        await bind(self._api, namespace, name, node["metadata"]["name"], uid=uid, now=now_rfc3339())
        return True

    async def _write_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> None:
        await self._api.patch(
            self._pods,
            name,
            [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "add", "path": "/status", "value": status},
            ],
            namespace=namespace,
            patch_type="json",
            subresource="status",
        )

    async def _run_on_node(self, namespace: str, name: str, uid: str) -> None:
        pod = self._current(namespace, name, uid)
        if pod is None:
            return
        node = self._get(self._nodes, "", pod["spec"]["nodeName"])
        if node is None:
            return  # bound to a node that does not exist (yet): no kubelet runs it
        host_ip = node_internal_ip(node) or ""
        await self._write_status(
            namespace, name, uid, accepted_status(pod, host_ip=host_ip, now=now_rfc3339())
        )
        await self._pause()
        pod = self._current(namespace, name, uid)
        if pod is None:
            return
        if pod["spec"].get("hostNetwork"):
            pod_ip = host_ip
        else:
            pod_ip = self.pod_addresses.allocate(_pod_key(namespace, name))
        try:
            await self._write_status(
                namespace, name, uid, sandbox_status(pod, pod_ip=pod_ip, now=now_rfc3339())
            )
        except APIError:
            self._release_unless_used(namespace, name, pod_ip)
            raise
        await self._pause()
        pod = self._get(self._pods, namespace, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            return
        if pod["metadata"].get("deletionTimestamp"):
            return
        status = running_status(pod, pod_ip=pod_ip, host_ip=host_ip, now=now_rfc3339())
        status["startTime"] = (pod.get("status") or {}).get("startTime", status["startTime"])
        await self._write_status(namespace, name, uid, status)

    def _release_unless_used(self, namespace: str, name: str, address: str) -> None:
        owner = _pod_key(namespace, name)
        if self.pod_addresses.address_of(owner) != address:
            return
        pod = self._get(self._pods, namespace, name)
        if pod is None or pod.get("status", {}).get("podIP") != address:
            self.pod_addresses.release(owner)

    def _start_waiting_pods(self) -> None:
        """Retry every pod that waits for a node (after a node change)."""
        for pod in self._stored(self._pods):
            self._start(pod)

    # ------------------------------------------------------------------ graceful deletion

    def _terminating(self, pod: Mapping[str, Any]) -> None:
        """The kubelet saw a deletion: stop the pod once its grace period is over."""
        meta = pod["metadata"]
        grace = int(meta.get("deletionGracePeriodSeconds") or 0)
        node = pod.get("spec", {}).get("nodeName")
        if grace <= 0 or not node or self._get(self._nodes, "", node) is None:
            return  # forced already, or no kubelet to finish it (as in a real cluster)
        key = ("kubelet-delete", meta["uid"])
        due = self._api.grace_deadlines.get(meta["uid"], self._api.clock() + grace)
        scheduled = self._api.timers.deadline(key)
        if scheduled is not None and scheduled <= due:
            return
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]

        async def finish() -> None:
            current = self._get(self._pods, namespace, name)
            if current is None or current["metadata"].get("uid") != uid:
                return
            try:
                if (current.get("status") or {}).get("phase") == "Running":
                    # Killed at the end of the grace period: the terminal status comes first.
                    await self._write_status(
                        namespace, name, uid, terminated_status(current, now=now_rfc3339())
                    )
                await self._api.delete_stored(
                    self._pods, name, namespace, preconditions={"uid": uid}, grace_period_seconds=0
                )
            except APIError as err:
                _log.debug("kubelet could not delete %s/%s: %s", namespace, name, err)

        self._api.timers.schedule(key, due, finish)

    # ------------------------------------------------------------------ observers

    async def _observe(self, event: str, resource: ResourceType, obj: dict[str, Any]) -> None:
        key = (resource.group, resource.plural)
        if key == ("", "pods"):
            if event == "DELETED":
                self._api.timers.cancel(("kubelet-delete", obj["metadata"].get("uid")))
                self._pod_gone(obj)
            elif obj["metadata"].get("deletionTimestamp"):
                self._terminating(obj)
            else:
                self._start(obj)
        elif key == ("", "nodes"):
            if event == "DELETED":
                await self._node_gone(obj["metadata"]["name"])
            else:
                # Pods bound to this node by name start even if it is not Ready (the kubelet
                # binding); unbound pending pods are scheduled only onto Ready nodes.
                self._start_waiting_pods()
        elif key == ("", "namespaces") and event == "ADDED":
            await self._ensure_default_service_account(obj["metadata"]["name"])
        elif (
            key == ("", "serviceaccounts")
            and event == "DELETED"
            and obj["metadata"]["name"] == "default"
        ):
            # The ServiceAccount controller puts a deleted default account back.
            await self._ensure_default_service_account(obj["metadata"]["namespace"])

    def _pod_gone(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        owner = _pod_key(meta["namespace"], meta["name"])
        address = self.pod_addresses.address_of(owner)
        if address is None:
            return
        # A pod of the same name may already have been created again with this address.
        current = self._get(self._pods, meta["namespace"], meta["name"])
        if current is None or current.get("status", {}).get("podIP") != address:
            self.pod_addresses.release(owner)

    async def _node_gone(self, name: str) -> None:
        if self._get(self._nodes, "", name) is None:
            self.node_addresses.release(name)
        for pod in self._stored(self._pods):
            if pod.get("spec", {}).get("nodeName") == name:
                meta = pod["metadata"]
                try:
                    # The pod garbage collector force-deletes pods of a node that is gone.
                    await self._api.delete(
                        self._pods,
                        meta["name"],
                        namespace=meta["namespace"],
                        grace_period_seconds=0,
                    )
                except APIError as err:
                    _log.debug("pod GC of %s/%s: %s", meta["namespace"], meta["name"], err)

    async def _ensure_default_service_account(self, namespace: str) -> None:
        ns = self._get(self._namespaces, "", namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        if self._get(self._service_accounts, namespace, "default") is not None:
            return
        try:
            await self._api.create(
                self._service_accounts,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
                namespace=namespace,
            )
        except APIError as err:
            if err.code != 409:
                raise


async def install(emulator: KubeEmulator) -> Cluster:
    """Start the cluster simulation for ``emulator`` (which exposes it as ``.cluster``)."""
    cluster = Cluster(emulator)
    await cluster._install()
    return cluster
