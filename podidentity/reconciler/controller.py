"""The controller (MIC): informers feed the pure core, workers carry out its plans.

One work-queue key per machine (the normalized ARM ID of a VM or scale set; ``""`` for pods on
nodes without one). Informer events only choose keys; a worker re-plans the machine from the
snapshot (level-triggered) and then, in order: creates or updates AzureAssignedIdentities
(status ``Created``), changes the machine's identities through ARM (one PATCH per batch),
re-plans, writes statuses (``Assigned`` / ``Unassigned``) and finalizes records no longer
needed. Only the leader writes; it checks before every write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from podidentity.azure import ArmClient, AsyncTokenCredential, MachineIdentities, cloud_named
from podidentity.errors import (
    AzureError,
    AzureThrottledError,
    ConfigError,
    KubeAlreadyExistsError,
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    PodIdentityError,
    TemporaryReconcileError,
    ValidationError,
)
from podidentity.kube import (
    ASSIGNED_IDENTITIES,
    BINDINGS,
    EVENTS,
    EXCEPTIONS,
    IDENTITIES,
    NODES,
    PODS,
    ApiResource,
    Informer,
    InformerEvent,
    KubeClient,
    LeaderElector,
)
from podidentity.models import (
    API_VERSION,
    ASSIGNED_IDENTITY_FINALIZER,
    AssignedIdentityState,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
)
from podidentity.models._time import format_kube_time
from podidentity.reconciler._views import AssignedView
from podidentity.reconciler.metrics import ControllerMetrics
from podidentity.reconciler.plan import (
    AssignedDelete,
    AssignedUpdate,
    Desired,
    MachineChange,
    StatusChange,
)
from podidentity.reconciler.queue import WorkQueue
from podidentity.reconciler.settings import ControllerSettings
from podidentity.reconciler.snapshot import PlanRules, Snapshot

__all__ = ["Controller"]

_log = logging.getLogger(__name__)

_SKIPPED = "#skipped"  # queue key: report objects the core skips
_KINDS: dict[str, Any] = {
    "AzureIdentity": AzureIdentity,
    "AzureIdentityBinding": AzureIdentityBinding,
    "AzurePodIdentityException": AzurePodIdentityException,
}


def _now() -> str:
    return format_kube_time(time.time())


class Controller:
    """The reconciler, embeddable in any asyncio program.

    Use ``async with controller:`` to run it in the background of the current loop, or
    ``await controller.run()`` to run it in the foreground; :meth:`stop` (from any thread)
    ends it. Nothing global is touched: no signal handlers, no default registries, no output.

    Args:
        api_client: a ``kubernetes.aio`` ``ApiClient`` (the caller closes it).
        credential: an azure-core ``AsyncTokenCredential`` for ARM; ``None`` only in managed
            mode.
        settings: :class:`ControllerSettings` (defaults when ``None``).
        arm: an :class:`~podidentity.azure.ArmClient` to use instead of building one (for
            custom transports); the controller does not close it.
        metrics: where to count; a new :class:`ControllerMetrics` with its own registry when
            ``None``.

    Raises:
        ConfigError: standard mode without a credential, or invalid settings.
    """

    def __init__(
        self,
        api_client: Any,
        credential: AsyncTokenCredential | None = None,
        settings: ControllerSettings | None = None,
        *,
        arm: ArmClient | None = None,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.settings = settings or ControllerSettings()
        if self.settings.mode == "standard" and credential is None and arm is None:
            raise ConfigError(
                "standard mode assigns identities through ARM and needs an azure-core "
                "AsyncTokenCredential; pass one, or use mode='managed'"
            )
        self.kube = KubeClient(api_client)
        self.metrics = metrics or ControllerMetrics()
        self.snapshot = Snapshot(
            PlanRules(
                cluster_wide_bindings=self.settings.cluster_wide_bindings,
                immutable_identities=self.settings.immutable_identities,
                protected_resource_ids=self.settings.protected_resource_ids,
            )
        )
        self.metrics.watch_assignments(self.snapshot.state_counts)
        self._credential = credential
        self._arm = arm
        self._owns_arm = arm is None
        holder = self.settings.holder_identity or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self.holder_identity = holder
        self._elector = LeaderElector(
            self.kube,
            name=self.settings.lease_name,
            namespace=self.settings.lease_namespace,
            identity=holder,
            lease_duration=self.settings.lease_duration,
            renew_deadline=self.settings.renew_deadline,
            retry_period=self.settings.retry_period,
        )
        self.informers: dict[str, Informer] = {}
        self._queue: WorkQueue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._synced = threading.Event()
        self._failed: BaseException | None = None
        self._reported: dict[tuple[str, str, str], str] = {}
        self._unreadable: dict[tuple[str, str, str], tuple[Mapping[str, Any], str]] = {}
        self._events_sent: dict[tuple[str, ...], None] = {}
        self._blocked: dict[tuple[str, str], float] = {}
        self._refreshed: dict[str, float] = {}
        self._machines: dict[str, MachineIdentities] = {}
        self.reconciles = 0
        """Machine reconciles completed (successful or not)."""

    # -- public surface ------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this replica may write (always, without leader election)."""
        if not self.settings.leader_election:
            return self._started.is_set() and not self._stop_requested.is_set()
        return self._elector.is_leader and not self._stop_requested.is_set()

    @property
    def healthy(self) -> bool:
        """False once the controller has failed or stopped (the liveness probe)."""
        return self._failed is None and not self._stop_requested.is_set()

    @property
    def ready(self) -> bool:
        """True once every informer has listed (the readiness probe)."""
        return self._synced.is_set() and self.healthy

    async def wait_synced(self) -> None:
        """Return once every informer has its first list; from any event loop or thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._synced.wait) if not self._synced.is_set() else None
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        """Ask the controller to stop; safe from any thread, idempotent."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def __aenter__(self) -> Controller:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="podidentity")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; informers, leader election, workers and resyncs."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            return
        settings = self.settings
        if settings.cluster_wide_bindings:
            _log.warning(
                "cluster_wide_bindings is on: bindings and identities serve pods in every "
                "namespace (upstream's behaviour); turn it off once bindings are namespaced"
            )
        self._queue = WorkQueue(
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            rate=settings.queue_rate,
            burst=settings.queue_burst,
        )
        if settings.mode == "standard" and self._arm is None:
            assert self._credential is not None  # checked in __init__
            self._arm = ArmClient(
                self._credential,
                cloud=cloud_named(settings.cloud),
                observer=self.metrics.observe_arm,
            )
        self._build_informers()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.ensure_future(informer.run()) for informer in self.informers.values()
        ]
        self._started.set()
        try:
            tasks.append(asyncio.ensure_future(self._wait_for_sync()))
            if settings.leader_election:
                tasks.append(
                    asyncio.ensure_future(self._elector.run(self._became_leader, self._lost_lead))
                )
            tasks += [asyncio.ensure_future(self._worker()) for _ in range(settings.workers)]
            tasks.append(asyncio.ensure_future(self._resync_loop()))
            await self._stop.wait()
        except BaseException as err:
            self._failed = err
            raise
        finally:
            self._stop_requested.set()
            self._queue.shutdown()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._owns_arm and self._arm is not None:
                await self._arm.aclose()
            self.metrics.leader.set(0)
            self._synced.set()  # release waiters; they see healthy == False

    def _build_informers(self) -> None:
        def pods(event: InformerEvent) -> None:
            if event.type == "DELETED":
                self._enqueue(self.snapshot.remove_pod(event.key))
            else:
                self._enqueue(self.snapshot.set_pod(event.obj))

        def nodes(event: InformerEvent) -> None:
            if event.type == "DELETED":
                self._enqueue(self.snapshot.remove_node(event.key))
            else:
                self._enqueue(self.snapshot.set_node(event.obj))

        def assigned(event: InformerEvent) -> None:
            meta = event.obj.get("metadata") or {}
            if event.type == "DELETED":
                self._enqueue(
                    self.snapshot.remove_assigned(meta.get("namespace", ""), meta["name"])
                )
            else:
                self._enqueue(self.snapshot.set_assigned(event.obj))

        handlers: dict[str, tuple[ApiResource, Callable[[InformerEvent], None]]] = {
            "pods": (PODS, pods),
            "nodes": (NODES, nodes),
            "assigned": (ASSIGNED_IDENTITIES, assigned),
            "AzureIdentity": (IDENTITIES, self._kind_handler("AzureIdentity")),
            "AzureIdentityBinding": (BINDINGS, self._kind_handler("AzureIdentityBinding")),
            "AzurePodIdentityException": (
                EXCEPTIONS,
                self._kind_handler("AzurePodIdentityException"),
            ),
        }
        for name, (resource, handler) in handlers.items():
            informer = Informer(self.kube, resource)
            informer.add_handler(handler)
            self.informers[name] = informer

    def _kind_handler(self, kind: str) -> Callable[[InformerEvent], None]:
        model = _KINDS[kind]
        snapshot = self.snapshot
        setters: dict[str, Callable[[Any], set[str]]] = {
            "AzureIdentity": snapshot.set_identity,
            "AzureIdentityBinding": snapshot.set_binding,
            "AzurePodIdentityException": snapshot.set_exception,
        }
        setter = setters[kind]
        remover: Callable[[str, str], set[str]] = {
            "AzureIdentity": snapshot.remove_identity,
            "AzureIdentityBinding": snapshot.remove_binding,
            "AzurePodIdentityException": snapshot.remove_exception,
        }[kind]

        def handle(event: InformerEvent) -> None:
            meta = event.obj.get("metadata") or {}
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            self._reported.pop((kind, namespace, name), None)
            if event.type == "DELETED":
                self._unreadable.pop((kind, namespace, name), None)
                self._enqueue(remover(namespace, name))
                return
            try:
                parsed = model.from_dict(event.obj)
            except ValidationError as err:
                # Unreadable: forget any earlier version and say why on the object.
                self._enqueue(remover(namespace, name))
                self._unreadable[(kind, namespace, name)] = (event.obj, str(err))
                self._enqueue({_SKIPPED})
                return
            self._unreadable.pop((kind, namespace, name), None)
            self._enqueue(setter(parsed))
            self._enqueue({_SKIPPED})

        return handle

    def _enqueue(self, keys: set[str]) -> None:
        if self._queue is None:
            return
        for key in keys:
            self._queue.add(key)
        self.metrics.queue_depth.set(len(self._queue))

    async def _wait_for_sync(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self.informers.values()))
        self._synced.set()
        self._enqueue(self.snapshot.machines() | {_SKIPPED})

    def _became_leader(self) -> None:
        self.metrics.leader.set(1)
        # A new leader looks at everything: its predecessor may have stopped mid-way.
        self._machines.clear()
        self._refreshed.clear()
        self._enqueue_everything()

    def _enqueue_everything(self) -> None:
        """Look at every machine in full (resync, new leader): level-triggered repair."""
        machines = self.snapshot.machines()
        for machine in machines:
            self.snapshot.mark_dirty(machine)
        self._enqueue(machines | {_SKIPPED})

    def _lost_lead(self) -> None:
        self.metrics.leader.set(0)
        _log.warning("%s is no longer the leader: not writing", self.holder_identity)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            if self._synced.is_set():
                self._enqueue_everything()

    async def _worker(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            key = await queue.get()
            if key is None:
                return
            started = time.perf_counter()
            done = False
            try:
                if key == _SKIPPED:
                    await self._report_skipped()
                else:
                    await self._reconcile(key)
                queue.forget(key)
                done = True
            except TemporaryReconcileError as err:
                self.metrics.reconcile_errors.labels("TemporaryReconcileError").inc()
                queue.add_rate_limited(key, err.delay)
            except AzureThrottledError as err:
                self.metrics.reconcile_errors.labels("AzureThrottledError").inc()
                queue.add_rate_limited(key, max(err.retry_after, self.settings.retry_base_delay))
            except PodIdentityError as err:
                self.metrics.reconcile_errors.labels(type(err).__name__).inc()
                delay = queue.add_rate_limited(key)
                _log.warning(
                    "reconciling %s: %s; retrying in %.2fs", key or "<no machine>", err, delay
                )
            except Exception:
                self.metrics.reconcile_errors.labels("unexpected").inc()
                queue.add_rate_limited(key)
                _log.exception("reconciling %s failed unexpectedly", key or "<no machine>")
            finally:
                if not done and key != _SKIPPED:
                    # The plan was consumed but not carried out: look at all of it next time.
                    self.snapshot.mark_dirty(key)
                queue.done(key)
                self.reconciles += 1
                self.metrics.reconcile_duration.observe(time.perf_counter() - started)
                self.metrics.queue_depth.set(len(queue))

    # -- one machine ---------------------------------------------------------------------------

    def _check_leader(self) -> None:
        if not self.is_leader:
            raise TemporaryReconcileError("not the leader: not writing", delay=None)

    async def _reconcile(self, machine: str) -> None:
        if not self.is_leader:
            return  # followers keep caches warm; the new leader re-queues everything
        snapshot = self.snapshot
        standard = self.settings.mode == "standard" and bool(machine)
        if standard:
            await self._observe(machine)
        elif machine:
            self._observe_managed(machine)
        plan = snapshot.plan([machine], incremental=True)
        # Statuses and deletions wait for the machine change: look at those records again.
        snapshot.mark_dirty(
            machine,
            [(c.namespace, c.name) for c in plan.status] + [d.existing.key for d in plan.deletes],
        )
        for desired, preexisting in plan.creates:
            await self._create(desired, preexisting)
        for update in plan.updates:
            await self._update(update)
        retry_in: float | None = None
        if standard:
            retry_in = await self._change_machine(machine)
        elif machine:
            self._observe_managed(machine)
        plan = snapshot.plan([machine], incremental=True)
        for change in plan.status:
            await self._write_status(change)
        for delete in plan.deletes:
            await self._finalize(delete)
        if retry_in is not None:
            raise TemporaryReconcileError("identities refused by ARM wait", delay=retry_in)

    async def _observe(self, machine: str) -> None:
        assert self._arm is not None
        refreshed = self._refreshed.get(machine)
        stale = (
            refreshed is None or time.monotonic() - refreshed > self.settings.arm_refresh_interval
        )
        known = machine in self._machines and self.snapshot.machine_identities(machine) is not None
        if known and not stale:
            return
        found = await self._arm.get_identities(self.snapshot.machine_id(machine))
        # What ARM said is the truth for the next write too (the PATCH keeps what it reads).
        self._machines[machine] = found
        self.snapshot.set_machine_identities(machine, found.user_assigned)
        self._refreshed[machine] = time.monotonic()

    def _observe_managed(self, machine: str) -> None:
        # Identities are assigned out of band: what the pods need is taken as present.
        needed = self.snapshot.needed_identities(machine)
        self.snapshot.set_machine_identities(machine, dict.fromkeys(needed, ""))

    async def _change_machine(self, machine: str) -> float | None:
        assert self._arm is not None
        change = self.snapshot.machine_change(machine)
        now = time.monotonic()
        blocked = {rid for (m, rid), until in self._blocked.items() if m == machine and until > now}
        retry_in = min(
            (u - now for (m, _), u in self._blocked.items() if m == machine and u > now),
            default=None,
        )
        add = change.add - blocked
        if not add and not change.remove:
            return retry_in
        for batch in MachineChange(change.machine, add, change.remove).batches(
            self.settings.arm_batch_size
        ):
            self._check_leader()
            result = await self._arm.change_identities(
                change.machine,
                add=batch.add,
                remove=batch.remove,
                current=self._machines.get(machine),
            )
            self._machines[machine] = result.identities
            self.snapshot.set_machine_identities(machine, result.identities.user_assigned)
            self._refreshed[machine] = time.monotonic()
            for rid, err in result.dropped.items():
                failures = sum(1 for (m, r) in self._blocked if r == rid)
                delay = min(self.settings.retry_max_delay, 5.0 * 2 ** min(failures, 6))
                self._blocked[(machine, rid)] = time.monotonic() + delay
                retry_in = delay if retry_in is None else min(retry_in, delay)
                await self._warn_identity(rid, err)
        return retry_in

    # -- Kubernetes writes ---------------------------------------------------------------------

    async def _create(self, desired: Desired, preexisting: bool) -> None:
        self._check_leader()
        body = desired.to_object(preexisting=preexisting)
        try:
            created = await self.kube.create(ASSIGNED_IDENTITIES, body, desired.namespace)
        except KubeAlreadyExistsError:
            found = await self.kube.get(ASSIGNED_IDENTITIES, desired.name, desired.namespace)
            self.snapshot.set_assigned(found)
            return
        self.snapshot.set_assigned(created)
        view = AssignedView.from_json(created)
        await self._write_status(
            StatusChange(desired.namespace, desired.name, AssignedIdentityState.CREATED, view)
        )

    async def _update(self, update: AssignedUpdate) -> None:
        self._check_leader()
        body = update.desired.to_object(preexisting=update.preexisting)
        existing = update.existing
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": existing.resource_version},
            {"op": "replace", "path": "/spec", "value": body["spec"]},
            {"op": "add", "path": "/metadata/labels", "value": body["metadata"]["labels"]},
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": body["metadata"].get("annotations", {}),
            },
        ]
        try:
            updated = await self.kube.patch(
                ASSIGNED_IDENTITIES, existing.name, patch, existing.namespace, patch_type="json"
            )
        except (KubeConflictError, KubeError) as err:
            if isinstance(err, KubeNotFoundError):
                self.snapshot.remove_assigned(*existing.key)
                return
            raise TemporaryReconcileError(f"updating {existing.name}: {err}") from err
        self.snapshot.set_assigned(updated)
        if update.resets_status:
            await self._write_status(
                StatusChange(
                    existing.namespace,
                    existing.name,
                    AssignedIdentityState.CREATED,
                    AssignedView.from_json(updated),
                )
            )

    async def _write_status(self, change: StatusChange) -> None:
        self._check_leader()
        patch = {
            "metadata": {"resourceVersion": change.existing.resource_version},
            "status": {"status": change.state.value},
        }
        try:
            written = await self.kube.patch(
                ASSIGNED_IDENTITIES, change.name, patch, change.namespace, subresource="status"
            )
        except KubeConflictError as err:
            # Someone else wrote it: the informer brings the new version; re-plan then.
            raise TemporaryReconcileError(f"status of {change.name}: {err}") from err
        except KubeNotFoundError:
            self.snapshot.remove_assigned(change.namespace, change.name)
            return
        self.snapshot.set_assigned(written)
        if change.state is AssignedIdentityState.ASSIGNED:
            _log.info(
                "assigned identity %s to pod %s/%s",
                change.existing.identity_name,
                change.existing.pod_namespace,
                change.existing.pod,
            )
            await self._event(
                written,
                "Normal",
                "IdentityAssigned",
                f"identity {change.existing.identity_name} is on node {change.existing.node}",
            )
        elif change.state is AssignedIdentityState.UNASSIGNED:
            await self._event(
                written,
                "Normal",
                "IdentityUnassigned",
                f"identity {change.existing.identity_name} is being removed from "
                f"node {change.existing.node}",
            )

    async def _finalize(self, delete: AssignedDelete) -> None:
        self._check_leader()
        existing = delete.existing
        try:
            if existing.has_finalizer:
                current = await self.kube.get(
                    ASSIGNED_IDENTITIES, existing.name, existing.namespace
                )
                finalizers = [
                    f
                    for f in (current.get("metadata") or {}).get("finalizers") or []
                    if f != ASSIGNED_IDENTITY_FINALIZER
                ]
                await self.kube.patch(
                    ASSIGNED_IDENTITIES,
                    existing.name,
                    {
                        "metadata": {
                            "finalizers": finalizers or None,
                            "resourceVersion": current["metadata"]["resourceVersion"],
                        }
                    },
                    existing.namespace,
                )
            if not existing.deleting:
                await self.kube.delete(
                    ASSIGNED_IDENTITIES, existing.name, existing.namespace, uid=existing.uid or None
                )
        except KubeNotFoundError:
            pass
        except KubeConflictError as err:
            raise TemporaryReconcileError(f"finalizing {existing.name}: {err}") from err
        self.snapshot.remove_assigned(*existing.key)
        _log.info("removed assignment %s/%s", existing.namespace, existing.name)

    # -- Events --------------------------------------------------------------------------------

    async def _event(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        *,
        kind: str = "AzureAssignedIdentity",
    ) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (kind, namespace, meta.get("name", ""), str(meta.get("uid", "")), reason, message)
        if key in self._events_sent or not self.is_leader:
            return
        self._events_sent[key] = None
        if len(self._events_sent) > 10_000:
            self._events_sent.pop(next(iter(self._events_sent)))
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'x')}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion") or API_VERSION,
                "kind": kind,
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": self.settings.event_component},
            "reportingComponent": self.settings.event_component,
            "reportingInstance": self.holder_identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.create(EVENTS, body, namespace)
        except KubeError as err:
            _log.info("could not record event %s on %s: %s", reason, meta.get("name"), err)

    async def _report_skipped(self) -> None:
        if not self.is_leader:
            return
        for key, (raw, message) in list(self._unreadable.items()):
            if self._reported.get(key) != message:
                self._reported[key] = message
                await self._event(raw, "Warning", "InvalidSpec", message, kind=key[0])
        for skipped in self.snapshot.skipped:
            key = (skipped.kind, skipped.namespace, skipped.name)
            if self._reported.get(key) == skipped.reason:
                continue
            self._reported[key] = skipped.reason
            informer = self.informers.get(skipped.kind)
            found = informer.get_by_name(skipped.name, skipped.namespace) if informer else None
            if found is None:
                continue
            await self._event(
                found, "Warning", "Skipped", f"ignored: {skipped.reason}", kind=skipped.kind
            )

    async def _warn_identity(self, resource_id: str, err: AzureError) -> None:
        informer = self.informers["AzureIdentity"]
        for obj in informer.items():
            spec = obj.get("spec") or {}
            rid = str(spec.get("resourceID") or spec.get("ResourceID") or "")
            if rid and rid.strip("/").lower() == resource_id.strip("/").lower():
                await self._event(
                    obj,
                    "Warning",
                    "AssignmentFailed",
                    f"ARM refused the identity ({err.code}): {err}",
                    kind="AzureIdentity",
                )
