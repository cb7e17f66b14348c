"""Faults from the issue, each against the emulators; the invariant checker runs after each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
import pytest

from podidentity.reconciler import Controller, ControllerSettings
from podidentity.testing import Sandbox
from tests.e2e.test_controller import (
    FAST,
    OPERATION_DURATION,
    assigned,
    binding_manifest,
    check_invariants,
    identity_manifest,
    on_scale_set,
    pod_manifest,
    remember_baseline,
    setup_seed,
    states,
)
from tests.waiting import eventually


@pytest.fixture
def world() -> Iterator[Sandbox]:
    with Sandbox(operation_duration=OPERATION_DURATION) as sandbox:
        sandbox.add_node_pool("pool", count=2)
        remember_baseline(sandbox)
        yield sandbox


def pool_of(world: Sandbox) -> str:
    return next(iter(world.nodes.values())).compute.name


def started(world: Sandbox, settings: ControllerSettings = FAST) -> Controller:
    controller = world.start_controller(settings)
    asyncio.run(asyncio.wait_for(controller.wait_synced(), 60))
    return controller


def all_assigned(world: Sandbox, *names: str) -> bool:
    return states(world) == dict.fromkeys(names, "Assigned")


def test_dropped_watches_and_410_on_resume(world: Sandbox) -> None:
    setup_seed(world)
    controller = started(world)
    world.kube.drop_watches()
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    # The kubelet writes the pod's status on its own schedule, possibly after the controller
    # assigned it. A resume from the newest resourceVersion is valid (no 410, as on a real
    # server), so expire the window only once the cluster moved past what the pod informer
    # saw (the leader's lease renewals keep writing): its resume is then certainly too old.
    world.kube.wait_for_pod_running("a", namespace="default")
    pods = controller.informers["pods"]
    eventually(lambda: int(world.kube.resource_version) > int(pods.resource_version or 0))
    world.kube.expire_watch_window()
    world.kube.drop_watches()
    world.kube.create(pod_manifest("b", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id", "default/b-default-web-id"))
    assert controller.informers["pods"].lists >= 2
    check_invariants(world, controller)


def test_conflicts_on_status_writes_are_retried(world: Sandbox) -> None:
    setup_seed(world)
    world.kube.fail_next("azureassignedidentities", "patch", count=3, status=409)
    controller = started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    check_invariants(world, controller)


def test_arm_throttling_and_server_errors(world: Sandbox) -> None:
    identity = setup_seed(world)
    world.azure.arm.faults.fail_next(1, status=429, method="PATCH", retry_after=1)
    world.azure.arm.faults.fail_next(1, status=503, method="GET")
    controller = started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    assert identity.resource_id.lower() in on_scale_set(world, pool_of(world))
    errors = {
        (sample.labels["operation"], sample.labels["code"]): sample.value
        for metric in controller.metrics.registry.collect()
        if metric.name == "podidentity_arm_errors"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert sum(v for (op, _), v in errors.items() if op == "patch") >= 1
    assert sum(v for (op, _), v in errors.items() if op == "get") >= 1
    check_invariants(world, controller)


def test_an_arm_operation_that_fails_after_it_was_accepted(world: Sandbox) -> None:
    identity = setup_seed(world)
    # The PATCH is accepted (200, Updating); only polling its operation shows it Failed, and
    # the scale set is left as it was. The controller must not take acceptance for success.
    world.azure.arm.service.fail_next_operation("InternalExecutionError")
    controller = started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    assert identity.resource_id.lower() in on_scale_set(world, pool_of(world))
    patches = world.azure.arm.log.find(method="PATCH", path="virtualMachineScaleSets")
    assert len(patches) >= 2, "the failed write was not retried"
    failures = [
        sample
        for metric in controller.metrics.registry.collect()
        if metric.name == "podidentity_arm_errors"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.value
    ]
    assert [(f.labels, f.value) for f in failures] == [
        ({"operation": "operation", "code": "InternalExecutionError"}, 1.0)
    ]
    check_invariants(world, controller)


def test_an_identity_arm_refuses_does_not_block_the_others(world: Sandbox) -> None:
    setup_seed(world)
    bad = world.azure.world.add_managed_identity("bad-id")
    kept = world.azure.world.add_managed_identity("kept")
    world.azure.world.assign_identities(world.azure.world.vmss(pool_of(world)), [kept])
    world.azure.arm.service.fail_identity(bad, "LinkedAuthorizationFailed")
    world.kube.create(identity_manifest("bad-id", bad))
    world.kube.create(binding_manifest("bad-binding", "bad-id", "web"))
    started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))

    def good_assigned_bad_pending() -> bool:
        s = states(world)
        return (
            s.get("default/a-default-web-id") == "Assigned"
            and s.get("default/a-default-bad-id") == "Created"
        )

    eventually(good_assigned_bad_pending)
    live = on_scale_set(world, pool_of(world))
    assert kept.resource_id.lower() in live
    assert bad.resource_id.lower() not in live

    def warned() -> bool:
        events = world.kube.list("events", namespace="default")
        return any(
            e["reason"] == "AssignmentFailed" and e["involvedObject"]["name"] == "bad-id"
            for e in events
        )

    eventually(warned)
    # Once ARM lets it through, the refused identity is assigned too.
    world.azure.arm.service.clear_identity_failures()
    eventually(lambda: all_assigned(world, "default/a-default-web-id", "default/a-default-bad-id"))
    assert kept.resource_id.lower() in on_scale_set(world, pool_of(world))


def test_leader_stopped_between_arm_patch_and_status_write(world: Sandbox) -> None:
    identity = setup_seed(world)
    fault = world.kube.fail_next("azureassignedidentities", "patch", count=0, status=500)
    first = started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: identity.resource_id.lower() in on_scale_set(world, pool_of(world)))
    assert states(world) == {"default/a-default-web-id": ""}  # created, status never written
    world.stop_controllers()
    assert not first.is_leader
    world.kube.faults.remove(fault)
    second = started(world)
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    check_invariants(world, second)


def test_a_second_replica_takes_over(world: Sandbox) -> None:
    setup_seed(world)
    one = started(world)
    two = started(world)
    eventually(lambda: one.is_leader or two.is_leader)
    assert not (one.is_leader and two.is_leader)
    leader, follower = (one, two) if one.is_leader else (two, one)
    leader.stop()
    eventually(lambda: follower.is_leader)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    check_invariants(world, follower)


def test_node_deleted_while_its_pods_have_identities(world: Sandbox) -> None:
    identity = setup_seed(world)
    started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    node = world.kube.get("pods", "a", namespace="default")["spec"]["nodeName"]
    world.kube.delete("nodes", node)
    eventually(lambda: assigned(world) == {})
    eventually(lambda: identity.resource_id.lower() not in on_scale_set(world, pool_of(world)))


def test_pod_deleted_and_its_ip_reused(world: Sandbox) -> None:
    identity = setup_seed(world)
    controller = started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    # Deleted at once, so its IP is free for the very next pod while the controller may still
    # hold the old pod's record: the harder case (a graceful deletion only waits 30 s first).
    world.kube.delete("pods", "a", namespace="default", grace_period_seconds=0)
    world.kube.create(pod_manifest("b"))  # no label: may get the same IP, must get nothing
    eventually(lambda: assigned(world) == {})
    eventually(lambda: identity.resource_id.lower() not in on_scale_set(world, pool_of(world)))
    check_invariants(world, controller)


def test_drift_is_repaired_and_protected_identities_stay(world: Sandbox) -> None:
    identity = setup_seed(world)
    kubelet = world.azure.world.add_managed_identity("kubelet")
    scale_set = world.azure.world.vmss(pool_of(world))
    world.azure.world.assign_identities(scale_set, [kubelet])
    settings = attrs.evolve(FAST, arm_refresh_interval=0.5, resync_interval=0.5)
    controller = started(world, settings)
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    world.azure.world.unassign_identities(world.azure.world.vmss(pool_of(world)), [identity])
    eventually(lambda: identity.resource_id.lower() in on_scale_set(world, pool_of(world)))
    world.kube.delete("pods", "a", namespace="default", grace_period_seconds=0)
    eventually(lambda: identity.resource_id.lower() not in on_scale_set(world, pool_of(world)))
    # the identity that was there before podidentity stays; nothing else is left
    assert kubelet.resource_id.lower() in on_scale_set(world, pool_of(world))
    assert identity.resource_id.lower() not in on_scale_set(world, pool_of(world))
    assert controller.snapshot.desired() == {}


def test_managed_mode_makes_no_arm_calls(world: Sandbox) -> None:
    setup_seed(world)
    started(world, attrs.evolve(FAST, mode="managed"))
    world.kube.create(pod_manifest("a", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/a-default-web-id"))
    assert world.azure.arm.log.find(method="PATCH") == []
    assert world.azure.arm.log.find(method="GET") == []


def test_invalid_objects_are_reported_not_fatal(world: Sandbox) -> None:
    identity = setup_seed(world)
    broken = identity_manifest("broken", identity)
    broken["spec"]["clientID"] = "not-a-guid"
    world.kube.create(broken)
    world.kube.create(binding_manifest("to-broken", "broken", "broken"))
    unreadable = identity_manifest("unreadable", identity)
    unreadable["spec"]["ResourceID"] = unreadable["spec"]["resourceID"] + "-other"
    world.kube.create(unreadable)
    started(world)
    world.kube.create(pod_manifest("a", aadpodidbinding="broken"))
    world.kube.create(pod_manifest("b", aadpodidbinding="web"))
    eventually(lambda: all_assigned(world, "default/b-default-web-id"))

    def warned() -> set[str]:
        return {
            e["involvedObject"]["name"]
            for e in world.kube.list("events", namespace="default")
            if e["reason"] == "Skipped"
        }

    eventually(lambda: {"broken", "to-broken"} <= warned())

    def invalid() -> set[str]:
        return {
            e["involvedObject"]["name"]
            for e in world.kube.list("events", namespace="default")
            if e["reason"] == "InvalidSpec" and e["type"] == "Warning"
        }

    eventually(lambda: invalid() == {"unreadable"})
    assert assigned(world, "default").keys() == {"default/b-default-web-id"}
