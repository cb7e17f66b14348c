"""The pure core: what the cluster and Azure look like, indexed, and what should change.

A :class:`Snapshot` is fed objects as informers see them (pods and nodes as JSON; identities,
bindings and exceptions as models; AzureAssignedIdentities as JSON) and the user-assigned
identities observed on each machine. It keeps each pod's desired assignments up to date as
inputs change, so a re-plan after one event touches only what that event can affect, and
:meth:`Snapshot.plan` turns desired versus existing into a :class:`~podidentity.reconciler.Plan`.

Rules (see ``docs/reconciler.md``):

- a pod gets an identity when it has a node, is not terminated, no AzurePodIdentityException
  in its namespace matches it, and a binding matches it (the models' ``matches``);
- identity, binding and pod share a namespace unless ``cluster_wide_bindings``;
- objects whose ``problems()`` include an error are skipped and listed in :attr:`skipped`;
- an identity is removed from a machine only if podidentity put it there (an
  AzureAssignedIdentity on that machine records it and was not marked pre-existing), no
  desired assignment on that machine still uses it, and it is not protected
  (``immutable_identities`` client IDs, ``protected_resource_ids``).

Indexes: pods by namespace and node; bindings by scope and by legacy selector value; desired
assignments and existing records by machine; per-machine counters of needed and owned
identities. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from podidentity.azure.ids import machine_of_provider_id, normalize_id
from podidentity.models import (
    BINDING_LABEL,
    AssignedIdentityState,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    IdentityType,
    Severity,
    assigned_identity_name,
)
from podidentity.reconciler._views import AssignedView, PodView
from podidentity.reconciler.plan import (
    AssignedDelete,
    AssignedUpdate,
    Desired,
    MachineChange,
    Plan,
    Skipped,
    StatusChange,
)

__all__ = ["PlanRules", "Snapshot"]

_ALL = "*"  # the binding scope when bindings are cluster-wide
Key = tuple[str, str]


def _lower_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.lower() for value in values)


def _id_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_id(value) for value in values)


@attrs.frozen(kw_only=True)
class PlanRules:
    """The decisions the pure core takes from settings.

    Attributes:
        cluster_wide_bindings: let bindings and identities serve pods in every namespace
            (upstream's behaviour; off by default).
        immutable_identities: client IDs never removed from a machine.
        protected_resource_ids: resource IDs never removed (the kubelet identity).
    """

    cluster_wide_bindings: bool = False
    immutable_identities: frozenset[str] = attrs.field(default=frozenset(), converter=_lower_set)
    protected_resource_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_id_set)


def _errors(obj: Any) -> str:
    return "; ".join(str(p) for p in obj.problems() if p.severity is Severity.ERROR)


class Snapshot:
    """The reconciler's indexed view of the world, and the planner over it.

    Every ``set_*`` / ``remove_*`` method returns the machines (normalized ARM IDs, ``""`` for
    pods on nodes without one) whose plan may have changed: the keys to reconcile.
    """

    def __init__(self, rules: PlanRules | None = None) -> None:
        self.rules = rules or PlanRules()
        self._pods: dict[str, PodView] = {}
        self._pods_by_ns: dict[str, set[str]] = {}
        self._pods_by_node: dict[str, set[str]] = {}
        self._node_machine: dict[str, str] = {}
        self._nodes: set[str] = set()
        self._machine_ids: dict[str, str] = {}
        self._identities: dict[Key, AzureIdentity] = {}
        # per identity, computed once: (namespaced?, normalized resource ID, client ID)
        self._identity_info: dict[Key, tuple[bool, str, str]] = {}
        self._bindings: dict[Key, AzureIdentityBinding] = {}
        self._bindings_by_selector: dict[tuple[str, str], set[Key]] = {}
        self._bindings_by_labels: dict[str, set[Key]] = {}
        self._exceptions: dict[str, dict[str, AzurePodIdentityException]] = {}
        self._invalid: dict[tuple[str, str, str], str] = {}
        self._desired: dict[str, tuple[Desired, ...]] = {}
        self._desired_index: dict[Key, Desired] = {}
        self._desired_by_machine: dict[str, dict[Key, Desired]] = {}
        self._needed: dict[str, Counter[str]] = {}
        self._assigned: dict[Key, AssignedView] = {}
        self._assigned_machine: dict[Key, str] = {}
        self._assigned_by_machine: dict[str, set[Key]] = {}
        self._assigned_by_node: dict[str, set[Key]] = {}
        self._owned: dict[str, Counter[str]] = {}
        self._preexisting: dict[str, Counter[str]] = {}
        self._observed: dict[str, dict[str, str]] = {}
        # What changed since a machine was last planned: record keys, or everything.
        self._dirty: dict[str, set[Key]] = {}
        self._dirty_all: set[str] = set()

    # -- pods and nodes ------------------------------------------------------------------------

    def set_pod(self, obj: Mapping[str, Any]) -> set[str]:
        """Add or update a pod from its JSON."""
        pod = PodView.from_json(obj)
        key = pod.key
        old = self._pods.get(key)
        if old is not None:
            if old == pod:
                return set()
            self._pods_by_node.get(old.node, set()).discard(key)
        self._pods[key] = pod
        self._pods_by_ns.setdefault(pod.namespace, set()).add(key)
        if pod.node:
            self._pods_by_node.setdefault(pod.node, set()).add(key)
        return self._refresh_pod(key)

    def remove_pod(self, key: str) -> set[str]:
        """Forget the pod ``namespace/name``."""
        pod = self._pods.pop(key, None)
        if pod is None:
            return set()
        self._pods_by_ns.get(pod.namespace, set()).discard(key)
        self._pods_by_node.get(pod.node, set()).discard(key)
        return self._refresh_pod(key) | {self._node_machine.get(pod.node, "")}

    def set_node(self, obj: Mapping[str, Any]) -> set[str]:
        """Add or update a node from its JSON (its ``spec.providerID`` names its machine)."""
        name = (obj.get("metadata") or {}).get("name") or ""
        self._nodes.add(name)
        machine = machine_of_provider_id((obj.get("spec") or {}).get("providerID") or "")
        key = machine.key if machine is not None else ""
        if machine is not None:
            self._machine_ids.setdefault(key, str(machine))
        previous = self._node_machine.get(name)
        if previous == key:
            return set()
        self._node_machine[name] = key
        affected = {key, previous or ""}
        for pod_key in list(self._pods_by_node.get(name, ())):
            affected |= self._refresh_pod(pod_key)
        for record in list(self._assigned_by_node.get(name, ())):
            self._index_assigned(self._assigned[record])
        return affected

    def remove_node(self, name: str) -> set[str]:
        """A node is gone. Its machine stays known: records on it still need undoing."""
        self._nodes.discard(name)
        affected = {self._node_machine.get(name, "")}
        for pod_key in list(self._pods_by_node.get(name, ())):
            affected |= self._refresh_pod(pod_key)
        return affected

    # -- the four kinds ------------------------------------------------------------------------

    def _scope(self, namespace: str) -> str:
        return _ALL if self.rules.cluster_wide_bindings else namespace

    def _pods_in_scope(self, namespace: str) -> list[str]:
        if self.rules.cluster_wide_bindings:
            return list(self._pods)
        return list(self._pods_by_ns.get(namespace, ()))

    def _refresh_scope(self, namespace: str) -> set[str]:
        affected: set[str] = set()
        for pod_key in self._pods_in_scope(namespace):
            affected |= self._refresh_pod(pod_key)
        return affected

    def set_identity(self, identity: AzureIdentity) -> set[str]:
        """Add or update an AzureIdentity (skipped while it has error problems)."""
        key = (identity.namespace, identity.name)
        invalid_key = ("AzureIdentity", *key)
        reason = _errors(identity)
        if reason:
            self._invalid[invalid_key] = reason
            self._identities.pop(key, None)
        else:
            self._invalid.pop(invalid_key, None)
            if self._identities.get(key) == identity:
                return set()
            self._identities[key] = identity
            user_assigned = identity.type is IdentityType.USER_ASSIGNED_MSI
            self._identity_info[key] = (
                identity.is_namespaced,
                normalize_id(identity.resource_id) if user_assigned else "",
                identity.client_id.lower(),
            )
        return self._refresh_scope(identity.namespace)

    def remove_identity(self, namespace: str, name: str) -> set[str]:
        """Forget an AzureIdentity."""
        self._invalid.pop(("AzureIdentity", namespace, name), None)
        self._identity_info.pop((namespace, name), None)
        if self._identities.pop((namespace, name), None) is None:
            return set()
        return self._refresh_scope(namespace)

    def set_binding(self, binding: AzureIdentityBinding) -> set[str]:
        """Add or update an AzureIdentityBinding (skipped while it has error problems)."""
        key = (binding.namespace, binding.name)
        self._unindex_binding(key)
        invalid_key = ("AzureIdentityBinding", *key)
        reason = _errors(binding)
        if reason:
            self._invalid[invalid_key] = reason
        else:
            self._invalid.pop(invalid_key, None)
            self._bindings[key] = binding
            scope = self._scope(binding.namespace)
            if binding.selector:
                index = (scope, binding.selector)
                self._bindings_by_selector.setdefault(index, set()).add(key)
            else:
                self._bindings_by_labels.setdefault(scope, set()).add(key)
        return self._refresh_scope(binding.namespace)

    def remove_binding(self, namespace: str, name: str) -> set[str]:
        """Forget an AzureIdentityBinding."""
        self._invalid.pop(("AzureIdentityBinding", namespace, name), None)
        if not self._unindex_binding((namespace, name)):
            return set()
        return self._refresh_scope(namespace)

    def _unindex_binding(self, key: Key) -> bool:
        old = self._bindings.pop(key, None)
        if old is None:
            return False
        scope = self._scope(old.namespace)
        if old.selector:
            self._bindings_by_selector.get((scope, old.selector), set()).discard(key)
        else:
            self._bindings_by_labels.get(scope, set()).discard(key)
        return True

    def set_exception(self, exception: AzurePodIdentityException) -> set[str]:
        """Add or update an AzurePodIdentityException (it applies in its own namespace)."""
        invalid_key = ("AzurePodIdentityException", exception.namespace, exception.name)
        reason = _errors(exception)
        if reason:
            self._invalid[invalid_key] = reason
        else:
            self._invalid.pop(invalid_key, None)
        self._exceptions.setdefault(exception.namespace, {})[exception.name] = exception
        return self._refresh_pods(self._pods_by_ns.get(exception.namespace, ()))

    def remove_exception(self, namespace: str, name: str) -> set[str]:
        """Forget an AzurePodIdentityException."""
        self._invalid.pop(("AzurePodIdentityException", namespace, name), None)
        if self._exceptions.get(namespace, {}).pop(name, None) is None:
            return set()
        return self._refresh_pods(self._pods_by_ns.get(namespace, ()))

    def _refresh_pods(self, keys: Iterable[str]) -> set[str]:
        affected: set[str] = set()
        for key in list(keys):
            affected |= self._refresh_pod(key)
        return affected

    # -- records and machines ------------------------------------------------------------------

    def set_assigned(self, obj: Mapping[str, Any]) -> set[str]:
        """Add or update an AzureAssignedIdentity from its JSON."""
        view = AssignedView.from_json(obj)
        old_machine = self._unindex_assigned(view.key)
        self._assigned[view.key] = view
        self._assigned_by_node.setdefault(view.node, set()).add(view.key)
        machine = self._index_assigned(view)
        return {machine} if old_machine is None else {machine, old_machine}

    def remove_assigned(self, namespace: str, name: str) -> set[str]:
        """Forget an AzureAssignedIdentity."""
        machine = self._unindex_assigned((namespace, name))
        return set() if machine is None else {machine}

    def _index_assigned(self, view: AssignedView) -> str:
        self._unindex_machine(view.key)
        machine = self._node_machine.get(view.node, "")
        self._dirty.setdefault(machine, set()).add(view.key)
        self._assigned_machine[view.key] = machine
        self._assigned_by_machine.setdefault(machine, set()).add(view.key)
        if view.resource_id and view.identity_type == IdentityType.USER_ASSIGNED_MSI:
            if view.preexisting:
                self._preexisting.setdefault(machine, Counter())[view.resource_id] += 1
            elif view.client_id not in self.rules.immutable_identities:
                self._owned.setdefault(machine, Counter())[view.resource_id] += 1
        return machine

    def _unindex_machine(self, key: Key) -> str | None:
        machine = self._assigned_machine.pop(key, None)
        if machine is None:
            return None
        view = self._assigned[key]
        self._dirty.setdefault(machine, set()).add(key)
        self._assigned_by_machine.get(machine, set()).discard(key)
        if view.resource_id and view.identity_type == IdentityType.USER_ASSIGNED_MSI:
            counters = self._preexisting if view.preexisting else self._owned
            counter = counters.get(machine)
            if counter is not None and counter[view.resource_id] > 0:
                counter[view.resource_id] -= 1
                if not counter[view.resource_id]:
                    del counter[view.resource_id]
        return machine

    def _unindex_assigned(self, key: Key) -> str | None:
        if key not in self._assigned:
            return None
        machine = self._unindex_machine(key)
        view = self._assigned.pop(key)
        self._assigned_by_node.get(view.node, set()).discard(key)
        return machine

    def set_machine_identities(self, machine: str, identities: Mapping[str, str] | None) -> None:
        """Record the user-assigned identities seen on a machine: resource ID → client ID.

        ``None`` forgets them (unknown until read again). IDs are normalized here.
        """
        key = normalize_id(machine)
        self._machine_ids.setdefault(key, machine)
        before = self._observed.get(key)
        if identities is None:
            self._observed.pop(key, None)
        else:
            self._observed[key] = {
                normalize_id(rid): (cid or "").lower() for rid, cid in identities.items()
            }
        if self._observed.get(key) != before:
            self._dirty_all.add(key)

    def mark_dirty(self, machine: str, keys: Iterable[Key] | None = None) -> None:
        """Make the next incremental plan of ``machine`` look at ``keys`` again.

        ``keys`` are records' ``(namespace, name)``; ``None`` means all of the machine (after
        a failure to carry a plan out).
        """
        if keys is None:
            self._dirty_all.add(machine)
        else:
            self._dirty.setdefault(machine, set()).update(keys)

    def machine_identities(self, machine: str) -> Mapping[str, str] | None:
        """The identities last recorded on a machine, or ``None`` when unknown."""
        return self._observed.get(normalize_id(machine))

    def machine_id(self, machine: str) -> str:
        """The ARM ID of a machine as its node wrote it (for requests)."""
        return self._machine_ids.get(machine, machine)

    # -- desired state -------------------------------------------------------------------------

    def _refresh_pod(self, key: str) -> set[str]:
        affected: set[str] = set()
        for desired in self._desired.pop(key, ()):
            affected.add(desired.machine)
            self._dirty.setdefault(desired.machine, set()).add(desired.key)
            self._desired_index.pop(desired.key, None)
            self._desired_by_machine[desired.machine].pop(desired.key, None)
            if desired.resource_id:
                needed = self._needed[desired.machine]
                needed[desired.resource_id] -= 1
                if not needed[desired.resource_id]:
                    del needed[desired.resource_id]
        pod = self._pods.get(key)
        fresh = self._compute(pod) if pod is not None else ()
        if fresh:
            self._desired[key] = fresh
        for desired in fresh:
            affected.add(desired.machine)
            self._dirty.setdefault(desired.machine, set()).add(desired.key)
            self._desired_index[desired.key] = desired
            self._desired_by_machine.setdefault(desired.machine, {})[desired.key] = desired
            if desired.resource_id:
                self._needed.setdefault(desired.machine, Counter())[desired.resource_id] += 1
        if pod is not None and pod.node:
            affected.add(self._node_machine.get(pod.node, ""))
        return affected

    def _compute(self, pod: PodView) -> tuple[Desired, ...]:
        if not pod.node or pod.terminated or pod.node not in self._nodes:
            return ()
        labels = pod.labels
        for exception in self._exceptions.get(pod.namespace, {}).values():
            if exception.matches(labels):
                return ()
        scope = self._scope(pod.namespace)
        candidates = list(self._bindings_by_labels.get(scope, ()))
        selector = labels.get(BINDING_LABEL)
        if selector:
            candidates += self._bindings_by_selector.get((scope, selector), ())
        if not candidates:
            return ()
        if len(candidates) > 1:
            candidates.sort()
        machine = self._node_machine.get(pod.node, "")
        found: dict[str, Desired] = {}
        for binding_key in candidates:
            binding = self._bindings[binding_key]
            if not binding.matches(labels, service_account=pod.service_account):
                continue
            identity_key = (binding.namespace, binding.azure_identity)
            identity = self._identities.get(identity_key)
            if identity is None:
                continue
            namespaced, resource_id, client_id = self._identity_info[identity_key]
            if namespaced and identity_key[0] != pod.namespace:
                continue
            name = assigned_identity_name(pod.name, pod.namespace, identity_key[1])
            if name in found:
                continue
            found[name] = Desired.build(
                name=name,
                pod=pod.name,
                pod_namespace=pod.namespace,
                pod_uid=pod.uid,
                node=pod.node,
                machine=machine,
                identity=identity,
                binding=binding,
                resource_id=resource_id,
                client_id=client_id,
            )
        return tuple(found.values())

    def desired(self) -> dict[Key, Desired]:
        """Every desired assignment, by ``(namespace, name)`` of its record."""
        return dict(self._desired_index)

    def desired_for_pod(self, key: str) -> tuple[Desired, ...]:
        """The desired assignments of the pod ``namespace/name``."""
        return self._desired.get(key, ())

    @property
    def assigned(self) -> Mapping[Key, AssignedView]:
        """The AzureAssignedIdentities known, by ``(namespace, name)``."""
        return self._assigned

    @property
    def skipped(self) -> list[Skipped]:
        """Objects ignored because of their problems, or bindings whose identity is missing."""
        found = [
            Skipped(kind, ns, name, reason) for (kind, ns, name), reason in self._invalid.items()
        ]
        for (namespace, name), binding in self._bindings.items():
            if (namespace, binding.azure_identity) not in self._identities:
                reason = f"AzureIdentity {namespace}/{binding.azure_identity} not found"
                if ("AzureIdentity", namespace, binding.azure_identity) in self._invalid:
                    reason = f"AzureIdentity {namespace}/{binding.azure_identity} is invalid"
                found.append(Skipped("AzureIdentityBinding", namespace, name, reason))
        return sorted(found, key=lambda s: (s.kind, s.namespace, s.name))

    # -- planning ------------------------------------------------------------------------------

    def machines(self) -> set[str]:
        """Every machine with desired assignments or records (``""``: pods off Azure)."""
        return set(self._desired_by_machine) | set(self._assigned_by_machine)

    def needed_identities(self, machine: str) -> frozenset[str]:
        """Resource IDs that desired assignments need on ``machine`` (normalized)."""
        return frozenset(self._needed.get(machine, ()))

    def state_counts(self) -> dict[str, int]:
        """How many records are in each status (``""``: none yet)."""
        counts: Counter[str] = Counter()
        # Read from other threads too (a metrics scrape, an embedding program): list() copies
        # the values in one step under the GIL, where iterating the live dict could see it
        # change size mid-way.
        for view in list(self._assigned.values()):
            counts[view.state.value if view.state is not None else ""] += 1
        return dict(counts)

    def machine_change(self, machine: str) -> MachineChange:
        """Identities to add to and remove from ``machine`` (normalized ID)."""
        if not machine:
            return MachineChange("")
        needed = set(self._needed.get(machine, ()))
        owned = set(self._owned.get(machine, ())) - set(self._preexisting.get(machine, ()))
        protected = set(self.rules.protected_resource_ids)
        observed = self._observed.get(machine)
        immutable = self.rules.immutable_identities
        if observed is None:
            add = needed
            remove = owned - needed - protected
        else:
            protected |= {rid for rid, cid in observed.items() if cid in immutable}
            add = needed - observed.keys()
            remove = (owned & observed.keys()) - needed - protected
        return MachineChange(self.machine_id(machine), frozenset(add), frozenset(remove))

    def _preexisting_on(self, machine: str, resource_id: str) -> bool:
        observed = self._observed.get(machine)
        if not resource_id or observed is None or resource_id not in observed:
            return False
        if self._preexisting.get(machine, Counter())[resource_id] > 0:
            return True
        return self._owned.get(machine, Counter())[resource_id] == 0

    def plan(self, machines: Iterable[str] | None = None, *, incremental: bool = False) -> Plan:
        """The plan for some machines (normalized IDs), or for everything when ``None``.

        With ``incremental=True`` only what changed since each machine was last planned is
        looked at (the records and desired assignments touched since, or the whole machine
        after its observed identities changed or :meth:`mark_dirty`); a full plan looks at
        everything. Both forget what was marked, so a caller that fails to carry a plan out
        calls :meth:`mark_dirty`.
        """
        chosen = self.machines() if machines is None else set(machines)
        out = _PlanBuilder()
        for machine in sorted(chosen):
            change = self.machine_change(machine)
            if change:
                out.machines.append(change)
            marked = self._dirty.pop(machine, set())
            if incremental and machine not in self._dirty_all:
                keys = sorted(marked)
            else:
                self._dirty_all.discard(machine)
                keys = sorted(
                    self._desired_by_machine.get(machine, {}).keys()
                    | self._assigned_by_machine.get(machine, set())
                )
            for key in keys:
                self._plan_key(machine, key, change, out)
        return out.build()

    def _plan_key(self, machine: str, key: Key, change: MachineChange, out: _PlanBuilder) -> None:
        desired = self._desired_by_machine.get(machine, {}).get(key)
        existing = self._assigned.get(key)
        if desired is not None:
            if existing is None:
                out.creates.append((desired, self._preexisting_on(machine, desired.resource_id)))
            elif existing.deleting:
                pass  # recreated once the old record is gone
            elif existing.signature != desired.signature:
                pre = self._preexisting_on(machine, desired.resource_id)
                out.updates.append(AssignedUpdate(desired, existing, pre))
            else:
                observed = self._observed.get(machine)
                on_machine = not desired.needs_machine or (
                    observed is not None and desired.resource_id in observed
                )
                target = (
                    AssignedIdentityState.ASSIGNED if on_machine else AssignedIdentityState.CREATED
                )
                if existing.state is not target:
                    out.status.append(StatusChange(*key, target, existing))
        if existing is None or self._assigned_machine.get(key) != machine:
            return
        if not existing.deleting and key in self._desired_index:
            return
        if existing.resource_id and existing.resource_id in change.remove:
            if existing.state is not AssignedIdentityState.UNASSIGNED:
                out.status.append(StatusChange(*key, AssignedIdentityState.UNASSIGNED, existing))
        else:
            out.deletes.append(AssignedDelete(existing))


@attrs.define
class _PlanBuilder:
    creates: list[tuple[Desired, bool]] = attrs.field(factory=list)
    updates: list[AssignedUpdate] = attrs.field(factory=list)
    status: list[StatusChange] = attrs.field(factory=list)
    deletes: list[AssignedDelete] = attrs.field(factory=list)
    machines: list[MachineChange] = attrs.field(factory=list)

    def build(self) -> Plan:
        return Plan(
            creates=tuple(self.creates),
            updates=tuple(self.updates),
            status=tuple(self.status),
            deletes=tuple(self.deletes),
            machines=tuple(self.machines),
        )
