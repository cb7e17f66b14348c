"""Builders of pods, nodes and the four kinds, and an in-memory executor of plans."""

from __future__ import annotations

import uuid
from typing import Any

from podidentity.azure.ids import normalize_id
from podidentity.models import AzureIdentity, AzureIdentityBinding, AzurePodIdentityException
from podidentity.reconciler import Plan, Snapshot

SUB = "00000000-0000-0000-0000-000000000001"
RG = "MC_rg_cluster_eastus"


def guid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def identity_rid(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/identities/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )


def scale_set_id(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
        f"virtualMachineScaleSets/{name}"
    )


def node(name: str, scale_set: str = "pool", instance: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"providerID": f"azure://{scale_set_id(scale_set)}/virtualMachines/{instance}"},
    }


def pod(
    name: str,
    namespace: str = "default",
    node_name: str = "node-0",
    *,
    sa: str = "default",
    phase: str = "Running",
    **labels: str,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "labels": dict(labels),
        },
        "spec": {"nodeName": node_name, "serviceAccountName": sa},
        "status": {"phase": phase},
    }


def identity(name: str, namespace: str = "default", n: int = 0, **spec: Any) -> AzureIdentity:
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": 0, "resourceID": identity_rid(name), "clientID": guid(n), **spec},
    }
    return AzureIdentity.from_dict(body)


def binding(
    name: str,
    identity_name: str,
    namespace: str = "default",
    selector: str | None = None,
    **spec: Any,
) -> AzureIdentityBinding:
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "azureIdentity": identity_name,
            "selector": identity_name if selector is None else selector,
            **spec,
        },
    }
    return AzureIdentityBinding.from_dict(body)


def exception(name: str, namespace: str = "default", **labels: str) -> AzurePodIdentityException:
    return AzurePodIdentityException.from_dict(
        {"metadata": {"name": name, "namespace": namespace}, "spec": {"podLabels": labels}}
    )


class FakeWorld:
    """Carries plans out in memory: records in a dict, identities per machine."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.machines: dict[str, dict[str, str]] = {}
        self.arm_calls = 0

    def machine(self, machine_id: str) -> dict[str, str]:
        return self.machines.setdefault(normalize_id(machine_id), {})

    def observe_all(self) -> None:
        for machine in self.snapshot.machines():
            if machine:
                self.snapshot.set_machine_identities(machine, dict(self.machine(machine)))

    def apply(self, plan: Plan, client_ids: dict[str, str]) -> None:
        for desired, pre in plan.creates:
            body = desired.to_object(preexisting=pre)
            self.records[desired.key] = body
            self.snapshot.set_assigned(body)
        for update in plan.updates:
            body = update.desired.to_object(preexisting=update.preexisting)
            self.records[update.desired.key] = body
            self.snapshot.set_assigned(body)
        for change in plan.machines:
            for batch in change.batches(150):
                self.arm_calls += 1
                state = self.machine(change.machine)
                for rid in batch.add:
                    state[rid] = client_ids.get(rid, "")
                for rid in batch.remove:
                    state.pop(rid, None)
            self.snapshot.set_machine_identities(change.machine, dict(self.machine(change.machine)))
        for status in plan.status:
            body = self.records[(status.namespace, status.name)]
            body["status"] = {"status": status.state.value}
            self.snapshot.set_assigned(body)
        for delete in plan.deletes:
            self.records.pop(delete.existing.key, None)
            self.snapshot.remove_assigned(*delete.existing.key)

    def converge(
        self, client_ids: dict[str, str], rounds: int = 6, *, incremental: bool = False
    ) -> int:
        """Plan and apply until the plan is empty; return how many rounds it took."""
        for index in range(rounds):
            self.observe_all()
            plan = self.snapshot.plan(incremental=incremental)
            if not plan:
                return index
            self.apply(plan, client_ids)
        raise AssertionError(f"no fixed point after {rounds} rounds: {self.snapshot.plan()}")
