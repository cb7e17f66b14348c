"""The informer against the Kubernetes emulator, through the official aio client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podidentity.errors import KubeConflictError, KubeGoneError, KubeNotFoundError
from podidentity.kube import (
    ASSIGNED_IDENTITIES,
    PODS,
    Informer,
    InformerEvent,
    KubeClient,
    object_key,
)
from podidentity.testing.kube import KubeEmulator
from tests.kube.conftest import eventually


def pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


class Recorder:
    """Collects informer events and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.events: list[InformerEvent] = []
        self.queue: asyncio.Queue[InformerEvent] = asyncio.Queue()

    def __call__(self, event: InformerEvent) -> None:
        self.events.append(event)
        self.queue.put_nowait(event)

    async def next(self) -> tuple[str, str]:
        event = await asyncio.wait_for(self.queue.get(), 20)
        return event.type, event.key


async def test_lists_then_streams_changes(kube: KubeEmulator, client: KubeClient) -> None:
    kube.create(pod("a", app="web"))
    recorder = Recorder()
    informer = Informer(client, PODS, namespace="default")
    informer.add_handler(recorder)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        assert await recorder.next() == ("ADDED", "default/a")
        assert informer.get("default/a") is not None
        kube.create(pod("b"))
        assert await recorder.next() == ("ADDED", "default/b")
        kube.patch("pods", "b", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
        event = await asyncio.wait_for(recorder.queue.get(), 20)
        assert (event.type, event.key) == ("MODIFIED", "default/b")
        assert event.old is not None
        assert event.obj["metadata"]["labels"] == {"x": "1"}
        kube.delete("pods", "a", namespace="default")
        assert await recorder.next() == ("DELETED", "default/a")
        assert informer.get("default/a") is None
        assert sorted(informer.keys()) == ["default/b"]
    assert informer.lists == 1


async def test_list_is_paged(kube: KubeEmulator, client: KubeClient) -> None:
    for index in range(7):
        kube.create(pod(f"p{index}"))
    informer = Informer(client, PODS, page_size=2)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        assert len(informer) == 7
    paged = [r for r in kube.requests.find(method="GET", path="/pods$") if "limit=2" in r.query]
    assert len(paged) >= 4


async def test_dropped_watch_resumes_without_relisting(
    kube: KubeEmulator, client: KubeClient
) -> None:
    recorder = Recorder()
    informer = Informer(client, PODS)
    informer.add_handler(recorder)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        await eventually(lambda: informer.watches == 1)
        await eventually(lambda: kube.drop_watches() > 0)
        kube.create(pod("after-drop"))
        assert await recorder.next() == ("ADDED", "default/after-drop")
        assert informer.lists == 1
        assert informer.watches >= 2


async def test_gone_on_resume_relists_and_reports_what_was_missed(
    kube: KubeEmulator, client: KubeClient
) -> None:
    kube.create(pod("stays"))
    kube.create(pod("goes"))
    kube.create(pod("changes"))
    recorder = Recorder()
    informer = Informer(client, PODS)
    informer.add_handler(recorder)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
    # Offline: the informer misses these, and the server forgets the history.
    kube.delete("pods", "goes", namespace="default")
    kube.patch("pods", "changes", {"metadata": {"labels": {"v": "2"}}}, namespace="default")
    kube.create(pod("new"))
    kube.expire_watch_window()
    recorder.events.clear()
    async with informer:
        await eventually(lambda: informer.lists == 2)
    seen = sorted((e.type, e.key) for e in recorder.events)
    assert seen == [
        ("ADDED", "default/new"),
        ("DELETED", "default/goes"),
        ("MODIFIED", "default/changes"),
    ]
    assert sorted(informer.keys()) == ["default/changes", "default/new", "default/stays"]


async def test_bookmarks_advance_the_resume_point(kube: KubeEmulator, client: KubeClient) -> None:
    informer = Informer(client, PODS, namespace="watched")
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        before = informer.resource_version
        kube.create(pod("elsewhere", namespace="kube-system"))  # moves the server's version
        await eventually(lambda: informer.watches >= 1)
        target = kube.resource_version

        def caught_up() -> bool:
            kube.send_bookmarks()
            return int(informer.resource_version) >= int(target)

        await eventually(caught_up)
        assert informer.resource_version != before
        assert len(informer) == 0


async def test_selectors_and_indexes(kube: KubeEmulator, client: KubeClient) -> None:
    kube.create(pod("n1-a", node="node-1", app="web"))
    kube.create(pod("n1-b", node="node-1", app="db"))
    kube.create(pod("n2-a", node="node-2", app="web"))
    informer = Informer(
        client,
        PODS,
        field_selector="spec.nodeName=node-1",
        indexers={"app": lambda p: [p["metadata"].get("labels", {}).get("app", "")]},
    )
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        assert sorted(informer.keys()) == ["default/n1-a", "default/n1-b"]
        assert [object_key(p) for p in informer.by_index("app", "web")] == ["default/n1-a"]
        recorder = Recorder()
        informer.add_handler(recorder)  # replays the cache
        assert sorted([await recorder.next(), await recorder.next()]) == [
            ("ADDED", "default/n1-a"),
            ("ADDED", "default/n1-b"),
        ]
        kube.patch("pods", "n1-b", {"metadata": {"labels": {"app": "web"}}}, namespace="default")
        await recorder.next()
        assert informer.index_keys("app", "web") == {"default/n1-a", "default/n1-b"}
        assert informer.by_index("app", "db") == []
        informer.add_indexer("name", lambda p: [p["metadata"]["name"]])
        assert [object_key(p) for p in informer.by_index("name", "n1-a")] == ["default/n1-a"]
        with pytest.raises(ValueError, match="already exists"):
            informer.add_indexer("app", lambda p: [])

    labelled = Informer(client, PODS, label_selector="app=web")
    async with labelled:
        await asyncio.wait_for(labelled.wait_synced(), 20)
        assert sorted(labelled.keys()) == ["default/n1-a", "default/n1-b", "default/n2-a"]


async def test_errors_are_retried_until_the_list_succeeds(
    kube: KubeEmulator, client: KubeClient
) -> None:
    kube.create(pod("a"))
    kube.fail_next("pods", "list", count=2, status=500)
    kube.fail_next("azureassignedidentities", "list", count=1, status=403)
    informer = Informer(client, PODS)
    assigned = Informer(client, ASSIGNED_IDENTITIES)
    async with informer, assigned:
        await asyncio.wait_for(informer.wait_synced(), 20)
        await asyncio.wait_for(assigned.wait_synced(), 20)
        assert informer.keys() == ["default/a"]


async def test_a_failing_handler_does_not_stop_the_informer(
    kube: KubeEmulator, client: KubeClient
) -> None:
    def broken(event: InformerEvent) -> None:
        raise RuntimeError("handler bug")

    recorder = Recorder()
    informer = Informer(client, PODS)
    informer.add_handler(broken)
    informer.add_handler(recorder)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 20)
        kube.create(pod("x"))
        assert await recorder.next() == ("ADDED", "default/x")


async def test_client_errors_are_typed(kube: KubeEmulator, client: KubeClient) -> None:
    with pytest.raises(KubeNotFoundError, match="404"):
        await client.get(PODS, "missing", "default")
    created = await client.create(PODS, pod("c"), "default")
    stale = dict(created, metadata=dict(created["metadata"], resourceVersion="1"))
    with pytest.raises(KubeConflictError):
        await client.replace(PODS, stale)
    with pytest.raises(KubeGoneError):
        async for _ in client.watch(PODS, resource_version="1", timeout_seconds=1):
            pass


async def test_missing_kubeconfig_is_a_config_error(tmp_path: Any) -> None:
    from podidentity.errors import ConfigError
    from podidentity.kube import load_api_client

    with pytest.raises(ConfigError, match="does not exist"):
        await load_api_client(tmp_path / "nope", in_cluster=False)
