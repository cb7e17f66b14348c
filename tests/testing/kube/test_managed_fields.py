"""managedFields on every write and server-side apply conflicts, through the official clients."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator

_CM = "/api/v1/namespaces/default/configmaps"


def _apply(
    api_client: kubernetes.client.ApiClient,
    body: dict[str, Any],
    manager: str,
    *,
    force: bool = False,
) -> tuple[int, dict[str, Any]]:
    """A server-side apply (``application/apply-patch+yaml``) through the client's low level."""
    name = body["metadata"]["name"]
    query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
    response = api_client.call_api(
        *api_client.param_serialize(
            "PATCH",
            f"{_CM}/{name}",
            query_params=query,
            header_params={"Content-Type": "application/apply-patch+yaml"},
            body=json.dumps(body),
        )
    )
    response.read()
    return response.status, json.loads(response.data)


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _owners(obj: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    entries = obj["metadata"]["managedFields"] if isinstance(obj, dict) else None
    if entries is None:
        entries = [e.to_dict() for e in obj.metadata.managed_fields]
        return {
            (e["manager"], e["operation"], e.get("subresource") or ""): e["fields_v1"]
            for e in entries
        }
    return {
        (e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"] for e in entries
    }


def test_create_and_update_are_recorded_with_the_user_agent_or_field_manager(
    core: kubernetes.client.CoreV1Api,
) -> None:
    created = core.create_namespaced_config_map("default", _cm("a", x="1"))
    assert _owners(created) == {("OpenAPI-Generator", "Update", ""): {"f:data": {"f:x": {}}}}
    created.data["y"] = "2"
    replaced = core.replace_namespaced_config_map("a", "default", created, field_manager="ctl")
    assert _owners(replaced) == {
        ("OpenAPI-Generator", "Update", ""): {"f:data": {"f:x": {}}},
        ("ctl", "Update", ""): {"f:data": {"f:y": {}}},
    }
    # Taking a field over moves it; a patch that changes nothing changes no entry.
    patched = core.patch_namespaced_config_map(
        "a", "default", {"data": {"x": "3"}}, field_manager="ctl"
    )
    assert _owners(patched) == {("ctl", "Update", ""): {"f:data": {"f:x": {}, "f:y": {}}}}
    again = core.patch_namespaced_config_map("a", "default", {"data": {"x": "3"}})
    assert again.metadata.resource_version == patched.metadata.resource_version


def test_status_writes_are_recorded_with_their_subresource(
    core: kubernetes.client.CoreV1Api,
) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}},
    )
    pod = core.patch_namespaced_pod_status(
        "web", "default", {"status": {"podIP": "10.0.0.9"}}, field_manager="kubelet"
    )
    owners = _owners(pod)
    assert owners[("kubelet", "Update", "status")] == {"f:status": {"f:podIP": {}}}
    # The creator owns the spec it sent and the defaults, never the status.
    created = owners[("OpenAPI-Generator", "Update", "")]
    assert "f:restartPolicy" in created["f:spec"]
    assert "f:status" not in created


def test_apply_conflicts_with_another_applier_unless_forced(
    api_client: kubernetes.client.ApiClient,
) -> None:
    assert _apply(api_client, _cm("c", a="1"), "alice")[0] == 201
    status, answer = _apply(api_client, _cm("c", a="2"), "bob")
    assert status == 409
    assert answer["reason"] == "Conflict"
    assert answer["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.a'
    assert answer["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"}
    ]
    # The same value is shared ownership, not a conflict.
    status, shared = _apply(api_client, _cm("c", a="1"), "bob")
    assert status == 200
    assert set(_owners(shared)) == {("alice", "Apply", ""), ("bob", "Apply", "")}
    status, forced = _apply(api_client, _cm("c", a="2"), "bob", force=True)
    assert status == 200
    assert forced["data"] == {"a": "2"}
    assert set(_owners(forced)) == {("bob", "Apply", "")}


def test_apply_over_an_update_owner_conflicts_naming_its_api_version(
    api_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", _cm("d", a="1"), field_manager="installer")
    status, answer = _apply(api_client, _cm("d", a="2"), "podidentity")
    assert status == 409
    assert answer["message"] == (
        'Apply failed with 1 conflict: conflict with "installer" using v1: .data.a'
    )


def test_managed_fields_in_a_request_replace_and_an_empty_list_keeps_them(
    core: kubernetes.client.CoreV1Api,
) -> None:
    created = core.create_namespaced_config_map("default", _cm("e", a="1"))
    kept = core.patch_namespaced_config_map(
        "e", "default", [{"op": "replace", "path": "/metadata/managedFields", "value": []}]
    )
    assert _owners(kept) == _owners(created)
    cleared = core.patch_namespaced_config_map(
        "e", "default", [{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}]
    )
    assert cleared.metadata.managed_fields is None


def test_invalid_field_manager_is_422(api_client: kubernetes.client.ApiClient) -> None:
    status, answer = _apply(api_client, _cm("f", a="1"), "m" * 129)
    assert status == 422
    assert answer["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than '
        "128 bytes"
    )


def test_python_level_writes_are_recorded_as_the_emulator(kube: KubeEmulator) -> None:
    created = kube.create(_cm("g", a="1") | {"metadata": {"name": "g", "namespace": "default"}})
    assert [e["manager"] for e in created["metadata"]["managedFields"]] == ["kube-emulator"]


def test_dry_run_apply_records_without_storing(
    api_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    response = api_client.call_api(
        *api_client.param_serialize(
            "PATCH",
            f"{_CM}/h",
            query_params=[("fieldManager", "alice"), ("dryRun", "All")],
            header_params={"Content-Type": "application/apply-patch+yaml"},
            body=json.dumps(_cm("h", a="1")),
        )
    )
    response.read()
    assert response.status == 201
    assert json.loads(response.data)["metadata"]["managedFields"][0]["manager"] == "alice"
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("h", "default")
    assert caught.value.status == 404
