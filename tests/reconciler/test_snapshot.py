"""The pure core: rules, protections and plans, without any server."""

from __future__ import annotations

import pytest

from podidentity.azure.ids import normalize_id
from podidentity.models import AssignedIdentityState as State
from podidentity.reconciler import MachineChange, PlanRules, Snapshot
from tests.reconciler.world import (
    FakeWorld,
    binding,
    exception,
    guid,
    identity,
    identity_rid,
    node,
    pod,
    scale_set_id,
)

POOL = normalize_id(scale_set_id("pool"))


def seeded(rules: PlanRules | None = None) -> Snapshot:
    snap = Snapshot(rules)
    snap.set_node(node("node-0", instance=0))
    snap.set_node(node("node-1", instance=1))
    snap.set_identity(identity("web-id", n=1))
    snap.set_binding(binding("web-binding", "web-id", selector="web"))
    return snap


def ids() -> dict[str, str]:
    return {normalize_id(identity_rid(f"{n}")): guid(0) for n in ("web-id", "other")}


def test_seed_walkthrough_creates_one_record_and_adds_the_identity() -> None:
    snap = seeded()
    affected = snap.set_pod(pod("app", aadpodidbinding="web"))
    assert affected == {POOL}
    plan = snap.plan()
    assert [(d.namespace, d.name) for d, _ in plan.creates] == [("default", "app-default-web-id")]
    assert plan.machines == (
        MachineChange(scale_set_id("pool"), add=frozenset({normalize_id(identity_rid("web-id"))})),
    )
    world = FakeWorld(snap)
    world.converge(ids())
    record = world.records[("default", "app-default-web-id")]
    assert record["status"] == {"status": "Assigned"}
    assert record["metadata"]["labels"]["nodename"] == "node-0"
    assert record["spec"]["podNamespace"] == "default"
    assert normalize_id(identity_rid("web-id")) in world.machine(POOL)


@pytest.mark.parametrize(
    "the_pod",
    [
        pod("other-ns", namespace="elsewhere", aadpodidbinding="web"),
        pod("no-label"),
        pod("wrong-label", aadpodidbinding="Web"),
        pod("unscheduled", node_name="", aadpodidbinding="web"),
        pod("done", phase="Succeeded", aadpodidbinding="web"),
        pod("unknown-node", node_name="node-9", aadpodidbinding="web"),
    ],
    ids=lambda p: p["metadata"]["name"],
)
def test_pods_that_get_nothing(the_pod: dict[str, object]) -> None:
    snap = seeded()
    snap.set_pod(the_pod)
    assert snap.desired() == {}
    assert not snap.plan()


def test_cluster_wide_bindings_serve_every_namespace_but_respect_namespaced_identities() -> None:
    snap = seeded(PlanRules(cluster_wide_bindings=True))
    snap.set_identity(
        identity("locked", n=2).__class__.from_dict(
            {
                "metadata": {
                    "name": "locked",
                    "namespace": "default",
                    "annotations": {"aadpodidentity.k8s.io/Behavior": "namespaced"},
                },
                "spec": {"type": 0, "resourceID": identity_rid("locked"), "clientID": guid(2)},
            }
        )
    )
    snap.set_binding(binding("locked-binding", "locked", selector="web"))
    snap.set_pod(pod("a", namespace="elsewhere", aadpodidbinding="web"))
    assert sorted(d.identity.name for d in snap.desired_for_pod("elsewhere/a")) == ["web-id"]
    snap.set_pod(pod("b", aadpodidbinding="web"))
    assert sorted(d.identity.name for d in snap.desired_for_pod("default/b")) == [
        "locked",
        "web-id",
    ]


def test_service_account_allow_list() -> None:
    snap = seeded()
    snap.set_binding(
        binding("web-binding", "web-id", selector="web", serviceAccountNames=["web-sa"])
    )
    snap.set_pod(pod("allowed", sa="web-sa", aadpodidbinding="web"))
    snap.set_pod(pod("denied", sa="default", aadpodidbinding="web"))
    assert [d.pod for d in snap.desired().values()] == ["allowed"]


