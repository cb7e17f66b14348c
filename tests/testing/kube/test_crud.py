"""Create, read, update, patch and delete through the official sync client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator
from tests.testing.kube.kube_manifests import pod


def _status(err: ApiException) -> dict[str, object]:
    body: dict[str, object] = json.loads(err.body)
    return body


def test_create_assigns_metadata(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("default", pod("web"))
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 1000
    assert created.metadata.generation == 1
    assert created.status.phase == "Pending"
    assert created.spec.service_account_name == "default"


def test_resource_versions_increase(core: kubernetes.client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    second = core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    listed = core.list_namespaced_config_map("default")
    assert int(listed.metadata.resource_version) >= int(second.metadata.resource_version)


def test_create_existing_name_is_already_exists(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("web"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod("web"))
    assert caught.value.status == 409
    status = _status(caught.value)
    assert status["reason"] == "AlreadyExists"
    assert status["kind"] == "Status"
    assert status["message"] == 'pods "web" already exists'


def test_get_missing_is_not_found(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("nope", "default")
    assert caught.value.status == 404
    assert _status(caught.value)["details"] == {"name": "nope", "group": "", "kind": "pods"}


def test_create_in_missing_namespace_is_not_found(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("missing", pod("web"))
    assert caught.value.status == 404
    assert _status(caught.value)["message"] == 'namespaces "missing" not found'


def test_stale_update_is_conflict(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    fresh = core.read_namespaced_config_map("cm", "default")
    fresh.data = {"k": "v"}
    core.replace_namespaced_config_map("cm", "default", fresh)
    created.data = {"k": "stale"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", "default", created)
    assert caught.value.status == 409
    assert _status(caught.value)["reason"] == "Conflict"
    assert "the object has been modified" in str(_status(caught.value)["message"])


def test_noop_update_keeps_resource_version(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    again = core.replace_namespaced_config_map("cm", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_invalid_name_is_422_with_the_real_message(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod("demo_aks_pod_id"))
    assert caught.value.status == 422
    status = _status(caught.value)
    assert status["reason"] == "Invalid"
    assert str(status["message"]).startswith(
        'Pod "demo_aks_pod_id" is invalid: metadata.name: Invalid value: "demo_aks_pod_id": '
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
    )
    causes = status["details"]["causes"]  # type: ignore[index]
    assert causes[0]["field"] == "metadata.name"
    assert causes[0]["reason"] == "FieldValueInvalid"


def test_namespace_names_are_dns_labels(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespace({"metadata": {"name": "a.b"}})
    assert caught.value.status == 422
    assert "RFC 1123 label" in str(_status(caught.value)["message"])


def test_pod_without_containers_is_invalid(core: kubernetes.client.CoreV1Api) -> None:
    manifest = pod("web")
    manifest["spec"] = {"containers": [{"name": "app"}]}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", manifest)
    assert "spec.containers[0].image: Required value" in str(_status(caught.value)["message"])


def test_generate_name(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_secret(
        "default", {"metadata": {"generateName": "token-"}, "stringData": {"a": "b"}}
    )
    assert created.metadata.name.startswith("token-")
    assert len(created.metadata.name) == len("token-") + 5
    assert created.type == "Opaque"


def _suffixes(monkeypatch: pytest.MonkeyPatch, *suffixes: str) -> None:
    # The server's suffixes, in order, so a test can make generated names collide.
    from podidentity.testing.kube import _apiserver

    queue = iter(suffixes)
    monkeypatch.setattr(_apiserver, "name_suffix", lambda: next(queue))


def test_generate_name_retries_a_taken_name(
    core: kubernetes.client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suffixes(monkeypatch, "bcdfg", "bcdfg", "bcdfg", "hjklm")
    body = {"metadata": {"generateName": "token-"}, "stringData": {"a": "b"}}
    assert core.create_namespaced_secret("default", body).metadata.name == "token-bcdfg"
    assert core.create_namespaced_secret("default", body).metadata.name == "token-hjklm"


def test_generate_name_gives_up_after_eight_taken_names(
    core: kubernetes.client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suffixes(monkeypatch, *["bcdfg"] * 9)
    body = {"metadata": {"generateName": "token-"}, "stringData": {"a": "b"}}
    core.create_namespaced_secret("default", body)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", body)
    assert caught.value.status == 409
    status = _status(caught.value)
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == (
        'secrets "token-" already exists, the server was not able to generate a unique name '
        "for the object"
    )


def test_generation_counts_spec_changes_only(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("web"))
    labelled = core.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    changed = core.patch_namespaced_pod("web", "default", {"spec": {"activeDeadlineSeconds": 30}})
    assert changed.metadata.generation == 2


def test_status_subresource_separates_spec_and_status(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("web"))
    ignored = core.patch_namespaced_pod("web", "default", {"status": {"phase": "Running"}})
    assert ignored.status.phase == "Pending"
    running = core.patch_namespaced_pod_status(
        "web",
        "default",
        {
            "status": {"phase": "Running", "podIP": "127.0.0.5"},
            "metadata": {"labels": {"ignored": "yes"}},
        },
    )
    assert running.status.phase == "Running"
    assert running.status.pod_ip == "127.0.0.5"
    assert "ignored" not in (running.metadata.labels or {})
    replaced = core.read_namespaced_pod("web", "default")
    replaced.status.phase = "Succeeded"
    replaced = core.replace_namespaced_pod_status("web", "default", replaced)
    assert replaced.status.phase == "Succeeded"


def test_delete_returns_and_removes(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("web"))
    core.delete_namespaced_pod("web", "default")
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("web", "default")
    assert caught.value.status == 404


def test_delete_precondition_mismatch_is_conflict(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("web"))
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod(
            "web",
            "default",
            body=kubernetes.client.V1DeleteOptions(
                preconditions=kubernetes.client.V1Preconditions(uid="other")
            ),
        )
    assert caught.value.status == 409
    assert "Precondition failed: UID in precondition: other" in str(
        _status(caught.value)["message"]
    )


def test_dry_run_persists_nothing(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("default", pod("web"), dry_run="All")
    assert created.metadata.name == "web"
    assert core.list_namespaced_pod("default").items == []


def test_finalizers_hold_deletion(core: kubernetes.client.CoreV1Api) -> None:
    manifest = pod("web")
    manifest["metadata"]["finalizers"] = ["example.com/hold"]  # type: ignore[index]
    core.create_namespaced_pod("default", manifest)
    core.delete_namespaced_pod("web", "default")
    held = core.read_namespaced_pod("web", "default")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.deletion_grace_period_seconds == 0
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_pod(
            "web", "default", [{"op": "add", "path": "/metadata/finalizers/-", "value": "x/y"}]
        )
    assert caught.value.status == 422
    core.patch_namespaced_pod("web", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("web", "default")
    assert gone.value.status == 404


def test_namespace_deletion_removes_its_objects(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_pod("team", pod("web"))
    core.create_namespaced_config_map("team", {"metadata": {"name": "cm"}})
    core.delete_namespace("team")
    kube.settle()
    with pytest.raises(ApiException) as caught:
        core.read_namespace("team")
    assert caught.value.status == 404
    assert kube.list("pods", namespace="team") == []


def test_namespace_waits_for_finalized_objects(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    manifest = pod("web")
    manifest["metadata"]["finalizers"] = ["example.com/hold"]  # type: ignore[index]
    core.create_namespaced_pod("team", manifest)
    core.delete_namespace("team")
    assert core.read_namespace("team").status.phase == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("team", pod("late"))
    assert caught.value.status == 403
    assert core.read_namespaced_pod("web", "team").metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("web", "team", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespace("team")
    assert gone.value.status == 404


def test_delete_collection(core: kubernetes.client.CoreV1Api) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        core.create_namespaced_pod("default", pod(name, tier=tier))
    core.delete_collection_namespaced_pod("default", label_selector="tier=web")
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["c"]


@pytest.mark.parametrize("in_body", [True, False], ids=["body", "query"])
def test_delete_collection_dry_run(core: kubernetes.client.CoreV1Api, in_body: bool) -> None:
    for name in ("a", "b"):
        core.create_namespaced_pod("default", pod(name))
    if in_body:
        options = {"body": kubernetes.client.V1DeleteOptions(dry_run=["All"])}
    else:
        options = {"dry_run": "All"}
    core.delete_collection_namespaced_pod("default", **options)
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["a", "b"]


@pytest.mark.parametrize("in_body", [True, False], ids=["body", "query"])
def test_delete_collection_propagation_policy(
    core: kubernetes.client.CoreV1Api, in_body: bool
) -> None:
    core.create_namespaced_pod("default", pod("a"))

    def delete(policy: str) -> None:
        if in_body:
            body = kubernetes.client.V1DeleteOptions(propagation_policy=policy)
            core.delete_collection_namespaced_pod("default", body=body)
        else:
            core.delete_collection_namespaced_pod("default", propagation_policy=policy)

    with pytest.raises(ApiException) as caught:
        delete("Sideways")
    assert caught.value.status == 422
    assert _status(caught.value)["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
        '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"'
    )
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["a"]
    delete("Foreground")
    assert core.list_namespaced_pod("default").items == []


def test_leases_and_events(api_client: kubernetes.client.ApiClient) -> None:
    leases = kubernetes.client.CoordinationV1Api(api_client)
    lease = leases.create_namespaced_lease(
        "kube-system",
        {
            "metadata": {"name": "podidentity"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    assert (
        leases.replace_namespaced_lease("podidentity", "kube-system", lease).spec.holder_identity
        == "b"
    )
    events = kubernetes.client.EventsV1Api(api_client)
    created = events.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            # A MicroTime: the client re-serialises it with isoformat(), which drops ".000000"
            # (a real server then refuses it), so the microseconds must not be zero.
            "eventTime": "2026-01-01T00:00:00.000001Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "A",
            "reason": "R",
            "type": "Normal",
            "note": "hello",
        },
    )
    assert created.note == "hello"


def test_python_helpers(kube: KubeEmulator) -> None:
    created = kube.create(
        {**pod("web"), "status": {"phase": "Running", "podIP": "127.0.0.9"}}, namespace="default"
    )
    assert created["status"]["podIP"] == "127.0.0.9"
    assert kube.get("pods", "web", namespace="default")["metadata"]["uid"]
    assert [
        p["metadata"]["name"] for p in kube.list("po", field_selector="status.podIP=127.0.0.9")
    ] == ["web"]
    patched = kube.patch("pods", "web", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
    assert patched["metadata"]["labels"] == {"a": "b"}
    kube.delete("pods", "web", namespace="default")
    assert kube.list("pods") == []


def test_verbs_a_resource_does_not_have_are_method_not_allowed(kube: KubeEmulator) -> None:
    # Namespaces have no deletecollection: a DELETE of the collection must not wipe the cluster.
    url = f"{kube.url}/api/v1/namespaces"  # the emulator's own http:// URL
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"))  # noqa: S310
    assert caught.value.code == 405
    assert json.loads(caught.value.read())["reason"] == "MethodNotAllowed"
    assert kube.get("namespaces", "default")["status"]["phase"] == "Active"


def test_a_repeated_query_parameter_is_read_by_its_first_value(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    # One rule in every emulator, as the API server and Go's url.Values.Get: the first wins.
    core.create_namespaced_pod("default", pod("a", app="a"))
    core.create_namespaced_pod("default", pod("b", app="b"))
    with httpx.Client(base_url=kube.url) as http:
        pods = http.get(
            "/api/v1/namespaces/default/pods?labelSelector=app%3Da&labelSelector=app%3Db"
        )
        limited = http.get("/api/v1/namespaces/default/pods?limit=1&limit=5")
    assert [p["metadata"]["name"] for p in pods.json()["items"]] == ["a"]
    assert len(limited.json()["items"]) == 1
    assert limited.json()["metadata"]["continue"]
