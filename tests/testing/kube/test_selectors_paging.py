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


def test_paging_walks_everything_once(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    for index in range(7):
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{index}", "namespace": "default"},
            }
        )
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
    for index in range(3):
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{index}", "namespace": "default"},
            }
        )
    first = core.list_namespaced_config_map("default", limit=1)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later", "namespace": "default"},
        }
    )
    kube.expire_watch_window()
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", limit=1, _continue=first.metadata._continue)
    assert caught.value.status == 410
    assert json.loads(caught.value.body)["reason"] == "Expired"