def test_label_selector_bindings_and_exceptions() -> None:
    snap = seeded()
    snap.set_binding(
        binding("by-labels", "web-id", selector="", labelSelector={"matchLabels": {"tier": "x"}})
    )
    snap.set_pod(pod("p", tier="x"))
    assert [d.pod for d in snap.desired().values()] == ["p"]
    affected = snap.set_exception(exception("system", tier="X"))  # values case-insensitive
    assert affected == {POOL}
    assert snap.desired() == {}
    snap.remove_exception("default", "system")
    assert [d.pod for d in snap.desired().values()] == ["p"]


def test_objects_with_problems_are_skipped_with_a_reason() -> None:
    snap = seeded()
    snap.set_identity(identity("broken", n=3, clientID="not-a-guid"))
    snap.set_binding(binding("to-broken", "broken", selector="b"))
    snap.set_binding(binding("to-missing", "missing", selector="m"))
    snap.set_pod(pod("p", aadpodidbinding="b"))
    snap.set_pod(pod("q", aadpodidbinding="m"))
    assert snap.desired() == {}
    reasons = {(s.kind, s.name): s.reason for s in snap.skipped}
    assert "spec.clientID" in reasons[("AzureIdentity", "broken")]
    assert reasons[("AzureIdentityBinding", "to-broken")].endswith("is invalid")
    assert reasons[("AzureIdentityBinding", "to-missing")].endswith("not found")


