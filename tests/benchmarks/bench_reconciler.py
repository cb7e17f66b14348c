"""The reconciler: the pure core's plans, and converging pods against the emulators.

Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_reconciler.py -s -o python_files='bench_*.py'``.

- feeding 20,000 pods (2,000 bindings and identities in 100 namespaces, 500 nodes in 50 scale
  sets) into a :class:`~podidentity.reconciler.Snapshot`, against ``json.loads`` of the same
  pods (what any client pays to read them);
- a full plan over that snapshot (first pass, and steady state), and the re-plan after one pod
  event (``set_pod`` + ``plan`` of the affected machine);
- how the full plan grows from 2,000 to 200,000 pods (200,000 skipped in quick mode);
- converging 1,000 new pods on 50 nodes in 10 scale sets with the real controller in the
  sandbox: wall time, ARM requests (GET and PATCH), ARM requests on a steady-state resync,
  Kubernetes API requests per pod;
- latency from creating a pod (scheduled and started by the emulator) to its
  AzureAssignedIdentity ``Assigned``, one pod at a time, ARM answering at once: p50 / p99.

Nothing is asserted about time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from typing import Any

import pytest

from podidentity.reconciler import ControllerSettings, Snapshot
from tests.benchmarks.conftest import results_directory
from tests.benchmarks.harness import Case, Suite, percentile, quick
from tests.e2e.test_controller import setup_seed
from tests.reconciler.world import FakeWorld, binding, identity, node, pod


def build(
    pods: int, bindings: int = 2_000, nodes: int = 500, namespaces: int = 100, pools: int = 50
) -> tuple[Snapshot, list[dict[str, Any]]]:
    snapshot = Snapshot()
    for i in range(nodes):
        snapshot.set_node(node(f"node-{i}", f"pool{i % pools}", i // pools))
    for i in range(bindings):
        ns = f"ns{i % namespaces}"
        snapshot.set_identity(identity(f"id{i}", ns, i))
        snapshot.set_binding(binding(f"b{i}", f"id{i}", ns, selector=f"sel{i}"))
    objects = [
        pod(
            f"p{i}",
            f"ns{(i % bindings) % namespaces}",
            f"node-{i % nodes}",
            aadpodidbinding=f"sel{i % bindings}",
        )
        for i in range(pods)
    ]
    return snapshot, objects


def fed(pods: int) -> Snapshot:
    snapshot, objects = build(pods)
    for obj in objects:
        snapshot.set_pod(obj)
    return snapshot


def steady(pods: int) -> Snapshot:
    snapshot = fed(pods)
    world = FakeWorld(snapshot)
    world.converge({})
    return snapshot


@pytest.mark.timeout(1800)
def test_pure_core(bench: Suite) -> None:
    size = 2_000 if quick() else 20_000
    _, objects = build(size)
    text = json.dumps(objects)

    empty: list[Snapshot] = []

    def fresh_snapshot() -> None:
        empty[:] = [build(0)[0]]  # nodes, identities and bindings: outside the timed section

    def feed() -> None:
        snapshot = empty[0]
        for obj in objects:
            snapshot.set_pod(obj)

    bench.compare(
        f"feed {size:,} pods into a snapshot",
        Case("Snapshot.set_pod x N", feed, setup=fresh_snapshot),
        Case("json.loads of the pods", lambda: json.loads(text)),
        note="2,000 bindings/identities, 100 namespaces, 500 nodes, 50 scale sets",
    )
    first = fed(size)
    bench.measure(f"full plan, {size:,} pods, nothing assigned yet", first.plan)
    settled = steady(size)
    bench.measure(f"full plan, {size:,} pods, steady state (empty plan)", settled.plan)
    # Each call is two events, a pod added and then deleted, so the snapshot keeps its size.
    new_pod = pod("new", "ns5", "node-7", aadpodidbinding="sel5")

    def two_events(incremental: bool) -> None:
        settled.plan(settled.set_pod(new_pod), incremental=incremental)
        settled.plan(settled.remove_pod("ns5/new"), incremental=incremental)

    bench.measure(
        f"two pod events (add, delete), each set_pod + incremental plan ({size:,} pods)",
        lambda: two_events(True),
    )
    bench.measure(
        f"two pod events (add, delete), each set_pod + full plan of its machine ({size:,} pods)",
        lambda: two_events(False),
        note=f"{size // 50:,} pods per scale set",
    )


@pytest.mark.timeout(1800)
def test_growth(bench: Suite) -> None:
    sizes = (2_000, 20_000) if quick() else (2_000, 20_000, 200_000)
    for size in sizes:
        snapshot = fed(size)
        bench.measure(f"full plan, {size:,} pods (first pass)", snapshot.plan)


@pytest.mark.timeout(1800)
def test_converge_against_the_emulators(request: pytest.FixtureRequest) -> None:
    """One run (a fresh world each time is the point); figures go to the results JSON."""
    from podidentity.testing import Sandbox

    pods = 100 if quick() else 1_000
    suite = Suite("reconciler_converge", rounds=1, clock=time.perf_counter)
    figures: dict[str, Any] = {}

    def scenario() -> None:
        with Sandbox() as world:
            for index in range(10):
                world.add_node_pool(f"p{index}", count=5)
            setup_seed(world)  # identity "web-id", bound to pods labelled "web"
            controller = world.start_controller(
                ControllerSettings(resync_interval=1.0, leader_election=False)
            )
            asyncio.run(controller.wait_synced())
            kube_before = len(world.kube.requests)
            started = time.perf_counter()
            for index in range(pods):
                world.kube.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"p{index}",
                            "namespace": "default",
                            "labels": {"aadpodidbinding": "web"},
                        },
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    }
                )
            while True:
                counts = controller.snapshot.state_counts()
                if counts.get("Assigned", 0) >= pods:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            arm = world.azure.arm.log
            figures.update(
                pods=pods,
                nodes=50,
                scale_sets=10,
                seconds=round(elapsed, 2),
                arm_get=len(arm.find(method="GET")),
                arm_patch=len(arm.find(method="PATCH")),
                kube_requests_per_pod=round((len(world.kube.requests) - kube_before) / pods, 2),
            )
            arm_before = len(arm)
            reconciles = controller.reconciles
            while controller.reconciles < reconciles + 20:  # two resyncs of 10 machines
                time.sleep(0.05)
            figures["arm_requests_on_resync"] = len(arm) - arm_before

    suite.measure(f"converge {pods:,} pods on 50 nodes / 10 scale sets", scenario)
    note = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nconverge: {note}")
    suite.results[-1] = dataclasses.replace(suite.results[-1], note=note)
    print(suite.table())
    suite.write(results_directory(request.config), merge=True)


@pytest.mark.timeout(1800)
def test_latency_to_assigned(request: pytest.FixtureRequest) -> None:
    """p50 / p99 from pod creation to ``Assigned``, seen through a watch in the test."""
    import threading

    import kubernetes

    from podidentity.testing import Sandbox

    pods = 30 if quick() else 200
    suite = Suite("reconciler_latency", rounds=1, clock=time.perf_counter)
    latencies: list[float] = []
    from_running: list[float] = []

    def scenario() -> None:
        # ARM answers at once (the condition): what remains is the controller's own
        # latency plus the emulator's scheduler and kubelet steps.
        with Sandbox(operation_duration=0) as world:
            world.add_node_pool("p", count=3)
            setup_seed(world)  # identity "web-id", bound to pods labelled "web"
            controller = world.start_controller(ControllerSettings(leader_election=False))
            asyncio.run(controller.wait_synced())
            for found in (latencies, from_running):
                found.clear()  # the harness's warm-up run went first; keep the timed run's
            assigned_at: dict[str, float] = {}
            running_at: dict[str, float] = {}
            arrived = threading.Condition()
            api = world.kube_client()
            custom = kubernetes.client.CustomObjectsApi(api)
            watch = kubernetes.watch.Watch()

            def watcher() -> None:
                with contextlib.suppress(Exception):  # the stream ends with the sandbox
                    watch_assigned()

            def pod_watcher() -> None:
                with contextlib.suppress(Exception):  # the stream ends with the sandbox
                    for event in pod_watch.stream(
                        core.list_namespaced_pod, "default", timeout_seconds=600
                    ):
                        pod = event["object"]
                        if pod.status and pod.status.phase == "Running":
                            with arrived:
                                running_at.setdefault(pod.metadata.name, time.perf_counter())
                                arrived.notify_all()

            def watch_assigned() -> None:
                for event in watch.stream(
                    custom.list_namespaced_custom_object,
                    "aadpodidentity.k8s.io",
                    "v1",
                    "default",
                    "azureassignedidentities",
                    timeout_seconds=600,
                ):
                    obj = event["object"]
                    if (obj.get("status") or {}).get("status") == "Assigned":
                        with arrived:
                            assigned_at.setdefault(obj["spec"]["pod"], time.perf_counter())
                            arrived.notify_all()

            core = kubernetes.client.CoreV1Api(api)
            pod_watch = kubernetes.watch.Watch()
            for target in (watcher, pod_watcher):
                threading.Thread(target=target, daemon=True).start()
            for index in range(pods):
                name = f"p{index}"
                created = time.perf_counter()
                world.kube.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": name,
                            "namespace": "default",
                            "labels": {"aadpodidbinding": "web"},
                        },
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    }
                )
                with arrived:
                    arrived.wait_for(
                        lambda name=name: name in assigned_at and name in running_at, timeout=60
                    )
                latencies.append(assigned_at[name] - created)
                # The controller may assign a scheduled pod before the kubelet reports it
                # Running: then a running pod waited no time for its identity.
                from_running.append(max(0.0, assigned_at[name] - running_at[name]))
            watch.stop()
            pod_watch.stop()
            api.close()

    suite.measure(f"{pods} pods, one at a time, until each is Assigned", scenario)

    def summary(values: list[float]) -> str:
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"

    note = (
        f"created -> Assigned: {summary(latencies)}; Running -> Assigned: {summary(from_running)}"
    )
    print(f"\nlatency: {note}")
    suite.results[-1] = dataclasses.replace(suite.results[-1], note=note)
    print(suite.table())
    suite.write(results_directory(request.config), merge=True)
