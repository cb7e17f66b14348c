"""A pod's life as on a real cluster: Pending, binding, kubelet writes, graceful deletion.

Everything goes through the official clients (sync, asyncio, kubectl) over HTTP; time for
grace periods comes from a ``ManualClock``, so nothing here waits 30 seconds.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.azure import ManualClock
from podidentity.testing.kube import KubeEmulator
from tests.kubectl import run_kubectl
from tests.testing.kube.aio_client import aio_api_client

FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_900_000_000.0)


@pytest.fixture
def kube(clock: ManualClock) -> Iterator[KubeEmulator]:
    with KubeEmulator(clock=clock) as emulator:
        emulator.cluster.add_node("n1")
        yield emulator


@pytest.fixture
def core(kube: KubeEmulator) -> Iterator[kubernetes.client.CoreV1Api]:
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    yield kubernetes.client.CoreV1Api(client)
    client.close()


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions") or []}


class Recorder:
    """Every watch event of one pod, raw (``_preload_content=False``), on a background thread."""

    def __init__(self, core: kubernetes.client.CoreV1Api, name: str, since: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._response = core.list_namespaced_pod(
            "default",
            watch=True,
            field_selector=f"metadata.name={name}",
            resource_version=since,
            _preload_content=False,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when the test closes it
            for line in self._response.stream(decode_content=True):
                for raw in line.splitlines():
                    if raw.strip():
                        event = json.loads(raw)
                        self.events.append((event["type"], event["object"]))

    def close(self) -> None:
        # Shut the socket down so the reader thread ends, then close it: releasing a
        # connection mid-stream hands it back to the pool still open, and it is collected
        # later as an unclosed socket (an error under filterwarnings=error).
        self._response.shutdown()
        self._thread.join(timeout=10)
        self._response.close()
        self._response.release_conn()


def test_a_created_pod_is_pending_then_bound_then_started_in_separate_writes(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    created = core.create_namespaced_pod("default", pod("p"))
    assert created.status.phase == "Pending"
    assert created.spec.node_name is None
    assert created.status.pod_ip is None
    assert created.status.host_ip is None
    watch = kubernetes.watch.Watch()
    seen: list[dict[str, Any]] = []
    for event in watch.stream(
        core.list_namespaced_pod,
        "default",
        field_selector="metadata.name=p",
        resource_version=created.metadata.resource_version,
        timeout_seconds=30,
    ):
        assert event["type"] == "MODIFIED"
        seen.append(event["raw_object"])
        if event["raw_object"]["status"].get("phase") == "Running":
            watch.stop()
    bound, accepted, sandbox, started = seen
    # 1. The scheduler's binding: nodeName and PodScheduled, nothing from a kubelet yet.
    assert bound["spec"]["nodeName"] == "n1"
    assert conditions(bound) == {"PodScheduled": "True"}
    assert "hostIP" not in bound["status"]
    # 2. The kubelet admits it: hostIP and startTime, containers being created, no pod IP.
    assert accepted["status"]["phase"] == "Pending"
    assert accepted["status"]["hostIP"] == accepted["status"]["hostIPs"][0]["ip"]
    assert "podIP" not in accepted["status"]
    assert conditions(accepted)["Initialized"] == "True"
    assert conditions(accepted)["Ready"] == "False"
    waiting = accepted["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    # 3. The sandbox gets its network: the pod IP.
    assert sandbox["status"]["podIP"] == sandbox["status"]["podIPs"][0]["ip"]
    assert sandbox["status"]["phase"] == "Pending"
    assert conditions(sandbox)["PodReadyToStartContainers"] == "True"
    # 4. Containers run and are ready.
    assert started["status"]["phase"] == "Running"
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conditions(started)[kind] == "True"
    assert started["status"]["startTime"] == accepted["status"]["startTime"]
    versions = [int(o["metadata"]["resourceVersion"]) for o in seen]
    assert versions == sorted(set(versions))


def test_the_start_delay_is_a_setting_and_zero_still_writes_separately(
    core: kubernetes.client.CoreV1Api,
) -> None:
    with KubeEmulator(pod_start_delay=0) as quick:
        quick.cluster.add_node("n1")
        client = kubernetes.config.new_client_from_config(config_file=str(quick.kubeconfig_path))
        try:
            api = kubernetes.client.CoreV1Api(client)
            created = api.create_namespaced_pod("default", pod("p"))
            assert created.status.phase == "Pending"
            started = quick.wait_for_pod_running("p")
            assert (
                int(started["metadata"]["resourceVersion"]) - int(created.metadata.resource_version)
                == 4
            )
        finally:
            client.close()
    with pytest.raises(ValueError, match="pod_start_delay"):
        KubeEmulator(pod_start_delay=-1)


def test_clients_can_bind_a_pod_and_a_second_binding_is_a_conflict(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    kube.cluster.set_node_ready("n1", False)  # the scheduler leaves the pod to us
    core.create_namespaced_pod("default", pod("p"))
    kube.settle()
    assert core.read_namespaced_pod("p", "default").spec.node_name is None
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    # The server answers with a Status, which the generated V1Binding model cannot hold.
    response = core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert response.status == 201
    assert json.loads(response.data)["status"] == "Success"
    response.release_conn()
    assert kube.wait_for_pod_running("p")["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert caught.value.status == 409
    body = json.loads(caught.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1"'
    )
    # The older collection form names the pod in the Binding itself.
    core.create_namespaced_pod("default", pod("legacy"))
    legacy = {**binding, "metadata": {"name": "legacy"}}
    response = core.create_namespaced_binding("default", legacy, _preload_content=False)
    assert response.status == 201
    assert json.loads(response.data)["status"] == "Success"
    response.release_conn()
    assert kube.wait_for_pod_running("legacy")["spec"]["nodeName"] == "n1"
    bad = {**binding, "metadata": {"name": "q"}, "target": {"kind": "Service", "name": "x"}}
    core.create_namespaced_pod("default", pod("q"))
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_binding("q", "default", bad, _preload_content=False)
    assert refused.value.status == 422
    assert 'target.kind: Unsupported value: "Service"' in json.loads(refused.value.body)["message"]


def test_deletion_is_graceful_and_the_clock_ends_it(
    kube: KubeEmulator, clock: ManualClock, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("p"))
    before = kube.wait_for_pod_running("p")
    recorder = Recorder(core, "p", before["metadata"]["resourceVersion"])
    try:
        deleting = core.delete_namespaced_pod("p", "default")
        assert deleting.metadata.deletion_grace_period_seconds == 30
        assert deleting.metadata.deletion_timestamp.timestamp() == pytest.approx(
            clock() + 30, abs=1
        )
        clock.advance(29)
        kube.settle()
        still = core.read_namespaced_pod("p", "default")
        assert still.metadata.deletion_timestamp is not None
        assert still.status.phase == "Running"
        clock.advance(1)
        kube.settle()
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_pod("p", "default")
        assert caught.value.status == 404
        kube.wait_for("pods", "p", lambda _: len(recorder.events) >= 3, namespace="default")
    finally:
        recorder.close()
    (first, deleting_obj), (second, killed), (third, _) = recorder.events[:3]
    assert (first, second, third) == ("MODIFIED", "MODIFIED", "DELETED")
    assert deleting_obj["metadata"]["deletionGracePeriodSeconds"] == 30
    assert deleting_obj["status"]["phase"] == "Running"
    # The grace period ran out: the kubelet killed the containers and reports it first.
    assert killed["status"]["phase"] == "Failed"
    assert conditions(killed)["Ready"] == "False"
    state = killed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 137


def test_grace_periods_come_from_the_pod_or_the_request(
    kube: KubeEmulator, clock: ManualClock, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("short", terminationGracePeriodSeconds=5))
    core.create_namespaced_pod("default", pod("now"))
    core.create_namespaced_pod("default", pod("forced"))
    for name in ("short", "now", "forced"):
        kube.wait_for_pod_running(name)
    assert (
        core.delete_namespaced_pod("short", "default").metadata.deletion_grace_period_seconds == 5
    )
    core.delete_namespaced_pod("now", "default", grace_period_seconds=0)
    # A second DELETE may bring a pending deletion forward: --grace-period=0 --force.
    core.delete_namespaced_pod("forced", "default")
    core.delete_namespaced_pod(
        "forced", "default", body=kubernetes.client.V1DeleteOptions(grace_period_seconds=0)
    )
    names = {p.metadata.name for p in core.list_namespaced_pod("default").items}
    assert names == {"short"}
    clock.advance(5)
    kube.settle()
    assert core.list_namespaced_pod("default").items == []


def test_an_unscheduled_pod_is_deleted_at_once(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("nowhere", nodeSelector={"pool": "none"}))
    gone = core.delete_namespaced_pod("nowhere", "default")
    assert gone.metadata.deletion_timestamp is None
    assert core.list_namespaced_pod("default").items == []


def test_finalizers_hold_a_pod_past_its_grace_period(
    kube: KubeEmulator, clock: ManualClock, core: kubernetes.client.CoreV1Api
) -> None:
    manifest = pod("held")
    manifest["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_pod("default", manifest)
    kube.wait_for_pod_running("held")
    core.delete_namespaced_pod("held", "default")
    # Finalizers removed during the grace period: the kubelet still has the last word.
    core.patch_namespaced_pod("held", "default", {"metadata": {"finalizers": None}})
    assert core.read_namespaced_pod("held", "default").metadata.deletion_timestamp
    clock.advance(30)
    kube.settle()
    assert core.list_namespaced_pod("default").items == []

    core.create_namespaced_pod("default", manifest)
    kube.wait_for_pod_running("held")
    core.delete_namespaced_pod("held", "default")
    clock.advance(30)
    kube.settle()
    held = core.read_namespaced_pod("held", "default")
    assert held.metadata.deletion_grace_period_seconds == 0
    core.patch_namespaced_pod("held", "default", {"metadata": {"finalizers": None}})
    assert core.list_namespaced_pod("default").items == []


def test_immutable_pod_fields_are_refused_with_the_real_message(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod(
        "default", pod("p", tolerations=[{"key": "a", "operator": "Exists"}])
    )
    kube.wait_for_pod_running("p")
    for change in (
        {"spec": {"containers": [{"name": "side", "image": "busybox"}]}},
        {"spec": {"serviceAccountName": "other"}},
        {"spec": {"nodeName": "n2"}},
        {"spec": {"tolerations": []}},
    ):
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_pod("p", "default", change)
        assert caught.value.status == 422, change
        body = json.loads(caught.value.body)
        assert body["message"].startswith(f'Pod "p" is invalid: spec: {FORBIDDEN}\n'), change
        assert body["details"]["causes"][0]["field"] == "spec"
    # What a real server lets change: images, more tolerations, labels.
    patched = core.patch_namespaced_pod(
        "p",
        "default",
        {
            "metadata": {"labels": {"v": "2"}},
            "spec": {
                "containers": [{"name": "app", "image": "nginx:1.28"}],
                "tolerations": [
                    {"key": "a", "operator": "Exists"},
                    {"key": "b", "operator": "Exists"},
                ],
            },
        },
    )
    assert patched.spec.containers[0].image == "nginx:1.28"
    assert len(patched.spec.tolerations) == 2


def test_kubectl_waits_for_ready_and_force_deletes(kube: KubeEmulator, tmp_path: Any) -> None:
    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kube.kubeconfig_path, tmp_path, *args)

    kube.create({**pod("web"), "metadata": {"name": "web", "namespace": "default"}})
    waited = kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    assert waited.returncode == 0, waited.stderr
    assert "pod/web condition met" in waited.stdout
    deleted = kubectl("delete", "pod", "web", "--grace-period=0", "--force")
    assert deleted.returncode == 0, deleted.stderr
    assert 'pod "web" force deleted' in deleted.stdout
    assert kube.list("pods", namespace="default") == []


async def test_the_aio_client_sees_the_same_lifecycle(clock: ManualClock) -> None:
    from kubernetes.aio import client as aclient

    async with KubeEmulator(clock=clock) as kube:
        kube.cluster.add_node("n1")
        async with aio_api_client(kube) as api:
            v1 = aclient.CoreV1Api(api)
            created = await v1.create_namespaced_pod("default", pod("p"))
            assert (created.status.phase, created.status.pod_ip) == ("Pending", None)
            await kube.wait_for_pod_running_async("p")
            read = await v1.read_namespaced_pod("p", "default")
            assert read.status.phase == "Running"
            deleting = await v1.delete_namespaced_pod("p", "default")
            assert deleting.metadata.deletion_grace_period_seconds == 30
            clock.advance(30)
            kube.settle()
            assert (await v1.list_namespaced_pod("default")).items == []
