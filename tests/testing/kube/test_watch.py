"""Watches through the official clients: replay, resume, 410, bookmarks, timeouts, drops."""

from __future__ import annotations

import threading
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator
from tests.testing.kube.aio_client import aio_api_client
from tests.testing.kube.kube_manifests import pod


def _events(
    core: kubernetes.client.CoreV1Api, count: int, **kwargs: object
) -> list[tuple[str, str, str]]:
    """The first ``count`` events of a pod watch (the server's timeout only bounds a failure)."""
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(core.list_namespaced_pod, "default", timeout_seconds=30, **kwargs):
        obj = event["object"]
        if event["type"] == "BOOKMARK":
            seen.append(("BOOKMARK", "", obj["metadata"]["resourceVersion"]))
        else:
            seen.append((event["type"], obj.metadata.name, obj.metadata.resource_version))
        if len(seen) == count:
            watch.stop()
    return seen


def _lines(response: Any, count: int) -> list[str]:
    """The first ``count`` lines of a raw watch stream; then the stream is closed."""
    buffer = b""
    for chunk in response.stream(1024):
        buffer += chunk
        if buffer.count(b"\n") >= count:
            break
    response.close()
    return buffer.decode().splitlines()[:count]


def test_watch_without_version_starts_with_current_state(
    core: kubernetes.client.CoreV1Api,
) -> None:
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    seen = _events(core, 2)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_replays_changes_after_a_resource_version(
    core: kubernetes.client.CoreV1Api,
) -> None:
    listed = core.list_namespaced_pod("default")
    core.create_namespaced_pod("default", pod("a"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("a", "default")
    seen = _events(core, 3, resource_version=listed.metadata.resource_version)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    versions = [int(rv) for _, _, rv in seen]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_live_events_reach_an_open_watch(core: kubernetes.client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod("default").metadata.resource_version
    watch = kubernetes.watch.Watch()
    names: list[str] = []

    def writer() -> None:
        for name in ("a", "b", "c"):
            core.create_namespaced_pod("default", pod(name))

    thread = threading.Thread(target=writer)
    thread.start()
    for event in watch.stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    ):
        names.append(event["object"].metadata.name)
        if len(names) == 3:
            watch.stop()
    thread.join()
    assert names == ["a", "b", "c"]


def test_expired_resource_version_is_410(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a"))
    kube.expire_watch_window()
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as caught:
        for _ in watch.stream(
            core.list_namespaced_pod,
            "default",
            resource_version=rv,
            timeout_seconds=1,
            _request_timeout=5,
        ):
            pass
    assert caught.value.status == 410
    raw = core.list_namespaced_pod(
        "default", watch=True, resource_version=rv, _preload_content=False, timeout_seconds=1
    )
    line = raw.data.decode().splitlines()[0]
    assert '"type":"ERROR"' in line
    assert '"reason":"Expired"' in line
    assert '"code":410' in line


def test_history_window_is_bounded() -> None:
    with KubeEmulator(plugins=False, history_size=3) as kube:
        client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
        core = kubernetes.client.CoreV1Api(client)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        for index in range(5):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{index}"}})
        raw = core.list_namespaced_config_map(
            "default", watch=True, resource_version=rv, _preload_content=False, timeout_seconds=1
        )
        assert '"code":410' in raw.data.decode()
        client.close()


def test_bookmarks_carry_the_current_version(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("a"))
    seen = _events(core, 2, allow_watch_bookmarks=True)
    bookmarks = [rv for kind, _, rv in seen if kind == "BOOKMARK"]
    assert bookmarks
    assert int(bookmarks[-1]) >= int(kube.resource_version) - 0


def test_send_initial_events_ends_with_a_marked_bookmark(
    core: kubernetes.client.CoreV1Api,
) -> None:
    core.create_namespaced_pod("default", pod("a"))
    raw = core.list_namespaced_pod(
        "default",
        watch=True,
        send_initial_events=True,
        allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=30,
        _preload_content=False,
    )
    lines = _lines(raw, 2)
    assert '"type":"ADDED"' in lines[0]
    assert '"k8s.io/initial-events-end":"true"' in lines[1]


def test_label_selector_watch_sees_entering_and_leaving(
    core: kubernetes.client.CoreV1Api,
) -> None:
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a", app="x"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"app": "y"}}})
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"app": "x"}}})
    seen = _events(core, 3, resource_version=rv, label_selector="app=x")
    assert [t for t, _, _ in seen] == ["ADDED", "DELETED", "ADDED"]


def test_drop_watches_ends_streams(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    response = core.list_namespaced_pod("default", watch=True, _preload_content=False)
    kube.drop_watches()
    assert response.data == b""


async def test_aio_watch_resumes(kube: KubeEmulator) -> None:
    from kubernetes.aio import client as aclient
    from kubernetes.aio import watch as awatch

    async with aio_api_client(kube) as api:
        core = aclient.CoreV1Api(api)
        listed = await core.list_namespaced_pod("default")
        kube.create(pod("a"), namespace="default")
        kube.create(pod("b"), namespace="default")
        names = []
        watch = awatch.Watch()
        async with watch.stream(
            core.list_namespaced_pod,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        ) as stream:
            async for event in stream:
                names.append((event["type"], event["object"].metadata.name))
                if len(names) == 2:
                    # End the stream from the server once the expected events are in (the
                    # timeout only bounds a failure); anything extra would still show.
                    kube.drop_watches()
        assert names == [("ADDED", "a"), ("ADDED", "b")]
