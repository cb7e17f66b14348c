"""The patch formats, as pure functions and through the official client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from podidentity.testing.kube import APIError, KubeEmulator
from podidentity.testing.kube._patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert apply_merge_patch(target, {"a": {"b": None}, "l": [3]}) == {"a": {"c": 2}, "l": [3]}


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "copy", "from": "/b", "path": "/d"},
        {"op": "move", "from": "/d/c", "path": "/e"},
        {"op": "remove", "path": "/a/0"},
        {"op": "test", "path": "/e", "value": 2},
    ]
    assert apply_json_patch(doc, ops) == {"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2}
    with pytest.raises(APIError) as caught:
        apply_json_patch(doc, [{"op": "test", "path": "/b/c", "value": 9}])
    assert caught.value.code == 422


def test_strategic_merge_by_keys() -> None:
    target = {
        "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}],
        "finalizers": ["f1"],
        "tolerations": [{"key": "t"}],
        "conditions": [{"type": "Ready", "status": "False"}],
    }
    patch = {
        "containers": [
            {"name": "a", "env": [{"name": "F", "value": "2"}]},
            {"name": "b", "image": "y"},
        ],
        "finalizers": ["f2"],
        "tolerations": [{"key": "u"}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    result = apply_strategic_merge_patch(target, patch)
    assert result["containers"] == [
        {
            "name": "a",
            "image": "x",
            "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}],
        },
        {"name": "b", "image": "y"},
    ]
    assert result["finalizers"] == ["f1", "f2"]
    assert result["tolerations"] == [{"key": "u"}]
    assert result["conditions"] == [{"type": "Ready", "status": "True"}]


def test_strategic_merge_directives() -> None:
    target = {"containers": [{"name": "a"}, {"name": "b"}], "finalizers": ["x", "y"], "m": {"k": 1}}
    patch = {
        "containers": [{"name": "a", "$patch": "delete"}],
        "$deleteFromPrimitiveList/finalizers": ["x"],
        "$setElementOrder/containers": [{"name": "b"}],
        "m": {"$patch": "replace", "j": 2},
    }
    assert apply_strategic_merge_patch(target, patch) == {
        "containers": [{"name": "b"}],
        "finalizers": ["y"],
        "m": {"j": 2},
    }


def test_each_patch_type_over_http(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1", "labels": {"app": "a"}},
            "spec": {"taints": [{"key": "first", "effect": "NoSchedule"}]},
        }
    )
    # Strategic merge joins list items by their merge key (a taint's key).
    strategic = core.patch_node(
        "n1", {"spec": {"taints": [{"key": "side", "effect": "NoSchedule"}]}}
    )
    assert [t.key for t in strategic.spec.taints] == ["first", "side"]
    json_patched = core.patch_node(
        "n1", [{"op": "replace", "path": "/metadata/labels/app", "value": "b"}]
    )
    assert json_patched.metadata.labels == {"app": "b"}
    # A JSON merge patch replaces lists whole.
    with httpx.Client(base_url=kube.url) as http:
        merged = http.patch(
            "/api/v1/nodes/n1",
            headers={"Content-Type": "application/merge-patch+json"},
            content=json.dumps({"spec": {"taints": [{"key": "only", "effect": "NoSchedule"}]}}),
        )
    assert [t["key"] for t in merged.json()["spec"]["taints"]] == ["only"]


def _apply(
    kube: KubeEmulator, path: str, body: dict[str, Any], manager: str | None = "test"
) -> httpx.Response:
    with httpx.Client(base_url=kube.url) as http:
        return http.patch(
            path,
            params={"fieldManager": manager} if manager else {},
            headers={"Content-Type": "application/apply-patch+yaml"},
            content=yaml.safe_dump(body),
        )


_CFG = "/api/v1/namespaces/default/configmaps/cfg"


def test_server_side_apply_creates_then_merges(kube: KubeEmulator) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "1"},
    }
    created = _apply(kube, _CFG, manifest)
    assert created.status_code == 201
    assert created.json()["data"] == {"a": "1"}
    [entry] = created.json()["metadata"]["managedFields"]
    assert entry["manager"] == "test"
    assert entry["operation"] == "Apply"
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}}}
    # Another applier's fields merge in and are kept.
    other = _apply(kube, _CFG, {**manifest, "data": {"b": "2"}}, manager="other")
    assert other.json()["data"] == {"a": "1", "b": "2"}


def test_reapply_removes_the_fields_the_same_manager_dropped(kube: KubeEmulator) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "web", "tier": "front"}},
        "data": {"a": "1", "b": "2"},
    }
    _apply(kube, _CFG, manifest)
    # A field set by someone else (an update, not an apply) is not the applier's to remove.
    kube.patch("configmaps", "cfg", {"data": {"c": "3"}}, namespace="default")
    _apply(kube, _CFG, {**manifest, "metadata": {"name": "cfg"}, "data": {"z": "9"}}, "other")
    manifest["metadata"]["labels"] = {"app": "web"}
    manifest["data"] = {"a": "1"}
    reapplied = _apply(kube, _CFG, manifest).json()
    assert reapplied["metadata"]["labels"] == {"app": "web"}
    assert reapplied["data"] == {"a": "1", "c": "3", "z": "9"}
    # Dropping every label removes the map; the same manifest again changes nothing.
    del manifest["metadata"]["labels"]
    unlabelled = _apply(kube, _CFG, manifest).json()
    assert "labels" not in unlabelled["metadata"]
    again = _apply(kube, _CFG, manifest).json()
    assert again["metadata"]["resourceVersion"] == unlabelled["metadata"]["resourceVersion"]


def test_reapply_removes_list_items_by_merge_key(kube: KubeEmulator) -> None:
    path = "/api/v1/nodes/n1"
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {
            "taints": [
                {"key": "a", "value": "1", "effect": "NoSchedule"},
                {"key": "b", "effect": "NoExecute"},
            ]
        },
    }
    assert _apply(kube, path, manifest).status_code == 201
    manifest["spec"]["taints"] = [{"key": "a", "effect": "NoSchedule"}]
    taints = _apply(kube, path, manifest).json()["spec"]["taints"]
    assert [t["key"] for t in taints] == ["a"]
    assert "value" not in taints[0]


def test_reapply_of_a_custom_object_removes_dropped_fields(kube: KubeEmulator) -> None:
    path = "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentities/id"
    manifest: dict[str, Any] = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": "id"},
        "spec": {"type": 0, "resourceID": "r", "clientID": "c"},
    }
    _apply(kube, path, manifest)
    manifest["spec"] = {"type": 0, "resourceID": "r"}
    assert _apply(kube, path, manifest).json()["spec"] == {"type": 0, "resourceID": "r"}


def test_apply_needs_a_field_manager_and_updates_keep_managed_fields(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}
    refused = _apply(kube, _CFG, manifest, manager=None)
    assert refused.status_code == 422
    assert "fieldManager: Required value" in refused.json()["message"]
    _apply(kube, _CFG, {**manifest, "data": {"a": "1"}})
    current = core.read_namespaced_config_map("cfg", "default")
    current.metadata.managed_fields = None
    current.data = {"a": "1", "b": "2"}
    replaced = core.replace_namespaced_config_map("cfg", "default", current)
    # The replace is recorded too, as an Update of the client's user-agent product.
    managers = [(m.manager, m.operation) for m in replaced.metadata.managed_fields]
    assert managers == [("test", "Apply"), ("OpenAPI-Generator", "Update")]
    # The applier still owns only "a": dropping it keeps "b".
    assert _apply(kube, _CFG, manifest).json()["data"] == {"b": "2"}


def test_strategic_patch_of_custom_object_is_415(kube: KubeEmulator) -> None:
    kube.create(
        {
            "apiVersion": "aadpodidentity.k8s.io/v1",
            "kind": "AzureIdentity",
            "metadata": {"name": "id", "namespace": "default"},
            "spec": {"type": 0, "resourceID": "r", "clientID": "c"},
        }
    )
    with httpx.Client(base_url=kube.url) as http:
        response = http.patch(
            "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentities/id",
            headers={"Content-Type": "application/strategic-merge-patch+json"},
            content=json.dumps({"spec": {"type": 1}}),
        )
    assert response.status_code == 415
    assert response.json()["reason"] == "UnsupportedMediaType"
