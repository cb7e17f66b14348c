"""Many watchers and writers at once: no lost events, per-object resourceVersion order."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

import kubernetes
import pytest

from podidentity.testing.kube import KubeEmulator

WATCHERS = 10
WRITERS = 5
# Bounded in count (3,000 writes reach each of 10 watchers: 30,000 deliveries) and in time
# (every thread joins before one deadline), so the stress test fits the default run.
WRITES = 3_000
DEADLINE_SECONDS = 150
OBJECTS_PER_WRITER = 20


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_SECONDS + 30)
def test_watchers_lose_nothing_under_concurrent_writes() -> None:
    with KubeEmulator(plugins=False, install_crds=False, history_size=WRITES * 2) as kube:
        client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
        client.rest_client.pool_manager.connection_pool_kw["maxsize"] = WATCHERS + WRITERS
        core = kubernetes.client.CoreV1Api(client)
        start_rv = core.list_namespaced_config_map("default").metadata.resource_version
        seen: list[list[tuple[str, str, int]]] = [[] for _ in range(WATCHERS)]
        ready = threading.Barrier(WATCHERS + 1)

        # Use the client's raw stream line by line (what kubernetes.watch does, minus models).
        def watch_lines(index: int) -> None:
            response = core.list_namespaced_config_map(
                "default",
                watch=True,
                resource_version=start_rv,
                timeout_seconds=DEADLINE_SECONDS,
                _preload_content=False,
            )
            ready.wait()
            buffer = b""
            events = seen[index]
            for chunk in response.stream(65536, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    meta = event["object"]["metadata"]
                    events.append((event["type"], meta["name"], int(meta["resourceVersion"])))
                if len(events) >= WRITES:
                    break
            response.release_conn()

        written: list[int] = []
        lock = threading.Lock()

        def write(writer: int) -> None:
            names = [f"w{writer}-{i}" for i in range(OBJECTS_PER_WRITER)]
            versions = []
            for name in names:
                created = core.create_namespaced_config_map(
                    "default", {"metadata": {"name": name}, "data": {"n": "0"}}
                )
                versions.append(int(created.metadata.resource_version))
            for step in range(WRITES // WRITERS - OBJECTS_PER_WRITER):
                name = names[step % OBJECTS_PER_WRITER]
                patched = core.patch_namespaced_config_map(
                    name, "default", {"data": {"n": str(step + 1)}}
                )
                versions.append(int(patched.metadata.resource_version))
            with lock:
                written.extend(versions)

        watchers = [threading.Thread(target=watch_lines, args=(i,)) for i in range(WATCHERS)]
        for thread in watchers:
            thread.start()
        ready.wait()
        writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + DEADLINE_SECONDS
        for thread in writers + watchers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        client.close()
        assert not [t for t in writers + watchers if t.is_alive()], "stress test overran"

        assert len(written) == WRITES
        for events in seen:
            assert sorted(rv for _, _, rv in events) == sorted(written)
            last: dict[str, int] = defaultdict(int)
            for _, name, rv in events:
                assert rv > last[name]
                last[name] = rv
