"""Hypothesis: plans carried out reach the desired state and never remove protected identities."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podidentity.azure.ids import normalize_id
from podidentity.reconciler import PlanRules, Snapshot
from tests.reconciler.world import (
    FakeWorld,
    binding,
    guid,
    identity,
    identity_rid,
    node,
    pod,
    scale_set_id,
)

NAMESPACES = ["a", "b"]
IDENTITIES = [f"id{n}" for n in range(4)]
NODES = [("n0", "pool1", 0), ("n1", "pool1", 1), ("n2", "pool2", 0), ("n3", "pool2", 1)]
RIDS = {name: normalize_id(identity_rid(name)) for name in [*IDENTITIES, "kubelet"]}
CLIENTS = {RIDS[name]: guid(n) for n, name in enumerate([*IDENTITIES, "kubelet"])}

pods = st.lists(
    st.tuples(
        st.sampled_from(NAMESPACES),
        st.sampled_from([n for n, _, _ in NODES] + [""]),
        st.sampled_from(["s0", "s1", "s2", ""]),
        st.sampled_from(["default", "robot"]),
    ),
    max_size=12,
)
bindings = st.lists(
    st.tuples(
        st.sampled_from(NAMESPACES),
        st.sampled_from(IDENTITIES),
        st.sampled_from(["s0", "s1", "s2"]),
        st.booleans(),  # restrict to service account "robot"
    ),
    max_size=6,
)
preexisting = st.dictionaries(
    st.sampled_from(["pool1", "pool2"]),
    st.sets(st.sampled_from([*IDENTITIES, "kubelet"]), max_size=3),
)


def build(
    pod_specs: list[Any], binding_specs: list[Any], rules: PlanRules
) -> tuple[Snapshot, list[str]]:
    snap = Snapshot(rules)
    for name, pool, instance in NODES:
        snap.set_node(node(name, pool, instance))
    for ns in NAMESPACES:
        for n, name in enumerate(IDENTITIES):
            snap.set_identity(identity(name, ns, n))
    for index, (ns, ident, sel, robot) in enumerate(binding_specs):
        extra = {"serviceAccountNames": ["robot"]} if robot else {}
        snap.set_binding(binding(f"b{index}", ident, ns, selector=sel, **extra))
    keys = []
    for index, (ns, node_name, sel, sa) in enumerate(pod_specs):
        labels = {"aadpodidbinding": sel} if sel else {}
        snap.set_pod(pod(f"p{index}", ns, node_name, sa=sa, **labels))
        keys.append(f"{ns}/p{index}")
    return snap, keys


def check(world: FakeWorld, before: dict[str, set[str]], immutable_rids: set[str]) -> None:
    snap = world.snapshot
    desired = snap.desired()
    assert set(world.records) == set(desired)
    for key, d in desired.items():
        assert world.records[key]["status"] == {"status": "Assigned"}
        if d.needs_machine:
            assert d.resource_id in world.machine(d.machine)
    for pool, rids in before.items():
        machine = world.machine(scale_set_id(pool))
        assert {RIDS[name] for name in rids} <= set(machine), "removed a pre-existing identity"
    for machine_key, state in world.machines.items():
        needed = {d.resource_id for d in desired.values() if d.machine == machine_key}
        pool = machine_key.rsplit("/", 1)[-1]
        pre = {RIDS[name] for name in before.get(pool, set())}
        for rid in state:
            assert rid in needed or rid in pre or rid in immutable_rids, f"left {rid}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pods,
    bindings,
    preexisting,
    st.sets(st.sampled_from(IDENTITIES), max_size=1),
    st.data(),
)
def test_plans_converge_and_protect(
    pod_specs: list[Any],
    binding_specs: list[Any],
    before: dict[str, set[str]],
    immutable: set[str],
    data: st.DataObject,
) -> None:
    immutable_ids = {CLIENTS[RIDS[name]] for name in immutable}
    snap, keys = build(pod_specs, binding_specs, PlanRules(immutable_identities=immutable_ids))
    world = FakeWorld(snap)
    for pool, names in before.items():
        world.machine(scale_set_id(pool)).update({RIDS[n]: CLIENTS[RIDS[n]] for n in names})
    # Incremental plans (only what changed) must reach the same place as full ones.
    incremental = data.draw(st.booleans(), label="incremental")
    world.converge(CLIENTS, incremental=incremental)
    immutable_rids = {RIDS[name] for name in immutable}
    check(world, before, immutable_rids)
    # Then some pods go away or change labels, and a binding disappears.
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=4)) if keys else []:
        if data.draw(st.booleans()):
            snap.remove_pod(key)
        else:
            ns, name = key.split("/")
            label = data.draw(st.sampled_from(["s0", "s1"]))
            snap.set_pod(pod(name, ns, "n0", aadpodidbinding=label))
    if binding_specs and data.draw(st.booleans()):
        ns = binding_specs[0][0]
        snap.remove_binding(ns, "b0")
    world.converge(CLIENTS, incremental=incremental)
    check(world, before, immutable_rids)
    # A steady state plans nothing, and a full re-plan from scratch agrees.
    world.observe_all()
    assert not snap.plan()


@settings(max_examples=60, deadline=None)
@given(pods, bindings)
def test_incremental_equals_from_scratch(pod_specs: list[Any], binding_specs: list[Any]) -> None:
    # Feed objects in a different order (pods first): the desired state must not depend on it.
    snap, _ = build(pod_specs, binding_specs, PlanRules())
    other = Snapshot()
    for index, (ns, node_name, sel, sa) in enumerate(pod_specs):
        labels = {"aadpodidbinding": sel} if sel else {}
        other.set_pod(pod(f"p{index}", ns, node_name, sa=sa, **labels))
    for index, (ns, ident, sel, robot) in enumerate(binding_specs):
        extra = {"serviceAccountNames": ["robot"]} if robot else {}
        other.set_binding(binding(f"b{index}", ident, ns, selector=sel, **extra))
    for ns in NAMESPACES:
        for n, name in enumerate(IDENTITIES):
            other.set_identity(identity(name, ns, n))
    for name, pool, instance in NODES:
        other.set_node(node(name, pool, instance))
    assert other.desired() == snap.desired()
    assert other.plan() == snap.plan()
