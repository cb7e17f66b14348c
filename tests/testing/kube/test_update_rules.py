"""Update rules as the real server applies them, through the official client.

Unconditional updates (no resourceVersion), uid preconditions, where ``metadata.generation``
exists and when it moves; and list metadata and 429 bodies as the real server writes them.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator
from tests.testing.kube.kube_manifests import pod

GROUP = "aadpodidentity.k8s.io"


def _status(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def identity(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": name, **metadata},
        "spec": {
            "type": 0,
            "resourceID": "/subscriptions/s/resourceGroups/rg/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/x",
            "clientID": "00000000-0000-0000-0000-000000000001",
        },
    }


def test_leases_and_custom_resources_refuse_updates_without_a_resource_version(
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    api_client: kubernetes.client.ApiClient,
) -> None:
    leases = kubernetes.client.CoordinationV1Api(api_client)
    created = leases.create_namespaced_lease("default", {"metadata": {"name": "lock"}})
    created.metadata.resource_version = None
    with pytest.raises(ApiException) as lease:
        leases.replace_namespaced_lease("lock", "default", created)
    assert lease.value.status == 422
    assert _status(lease.value)["message"] == (
        'leases.coordination.k8s.io "lock" is invalid: metadata.resourceVersion: Invalid value: '
        "0x0: must be specified for an update"
    )
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "azureidentities", identity("a"))
    with pytest.raises(ApiException) as cr:
        custom.replace_namespaced_custom_object(
            GROUP, "v1", "default", "azureidentities", "a", identity("a")
        )
    assert cr.value.status == 422
    assert _status(cr.value)["details"]["kind"] == "azureidentities"
    # Pods and config maps allow an unconditional update, as their strategies say.
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    replaced = core.replace_namespaced_config_map(
        "cm", "default", {"metadata": {"name": "cm"}, "data": {"k": "v"}}
    )
    assert replaced.data == {"k": "v"}
    core.create_namespaced_pod("default", pod("web"))
    # The pod as stored (its spec is immutable), with no resourceVersion: still accepted.
    body = core.api_client.sanitize_for_serialization(core.read_namespaced_pod("web", "default"))
    del body["metadata"]["resourceVersion"]
    body["metadata"]["labels"] = {"a": "b"}
    assert core.replace_namespaced_pod("web", "default", body).metadata.labels == {"a": "b"}


def test_a_put_naming_another_uid_is_a_conflict(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    stale = {"metadata": {"name": "cm", "uid": "0d5e6f70-0000-0000-0000-000000000000"}}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", "default", stale)
    assert caught.value.status == 409
    assert _status(caught.value)["reason"] == "Conflict"
    assert _status(caught.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": StorageError: invalid object, Code: 4, '
        "Key: /registry/configmaps/default/cm, ResourceVersion: 0, AdditionalErrorMsg: "
        "Precondition failed: UID in precondition: 0d5e6f70-0000-0000-0000-000000000000, UID in "
        f"object meta: {created.metadata.uid}"
    )
    # The right uid is a precondition that holds.
    same = {"metadata": {"name": "cm", "uid": created.metadata.uid}, "data": {"a": "1"}}
    assert core.replace_namespaced_config_map("cm", "default", same).data == {"a": "1"}
    # A patch cannot change the uid either: it is immutable.
    with pytest.raises(ApiException) as patched:
        core.patch_namespaced_config_map("cm", "default", {"metadata": {"uid": "other"}})
    assert patched.value.status == 422
    assert _status(patched.value)["message"] == (
        'ConfigMap "cm" is invalid: metadata.uid: Invalid value: "other": field is immutable'
    )


def test_generation_only_on_kinds_that_keep_it(
    kube: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert cm.metadata.generation is None
    changed = core.patch_namespaced_config_map("cm", "default", {"data": {"k": "v"}})
    assert changed.metadata.generation is None
    secret = core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert secret.metadata.generation is None
    assert core.read_namespace("default").metadata.generation is None
    # Pods have had one since 1.33 (KEP 5067); custom resources and CRDs always.
    assert core.create_namespaced_pod("default", pod("web")).metadata.generation == 1
    created = custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "azureidentities", identity("a")
    )
    assert created["metadata"]["generation"] == 1
    crd = kube.get("customresourcedefinitions", f"azureidentities.{GROUP}")
    assert crd["metadata"]["generation"] >= 1


def test_generation_is_bumped_when_deletion_starts(
    core: kubernetes.client.CoreV1Api, custom: kubernetes.client.CustomObjectsApi
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, "v1", "default", "azureidentities", identity("held", finalizers=["example.com/x"])
    )
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "azureidentities", "held")
    deleting = custom.get_namespaced_custom_object(
        GROUP, "v1", "default", "azureidentities", "held"
    )
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["generation"] == 2
    # A second delete does not bump it again; nor does a kind without generation get one.
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "azureidentities", "held")
    again = custom.get_namespaced_custom_object(GROUP, "v1", "default", "azureidentities", "held")
    assert again["metadata"]["generation"] == 2
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/x"]}}
    )
    core.delete_namespaced_config_map("held", "default")
    assert core.read_namespaced_config_map("held", "default").metadata.generation is None


# --- smaller rules ------------------------------------------------------------------------


def test_remaining_item_count_only_without_selectors(core: kubernetes.client.CoreV1Api) -> None:
    for index in range(3):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"c{index}", "labels": {"app": "x"}}}
        )
    plain = core.list_namespaced_config_map("default", limit=1)
    assert plain.metadata.remaining_item_count == 2
    assert plain.metadata._continue
    selected = core.list_namespaced_config_map("default", limit=1, label_selector="app=x")
    assert selected.metadata._continue
    assert selected.metadata.remaining_item_count is None
    fields = core.list_namespaced_config_map(
        "default", limit=1, field_selector="metadata.namespace=default"
    )
    assert fields.metadata.remaining_item_count is None


def test_429_bodies_carry_retry_after_seconds(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    kube.fail_next("pods", "list", status=429, message="Too many requests")
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default")
    body = _status(caught.value)
    assert caught.value.status == 429
    assert body["reason"] == "TooManyRequests"
    assert body["details"] == {"retryAfterSeconds": 1}
    assert "retry-after" not in {k.lower() for k in caught.value.headers}
