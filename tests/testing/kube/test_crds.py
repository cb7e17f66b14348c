"""CustomResourceDefinitions and custom objects: discovery, CRUD, validation, pruning, status."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator

GROUP = "example.com"


def widget_crd(*, status: bool = True) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "color": {"type": "string", "enum": ["red", "blue"]},
                            "free": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "template": {
                                "type": "object",
                                "x-kubernetes-embedded-resource": True,
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"a": {"type": "string"}},
                                    }
                                },
                            },
                        },
                    },
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                },
            }
        },
        "additionalPrinterColumns": [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        ],
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
                "shortNames": ["wd"],
            },
            "versions": [version],
        },
    }


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


@pytest.fixture
def crd(api_client: kubernetes.client.ApiClient) -> dict[str, Any]:
    api = kubernetes.client.ApiextensionsV1Api(api_client)
    created = api.create_custom_resource_definition(widget_crd())
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions["Established"] == "True"
    return widget_crd()


def test_our_crds_are_installed(kube: KubeEmulator) -> None:
    names = {c["metadata"]["name"] for c in kube.list("customresourcedefinitions")}
    assert "azureidentities.aadpodidentity.k8s.io" in names


@pytest.mark.usefixtures("crd")
def test_discovery_lists_the_new_resource(api_client: kubernetes.client.ApiClient) -> None:
    resources = kubernetes.client.CustomObjectsApi(api_client).get_api_resources(GROUP, "v1")
    names = {r.name for r in resources.resources}
    assert {"widgets", "widgets/status"} <= names
    groups = kubernetes.client.ApisApi(api_client).get_api_versions()
    assert GROUP in {g.name for g in groups.groups}


@pytest.mark.usefixtures("crd")
def test_custom_object_crud(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", widget("w1")
    )
    assert created["metadata"]["generation"] == 1
    got = custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1")
    assert got["spec"] == {"size": 1}
    got["spec"]["size"] = 2
    replaced = custom.replace_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1", got)
    assert replaced["metadata"]["generation"] == 2
    patched = custom.patch_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", "w1", {"spec": {"color": "red"}}
    )
    assert patched["spec"] == {"size": 2, "color": "red"}
    listed = custom.list_namespaced_custom_object(GROUP, "v1", "default", "widgets")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1")
    with pytest.raises(ApiException) as caught:
        custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w1")
    assert caught.value.status == 404


@pytest.mark.usefixtures("crd")
@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"size": "big"}, "spec.size", "FieldValueTypeInvalid"),
        ({"size": 11}, "spec.size", "FieldValueInvalid"),
        ({"size": 1, "color": "green"}, "spec.color", "FieldValueNotSupported"),
    ],
)
def test_schema_validation(
    custom: kubernetes.client.CustomObjectsApi, spec: dict[str, Any], field: str, reason: str
) -> None:
    body = widget("w1")
    body["spec"] = spec
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert status["details"]["causes"][0]["field"] == field
    assert status["details"]["causes"][0]["reason"] == reason
    assert status["details"]["kind"] == "Widget"


@pytest.mark.usefixtures("crd")
def test_required_field(custom: kubernetes.client.CustomObjectsApi) -> None:
    body = widget("w1")
    body["spec"] = {}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert "spec.size: Required value" in json.loads(caught.value.body)["message"]


def test_invalid_name_of_our_kind_reads_like_the_real_server(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    body = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": "demo_aks_pod_id"},
        "spec": {"type": 0, "resourceID": "x", "clientID": "y"},
    }
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "aadpodidentity.k8s.io", "v1", "default", "azureidentities", body
        )
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["message"].startswith(
        'AzureIdentity.aadpodidentity.k8s.io "demo_aks_pod_id" is invalid: metadata.name: '
        'Invalid value: "demo_aks_pod_id": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
    )


@pytest.mark.usefixtures("crd")
def test_pruning(custom: kubernetes.client.CustomObjectsApi) -> None:
    body = widget(
        "w1",
        unknown=1,
        free={"anything": {"goes": True}},
        template={
            "apiVersion": "v1",
            "kind": "X",
            "metadata": {"name": "t", "uid": "dropped"},
            "spec": {"a": "kept", "b": "dropped"},
        },
    )
    body["extra"] = "dropped"
    created = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert "extra" not in created
    assert "unknown" not in created["spec"]
    assert created["spec"]["free"] == {"anything": {"goes": True}}
    assert created["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "X",
        "metadata": {"name": "t"},
        "spec": {"a": "kept"},
    }


@pytest.mark.usefixtures("crd")
def test_status_subresource(custom: kubernetes.client.CustomObjectsApi) -> None:
    body = widget("w1")
    body["status"] = {"ready": True}
    created = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert "status" not in created
    updated = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "widgets", "w1", {"status": {"ready": True}, "spec": {"size": 5}}
    )
    assert updated["status"] == {"ready": True}
    assert updated["spec"]["size"] == 1
    assert updated["metadata"]["generation"] == 1
    main = custom.patch_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", "w1", {"status": {"ready": False}}
    )
    assert main["status"] == {"ready": True}


def test_crd_without_status_subresource_stores_status(
    api_client: kubernetes.client.ApiClient, custom: kubernetes.client.CustomObjectsApi
) -> None:
    kubernetes.client.ApiextensionsV1Api(api_client).create_custom_resource_definition(
        widget_crd(status=False)
    )
    body = widget("w1")
    body["status"] = {"ready": True}
    created = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", body)
    assert created["status"] == {"ready": True}


@pytest.mark.usefixtures("crd")
def test_deleting_the_crd_removes_objects_and_endpoint(
    api_client: kubernetes.client.ApiClient, custom: kubernetes.client.CustomObjectsApi
) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w1"))
    kubernetes.client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(
        f"widgets.{GROUP}"
    )
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(GROUP, "v1", "default", "widgets")
    assert caught.value.status == 404


def test_crd_name_must_match(api_client: kubernetes.client.ApiClient) -> None:
    bad = widget_crd()
    bad["metadata"]["name"] = "wrong.example.com"
    with pytest.raises(ApiException) as caught:
        kubernetes.client.ApiextensionsV1Api(api_client).create_custom_resource_definition(bad)
    assert caught.value.status == 422


@pytest.mark.usefixtures("crd")
def test_deleting_the_crd_sends_deleted_events_then_ends_watches(
    kube: KubeEmulator,
    api_client: kubernetes.client.ApiClient,
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", widget("w1"))
    seen: list[tuple[str, str]] = []

    def watch() -> None:
        for event in kubernetes.watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            "v1",
            "default",
            "widgets",
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"]["metadata"]["name"]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    store = kube.apiserver.store.of(kube.apiserver.resource(f"widgets.{GROUP}"))
    deadline = time.monotonic() + 10
    while not (store.watchers and seen):
        assert time.monotonic() < deadline, "the watch never started"
        time.sleep(0.02)
    started = time.monotonic()
    kubernetes.client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(
        f"widgets.{GROUP}"
    )
    watcher.join(timeout=15)
    assert not watcher.is_alive()
    assert time.monotonic() - started < 10, "the watch outlived its resource"
    assert seen == [("ADDED", "w1"), ("DELETED", "w1")]

    # A CRD created again serves an empty collection that can be watched from scratch.
    kubernetes.client.ApiextensionsV1Api(api_client).create_custom_resource_definition(widget_crd())
    assert custom.list_namespaced_custom_object(GROUP, "v1", "default", "widgets")["items"] == []


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("spec.group", lambda spec: spec.update(group="other.example.com")),
        ("spec.names.plural", lambda spec: spec["names"].update(plural="gadgets")),
    ],
)
def test_a_crds_group_and_plural_are_immutable(
    api_client: kubernetes.client.ApiClient,
    crd: dict[str, Any],
    path: str,
    change: Callable[[dict[str, Any]], None],
) -> None:
    api = kubernetes.client.ApiextensionsV1Api(api_client)
    current = api_client.sanitize_for_serialization(
        api.read_custom_resource_definition(crd["metadata"]["name"])
    )
    change(current["spec"])
    with pytest.raises(kubernetes.client.ApiException) as caught:
        api.replace_custom_resource_definition(crd["metadata"]["name"], current)
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert status["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert causes[path].endswith("field is immutable")
    # Other changes still go through.
    current = api_client.sanitize_for_serialization(
        api.read_custom_resource_definition(crd["metadata"]["name"])
    )
    current["spec"]["names"]["shortNames"] = ["wd"]
    api.replace_custom_resource_definition(crd["metadata"]["name"], current)
