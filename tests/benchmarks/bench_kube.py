"""Kubernetes emulator: a 2,000-pod list and a 1,000-event watch fan-out to 10 watchers.

Every figure goes through :mod:`tests.benchmarks.harness`: CPU time of the process (the
emulator's server thread and the clients' threads alike), GC off while timing, baselines run
interleaved in the same process, the median of per-round ratios. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_kube.py -o python_files='bench_*.py' -p no:cacheprovider -s``.

- list: ``GET`` of every pod plus ``json.loads``, against ``json.loads`` (C) and the
  pure-Python JSON decoder of the same bytes (what any client pays just to read them); and
  ``CoreV1Api.list_namespaced_pod`` against ``ApiClient.deserialize`` of the same bytes.
- watch fan-out: 1,000 writes delivered to 10 watchers that each parse every line, against
  the same writes with no watcher, and against parsing all the lines alone (``json.loads``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import kubernetes
import pytest
import urllib3

from podidentity.testing.kube import KubeEmulator
from tests.benchmarks.baselines import py_json_loads
from tests.benchmarks.harness import Case, Suite, quick

PODS = 500 if quick() else 2_000
EVENTS = 300 if quick() else 1_000
WATCHERS = 10


def _pod(index: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{index:05d}",
            "namespace": "default",
            "labels": {"app": f"app-{index % 50}", "aadpodidbinding": "demo"},
        },
        "spec": {
            "nodeName": f"node-{index % 20}",
            "containers": [
                {"name": "app", "image": "nginx:1.27", "env": [{"name": "A", "value": "b"}]}
            ],
        },
        "status": {"phase": "Running", "podIP": f"127.0.{index // 250}.{index % 250 + 1}"},
    }


def _config_map(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"key": "value" * 10},
    }


@pytest.fixture(scope="module")
def kube() -> KubeEmulator:
    with KubeEmulator(plugins=False, install_crds=False, history_size=EVENTS * 2) as emulator:
        yield emulator


def test_list_pods(bench: Suite, kube: KubeEmulator) -> None:
    bench.budget = 2.0 if quick() else 10.0

    async def fill() -> None:
        for index in range(PODS):
            await kube.apiserver.create("pods", _pod(index), keep_status=True)

    kube.call(fill(), timeout=1800)
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    core = kubernetes.client.CoreV1Api(client)
    http = urllib3.PoolManager()
    url = f"{kube.url}/api/v1/namespaces/default/pods"
    raw = http.request("GET", url).data
    text = raw.decode()
    assert len(json.loads(raw)["items"]) == PODS
    assert len(core.list_namespaced_pod("default").items) == PODS
    size = f"{PODS:,} pods, {len(raw) / 1e6:.1f} MB"
    try:
        bench.compare(
            f"list {PODS:,} pods, raw HTTP GET + json.loads",
            Case("GET + json.loads", lambda: json.loads(http.request("GET", url).data)),
            Case("json.loads of the bytes (C)", lambda: json.loads(raw)),
            Case("pure-Python JSON decoder of the bytes", lambda: py_json_loads(raw)),
            note=size,
        )
        bench.measure(
            f"list {PODS:,} pods, server side (HTTP GET, bytes only)",
            lambda: http.request("GET", url).data,
            note=size,
        )
        bench.compare(
            f"list {PODS:,} pods, CoreV1Api.list_namespaced_pod",
            Case("CoreV1Api.list_namespaced_pod", lambda: core.list_namespaced_pod("default")),
            Case(
                "ApiClient.deserialize of the same bytes",
                lambda: client.deserialize(text, "V1PodList", "application/json"),
            ),
            note=size,
        )
    finally:
        client.close()
        http.clear()


class _Watchers:
    """Ten watch streams from "now", each parsing every line until it has seen EVENTS."""

    def __init__(self, kube: KubeEmulator) -> None:
        self.kube = kube
        self.http = urllib3.PoolManager(maxsize=WATCHERS + 2)
        self.threads: list[threading.Thread] = []
        self.received = [0] * WATCHERS
        self.lines: list[bytes] = []

    def start(self) -> None:
        """Set-up of a round (untimed): close old watches, open ten new ones."""
        self.kube.drop_watches()
        _wait_for(lambda: not list(self.kube.apiserver.store.watchers()))
        url = (
            f"{self.kube.url}/api/v1/namespaces/default/configmaps?watch=true"
            f"&resourceVersion={self.kube.resource_version}&timeoutSeconds=600"
        )
        self.received = [0] * WATCHERS
        self.threads = [
            threading.Thread(target=self._watch, args=(url, i), daemon=True)
            for i in range(WATCHERS)
        ]
        for thread in self.threads:
            thread.start()
        _wait_for(lambda: len(list(self.kube.apiserver.store.watchers())) == WATCHERS)

    def _watch(self, url: str, index: int) -> None:
        response = self.http.request("GET", url, preload_content=False)
        buffer = b""
        seen = 0
        keep = index == 0 and not self.lines
        for chunk in response.stream(1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                json.loads(line)
                if keep:
                    self.lines.append(line)
            seen += len(complete)
            if seen >= EVENTS:
                break
        self.received[index] = seen
        response.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=1800)
        assert self.received == [EVENTS] * WATCHERS


def _wait_for(condition: object) -> None:
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the emulator's watchers did not reach the expected count")
        time.sleep(0.005)


def test_watch_fan_out(bench: Suite, kube: KubeEmulator) -> None:
    # Eleven threads share the GIL here, so a round's CPU time varies more with the machine's
    # load than single-threaded work does: many short rounds keep the median steady.
    bench.budget = 2.0 if quick() else 15.0
    names = itertools.count()
    watchers = _Watchers(kube)

    def writes() -> None:
        async def write() -> None:
            for _ in range(EVENTS):
                await kube.apiserver.create("configmaps", _config_map(f"cm-{next(names)}"))

        kube.call(write(), timeout=1800)

    def fan_out() -> None:
        writes()
        watchers.join()

    watchers.start()
    fan_out()  # fills watchers.lines: one watcher's lines, for the parse-only baselines
    lines = watchers.lines * WATCHERS
    assert len(lines) == EVENTS * WATCHERS
    try:
        bench.compare(
            f"watch fan-out, {EVENTS:,} events x {WATCHERS} watchers",
            Case(
                "writes + delivery + json.loads in 10 watcher threads",
                fan_out,
                setup=watchers.start,
            ),
            Case("the same writes, no watcher", writes, setup=kube.drop_watches),
            Case(
                f"json.loads (C) of the {EVENTS * WATCHERS:,} lines",
                lambda: [json.loads(line) for line in lines],
            ),
            note=f"{EVENTS:,} ConfigMap writes, {WATCHERS} watchers",
        )
    finally:
        kube.drop_watches()
        watchers.http.clear()
