"""Kubernetes emulator: a 20,000-pod list and a 10,000-event watch fan-out to 10 watchers.

Each figure is reported as a ratio to what the same client needs just to parse the same bytes
(measured in the same process), so the numbers mean something on any machine. Nothing is
asserted about time. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_kube.py -s -o python_files='bench_*.py'``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import kubernetes
import pytest
import urllib3

from podidentity.testing.kube import KubeEmulator

PODS = 20_000
EVENTS = 10_000
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


def _best(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.timeout(900)
def test_list_20000_pods() -> None:
    with KubeEmulator(plugins=False, install_crds=False) as kube:

        async def fill() -> None:
            for index in range(PODS):
                await kube.apiserver.create("pods", _pod(index), keep_status=True)

        kube.call(fill(), timeout=600)
        client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
        core = kubernetes.client.CoreV1Api(client)
        http = urllib3.PoolManager()
        url = f"{kube.url}/api/v1/namespaces/default/pods"
        raw = http.request("GET", url).data

        raw_fetch = _best(lambda: http.request("GET", url).data)
        parse_json = _best(lambda: json.loads(raw))
        fetch_and_parse = _best(lambda: json.loads(http.request("GET", url).data))

        text = raw.decode()
        typed = _best(lambda: client.deserialize(text, "V1PodList", "application/json"), repeat=2)
        typed_list = _best(lambda: core.list_namespaced_pod("default"), repeat=2)
        client.close()
    print()
    print(f"list {PODS} pods: {len(raw) / 1e6:.1f} MB")
    print(f"  HTTP GET (bytes only)          {raw_fetch * 1000:8.1f} ms")
    print(f"  json.loads of the bytes        {parse_json * 1000:8.1f} ms")
    print(
        f"  GET + json.loads               {fetch_and_parse * 1000:8.1f} ms"
        f"  ratio {fetch_and_parse / parse_json:.2f}"
    )
    print(f"  ApiClient.deserialize          {typed * 1000:8.1f} ms")
    print(
        f"  CoreV1Api.list_namespaced_pod  {typed_list * 1000:8.1f} ms"
        f"  ratio {typed_list / typed:.2f}"
    )


@pytest.mark.timeout(900)
def test_watch_fan_out() -> None:
    with KubeEmulator(plugins=False, install_crds=False, history_size=EVENTS * 2) as kube:
        http = urllib3.PoolManager(maxsize=WATCHERS + 2)
        rv = kube.resource_version
        url = (
            f"{kube.url}/api/v1/namespaces/default/configmaps?watch=true"
            f"&resourceVersion={rv}&timeoutSeconds=300"
        )
        received: list[list[bytes]] = [[] for _ in range(WATCHERS)]
        ready = threading.Barrier(WATCHERS + 1)

        def watch(index: int) -> None:
            response = http.request("GET", url, preload_content=False)
            ready.wait()
            buffer = b""
            lines = received[index]
            for chunk in response.stream(1 << 16):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                lines.extend(json.loads(line) and line for line in complete)
                if len(lines) >= EVENTS:
                    break
            response.release_conn()

        threads = [threading.Thread(target=watch, args=(i,)) for i in range(WATCHERS)]
        for thread in threads:
            thread.start()
        ready.wait()
        while len(list(kube.apiserver.store.watchers())) < WATCHERS:
            time.sleep(0.01)

        async def write() -> None:
            for index in range(EVENTS):
                await kube.apiserver.create(
                    "configmaps",
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"cm-{index}", "namespace": "default"},
                        "data": {"key": "value" * 10},
                    },
                )
                if index % 100 == 0:
                    await asyncio.sleep(0)

        started = time.perf_counter()
        kube.call(write(), timeout=600)
        for thread in threads:
            thread.join(timeout=600)
        fan_out = time.perf_counter() - started
        all_lines = [line for lines in received for line in lines]
        assert len(all_lines) == EVENTS * WATCHERS
        parse = _best(lambda: [json.loads(line) for line in all_lines])

        async def writes_only() -> None:
            for index in range(EVENTS):
                await kube.apiserver.create(
                    "configmaps",
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"x-{index}", "namespace": "kube-system"},
                        "data": {"key": "value" * 10},
                    },
                )

        kube.drop_watches()
        started = time.perf_counter()
        kube.call(writes_only(), timeout=600)
        writes = time.perf_counter() - started
    print()
    print(f"watch fan-out: {EVENTS} events to {WATCHERS} watchers")
    print(f"  writes alone (no watchers)     {writes * 1000:8.1f} ms")
    print(f"  writes + delivery + json.loads {fan_out * 1000:8.1f} ms")
    print(f"  json.loads of all lines        {parse * 1000:8.1f} ms  ratio {fan_out / parse:.2f}")
