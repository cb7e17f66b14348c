"""Label and field selectors, and limit/continue paging."""

from __future__ import annotations

import json

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator
from tests.testing.kube.kube_manifests import pod


def _names(items: list[object]) -> list[str]:
    return [item.metadata.name for item in items]  # type: ignore[attr-defined]


@pytest.fixture
def pods(kube: KubeEmulator) -> None:
    for name, labels, node, phase in (
        ("a", {"app": "web", "tier": "front"}, "node-1", "Running"),
        ("b", {"app": "web", "tier": "back"}, "node-2", "Running"),
        ("c", {"app": "db"}, "node-1", "Pending"),
    ):
        manifest = pod(name, **labels)
        manifest["spec"]["nodeName"] = node  # type: ignore[index]
        manifest["status"] = {"phase": phase, "podIP": f"127.0.0.{ord(name)}"}
        kube.create(manifest, namespace="default")


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=back", ["a"]),
        ("app in (db, web),tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("app notin (web)", ["c"]),
    ],
)
def test_label_selectors(
    core: kubernetes.client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    assert _names(core.list_namespaced_pod("default", label_selector=selector).items) == expected


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("spec.nodeName=node-1", ["a", "c"]),
        ("spec.nodeName==node-1,status.phase!=Pending", ["a"]),
        ("status.podIP=127.0.0.98", ["b"]),
        ("metadata.name=c", ["c"]),
        ("metadata.namespace=default,status.phase=Running", ["a", "b"]),
    ],
)
def test_field_selectors(
    core: kubernetes.client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    assert _names(core.list_pod_for_all_namespaces(field_selector=selector).items) == expected


def test_unsupported_field_is_bad_request(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", field_selector="spec.foo=bar")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["message"] == "field label not supported: spec.foo"


def test_bad_label_selector_is_bad_request(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", label_selector="app in web")
    assert caught.value.status == 400


def _config_maps(kube: KubeEmulator, *names: str) -> None:
    for name in names:
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"},
                "data": {"v": "1"},
            }
        )


def test_paging_walks_everything_once(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    _config_maps(kube, *(f"cm-{index}" for index in range(7)))
    first = core.list_namespaced_config_map("default", limit=3)
    assert len(first.items) == 3
    assert first.metadata.remaining_item_count == 4
    seen = _names(first.items)
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map("default", limit=3, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += _names(page.items)
        token = page.metadata._continue
    assert seen == [f"cm-{i}" for i in range(7)]


def test_expired_continue_is_410(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    _config_maps(kube, "cm-0", "cm-1", "cm-2")
    first = core.list_namespaced_config_map("default", limit=1)
    _config_maps(kube, "later")
    kube.expire_watch_window()
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", limit=1, _continue=first.metadata._continue)
    assert caught.value.status == 410
    assert json.loads(caught.value.body)["reason"] == "Expired"


def test_later_pages_show_the_first_pages_snapshot(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    _config_maps(kube, *(f"cm-{index}" for index in range(6)))
    first = core.list_namespaced_config_map("default", limit=2)
    versions = {c.metadata.name: c.metadata.resource_version for c in first.items}
    before = {c["metadata"]["name"]: c for c in kube.list("configmaps", namespace="default")}
    # Writers run between the pages: every kind of change, before and after the cursor.
    kube.delete("configmaps", "cm-3", namespace="default")
    kube.patch("configmaps", "cm-4", {"data": {"v": "2"}}, namespace="default")
    _config_maps(kube, "cm-2a", "cm-9")
    kube.delete("configmaps", "cm-5", namespace="default")
    _config_maps(kube, "cm-5")
    pages = [first]
    while pages[-1].metadata._continue:
        pages.append(
            core.list_namespaced_config_map(
                "default", limit=2, _continue=pages[-1].metadata._continue
            )
        )
    later = [c for page in pages[1:] for c in page.items]
    assert _names(later) == ["cm-2", "cm-3", "cm-4", "cm-5"]
    for item in later:
        assert item.data == {"v": "1"}
        assert item.metadata.uid == before[item.metadata.name]["metadata"]["uid"]
        versions[item.metadata.name] = item.metadata.resource_version
    assert all(int(v) <= int(first.metadata.resource_version) for v in versions.values())
    assert {p.metadata.resource_version for p in pages} == {first.metadata.resource_version}
    # A new list sees the present.
    assert _names(core.list_namespaced_config_map("default").items) == [
        "cm-0",
        "cm-1",
        "cm-2",
        "cm-2a",
        "cm-4",
        "cm-5",
        "cm-9",
    ]