def test_identity_is_removed_only_when_no_pod_on_the_machine_uses_it() -> None:
    snap = seeded()
    snap.set_pod(pod("a", node_name="node-0", aadpodidbinding="web"))
    snap.set_pod(pod("b", node_name="node-1", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    rid = normalize_id(identity_rid("web-id"))
    snap.remove_pod("default/a")
    plan = snap.plan()
    assert not plan.machines
    assert [d.existing.name for d in plan.deletes] == ["a-default-web-id"]
    world.apply(plan, ids())
    snap.remove_pod("default/b")
    plan = snap.plan()
    assert plan.machines == (MachineChange(scale_set_id("pool"), remove=frozenset({rid})),)
    assert [(s.name, s.state) for s in plan.status] == [("b-default-web-id", State.UNASSIGNED)]
    assert not plan.deletes  # the record stays until the identity is off the machine
    world.converge(ids())
    assert world.records == {}
    assert rid not in world.machine(POOL)


def test_never_removes_what_it_did_not_add() -> None:
    kubelet = normalize_id(identity_rid("kubelet"))
    immutable = normalize_id(identity_rid("immutable"))
    snap = seeded(PlanRules(immutable_identities={guid(7).upper()}))
    snap.set_identity(identity("immutable", n=7))
    snap.set_binding(binding("imm", "immutable", selector="web"))
    world = FakeWorld(snap)
    rid = normalize_id(identity_rid("web-id"))
    # Before podidentity: the kubelet identity and web-id are on the scale set already.
    world.machine(POOL).update({kubelet: guid(9), rid: guid(1)})
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world.converge({immutable: guid(7)})
    record = world.records[("default", "a-default-web-id")]
    assert record["metadata"]["annotations"] == {"podidentity.k8s.io/preexisting": "true"}
    snap.remove_pod("default/a")
    world.converge({})
    assert set(world.machine(POOL)) == {kubelet, rid, immutable}
    assert world.records == {}


def test_protected_resource_ids_stay() -> None:
    rid = normalize_id(identity_rid("web-id"))
    snap = seeded(PlanRules(protected_resource_ids={identity_rid("web-id").upper()}))
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    snap.remove_pod("default/a")
    world.converge(ids())
    assert rid in world.machine(POOL)


def test_resource_id_change_moves_assignments() -> None:
    snap = seeded()
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    old = normalize_id(identity_rid("web-id"))
    new = normalize_id(identity_rid("web-id-2"))
    snap.set_identity(identity("web-id", n=4, resourceID=identity_rid("web-id-2")))
    plan = snap.plan()
    assert [u.desired.name for u in plan.updates] == ["a-default-web-id"]
    assert plan.updates[0].resets_status
    assert plan.machines == (
        MachineChange(scale_set_id("pool"), add=frozenset({new}), remove=frozenset({old})),
    )
    world.converge(ids())
    assert set(world.machine(POOL)) == {new}
    assert world.records[("default", "a-default-web-id")]["status"] == {"status": "Assigned"}


def test_label_change_moves_the_pod_to_the_binding_it_now_matches() -> None:
    snap = seeded()
    snap.set_identity(identity("db-id", n=5))
    snap.set_binding(binding("db-binding", "db-id", selector="db"))
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    snap.set_pod(pod("a", aadpodidbinding="db"))
    world.converge(ids())
    assert list(world.records) == [("default", "a-default-db-id")]
    assert set(world.machine(POOL)) == {normalize_id(identity_rid("db-id"))}


def test_node_deleted_keeps_its_machine_known_so_identities_come_off() -> None:
    snap = seeded()
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    snap.remove_node("node-0")
    world.converge(ids())
    assert world.records == {}
    assert world.machine(POOL) == {}


def test_resource_ids_compare_case_insensitively() -> None:
    snap = seeded()
    snap.set_pod(pod("a", aadpodidbinding="web"))
    lower = identity_rid("web-id").replace("resourceGroups", "resourcegroups").lower()
    snap.set_machine_identities(scale_set_id("pool").lower(), {lower: guid(1)})
    plan = snap.plan()
    assert not plan.machines
    assert plan.creates[0][1] is True  # it was there before: pre-existing


def test_non_machine_identities_are_assigned_without_arm() -> None:
    snap = seeded()
    snap.set_identity(identity("fed", n=6, type=3, resourceID="", tenantID=guid(8)))
    snap.set_binding(binding("fed-b", "fed", selector="fed"))
    snap.set_pod(pod("a", aadpodidbinding="fed"))
    world = FakeWorld(snap)
    world.converge({})
    assert world.arm_calls == 0
    assert world.records[("default", "a-default-fed")]["status"] == {"status": "Assigned"}


def test_batches_respect_the_arm_limit() -> None:
    change = MachineChange(
        "m",
        add=frozenset(f"/a{i}" for i in range(200)),
        remove=frozenset(f"/r{i}" for i in range(120)),
    )
    batches = list(change.batches(150))
    assert [len(b.add) + len(b.remove) for b in batches] == [150, 150, 20]
    assert frozenset().union(*(b.add for b in batches)) == change.add
    assert frozenset().union(*(b.remove for b in batches)) == change.remove
    with pytest.raises(ValueError, match="at least 1"):
        list(change.batches(0))


def test_deleting_records_are_finalized_and_recreated() -> None:
    snap = seeded()
    snap.set_pod(pod("a", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    body = world.records[("default", "a-default-web-id")]
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    snap.set_assigned(body)
    plan = snap.plan()
    assert [d.existing.name for d in plan.deletes] == ["a-default-web-id"]
    assert not plan.machines  # the pod still needs the identity
    world.apply(plan, ids())
    plan = snap.plan()
    assert [d.name for d, _ in plan.creates] == ["a-default-web-id"]


def test_incremental_plans_look_only_at_what_changed() -> None:
    snap = seeded()
    for index in range(20):
        snap.set_pod(pod(f"p{index}", node_name=f"node-{index % 2}", aadpodidbinding="web"))
    world = FakeWorld(snap)
    world.converge(ids())
    assert not snap.plan(incremental=True)
    affected = snap.set_pod(pod("new", aadpodidbinding="web"))
    plan = snap.plan(affected, incremental=True)
    assert [d.name for d, _ in plan.creates] == ["new-default-web-id"]
    assert not plan.status
    assert not plan.deletes
    assert not snap.plan(affected, incremental=True)  # consumed
    snap.mark_dirty(POOL)
    assert [d.name for d, _ in snap.plan([POOL], incremental=True).creates] == [
        "new-default-web-id"
    ]
