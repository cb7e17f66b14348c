"""Built-in kinds decoded and validated like a real server, through the official clients."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator


def _pod(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }


def _status(caught: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(caught.value.body)  # type: ignore[no-any-return]


def _create_raw(
    api_client: kubernetes.client.ApiClient, path: str, body: Any, **query: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST through the official client's low-level call, keeping the response headers."""
    response = api_client.call_api(
        *api_client.param_serialize(
            "POST",
            path,
            query_params=list(query.items()),
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body,
        )
    )
    response.read()
    return response.status, json.loads(response.data), dict(response.getheaders())


def test_unknown_fields_are_dropped_with_a_warning_by_default(
    api_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    body = _pod()
    body["spec"]["foo"] = 1
    body["spec"]["containers"][0]["bar"] = "x"
    status, created, headers = _create_raw(api_client, "/api/v1/namespaces/default/pods", body)
    assert status == 201
    assert "foo" not in created["spec"]
    assert "bar" not in created["spec"]["containers"][0]
    warning = headers.get("warning") or headers.get("Warning") or ""
    assert 'unknown field \\"spec.foo\\"' in warning
    assert 'unknown field \\"spec.containers[0].bar\\"' in warning
    assert "foo" not in core.read_namespaced_pod("web", "default").to_dict()["spec"]


def test_ignore_drops_silently_and_strict_refuses_with_400(
    api_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    body = _pod("quiet")
    body["spec"]["foo"] = 1
    status, _, headers = _create_raw(
        api_client, "/api/v1/namespaces/default/pods", body, fieldValidation="Ignore"
    )
    assert status == 201
    assert not any(k.lower() == "warning" for k in headers)
    body = _pod("strict")
    body["spec"]["foo"] = 1
    status, answer, _ = _create_raw(
        api_client, "/api/v1/namespaces/default/pods", body, fieldValidation="Strict"
    )
    assert status == 400
    assert answer["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.foo"'
    )


def test_wrong_types_are_a_400_decoding_error(api_client: kubernetes.client.ApiClient) -> None:
    # The client's own models refuse such bodies, so they go through its low-level call.
    path = "/api/v1/namespaces/default/pods"
    body = _pod()
    body["spec"]["containers"] = "nginx"
    status, answer, _ = _create_raw(api_client, path, body)
    assert status == 400
    assert answer["reason"] == "BadRequest"
    assert answer["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go '
        "struct field PodSpec.spec.containers of type []v1.Container"
    )
    body = _pod()
    body["metadata"]["labels"] = {"app": 1}
    status, answer, _ = _create_raw(api_client, path, body)
    assert "ObjectMeta.metadata.labels of type string" in answer["message"]


def test_pod_names_container_names_and_restart_policy_are_validated(
    core: kubernetes.client.CoreV1Api,
) -> None:
    body = _pod("Web_1", restartPolicy="Sometimes")
    body["spec"]["containers"].append({"name": "App", "image": "nginx"})
    body["spec"]["containers"].append({"name": "app", "image": "nginx"})
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", body)
    status = _status(caught)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    causes = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert ("metadata.name", "FieldValueInvalid") in causes
    assert ("spec.containers[1].name", "FieldValueInvalid") in causes
    assert ("spec.containers[2].name", "FieldValueDuplicate") in causes
    assert ("spec.restartPolicy", "FieldValueNotSupported") in causes
    assert (
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"' in status["message"]
    )


def test_finalizer_names_must_be_qualified(core: kubernetes.client.CoreV1Api) -> None:
    body = {"metadata": {"name": "cm", "finalizers": ["bad finalizer"]}}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", body)
    [cause] = _status(caught)["details"]["causes"]
    assert cause["field"] == "metadata.finalizers[0]"
    assert cause["message"].startswith('Invalid value: "bad finalizer": name part must consist')


def test_secret_data_must_be_base64_and_keys_valid(
    api_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    status, answer, _ = _create_raw(
        api_client,
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"name": "s"}, "data": {"password": "not base64!"}},
    )
    assert status == 400
    assert answer["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    )
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "data": {"a b": ""}})
    [cause] = _status(caught)["details"]["causes"]
    assert cause["field"] == "data[a b]"
    assert "a valid config key must consist of alphanumeric characters" in cause["message"]


def test_lease_fields_and_micro_time(api_client: kubernetes.client.ApiClient) -> None:
    leases = kubernetes.client.CoordinationV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        leases.create_namespaced_lease(
            "default", {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}
        )
    status = _status(caught)
    assert status["message"] == (
        'Lease.coordination.k8s.io "l" is invalid: spec.leaseDurationSeconds: Invalid value: 0: '
        "must be greater than 0"
    )
    # MicroTime takes exactly six fractional digits and a zone.
    for stamp, rest, element in (
        ("2026-01-01T00:00:00Z", "Z", ".000000"),
        ("2026-01-01T00:00:00.000001", "", "Z07:00"),
    ):
        body = {"metadata": {"name": "l"}, "spec": {"renewTime": stamp}}
        status_code, answer, _ = _lease_raw(api_client, body)
        assert status_code == 400
        assert answer["message"].endswith(f'cannot parse "{rest}" as "{element}"')
    ok = leases.create_namespaced_lease(
        "default", {"metadata": {"name": "l"}, "spec": {"renewTime": "2026-01-01T00:00:00.000001Z"}}
    )
    assert ok.metadata.name == "l"


def _lease_raw(
    api_client: kubernetes.client.ApiClient, body: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    return _create_raw(api_client, path, body)


def test_timestamps_need_a_zone(api_client: kubernetes.client.ApiClient) -> None:
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "firstTimestamp": "2026-01-01T00:00:00",
    }
    status, answer, _ = _create_raw(api_client, "/api/v1/namespaces/default/events", event)
    assert status == 400
    assert answer["message"].endswith(
        'parsing time "2026-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as '
        '"Z07:00"'
    )


def test_events_v1_required_fields(api_client: kubernetes.client.ApiClient) -> None:
    events = kubernetes.client.EventsV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        events.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "e"},
                "eventTime": "2026-01-01T00:00:00.000001Z",
                "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
                "type": "Normal",
            },
        )
    causes = {(c["field"], c["reason"]) for c in _status(caught)["details"]["causes"]}
    assert causes == {
        ("reportingController", "FieldValueRequired"),
        ("reportingInstance", "FieldValueRequired"),
        ("action", "FieldValueRequired"),
        ("reason", "FieldValueRequired"),
    }


def test_core_event_namespace_must_agree(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "e"},
                "involvedObject": {"kind": "Pod", "name": "web", "namespace": "kube-system"},
                "reason": "R",
            },
        )
    [cause] = _status(caught)["details"]["causes"]
    assert cause == {
        "reason": "FieldValueInvalid",
        "field": "involvedObject.namespace",
        "message": 'Invalid value: "kube-system": does not match event.namespace',
    }


def _deployment(selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }


def test_deployments_are_stored_defaulted_and_validated(
    api_client: kubernetes.client.ApiClient,
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", _deployment({"app": "web"}, {"app": "db"}))
    assert _status(caught)["message"] == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"db"}: `selector` does not match template `labels`'
    )
    created = apps.create_namespaced_deployment(
        "default", _deployment({"app": "web"}, {"app": "web"})
    )
    assert created.spec.replicas == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.template.spec.restart_policy == "Always"
    created.spec.selector.match_labels = {"app": "other"}
    created.spec.template.metadata.labels = {"app": "other"}
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", created)
    [cause] = _status(caught)["details"]["causes"]
    assert cause["field"] == "spec.selector"
    assert cause["message"].endswith("field is immutable")
    dry = apps.create_namespaced_deployment(
        "default",
        {**_deployment({"app": "x"}, {"app": "x"}), "metadata": {"name": "dry"}},
        dry_run="All",
    )
    assert dry.metadata.uid
    assert [d.metadata.name for d in apps.list_namespaced_deployment("default").items] == ["web"]


def test_daemonsets_replicasets_and_pdbs(api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    template = _deployment({"app": "nmi"}, {"app": "nmi"})["spec"]
    template["template"]["spec"]["restartPolicy"] = "Never"
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_daemon_set(
            "default", {"metadata": {"name": "nmi"}, "spec": template}
        )
    [cause] = _status(caught)["details"]["causes"]
    assert cause["message"] == 'Unsupported value: "Never": supported values: "Always"'
    del template["template"]["spec"]["restartPolicy"]
    ds = apps.create_namespaced_daemon_set(
        "default", {"metadata": {"name": "nmi"}, "spec": template}
    )
    assert ds.spec.update_strategy.type == "RollingUpdate"
    rs = apps.create_namespaced_replica_set(
        "default", {"metadata": {"name": "r"}, "spec": template}
    )
    assert rs.spec.replicas == 1
    policy = kubernetes.client.PolicyV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        policy.create_namespaced_pod_disruption_budget(
            "default",
            {"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": "150%"}},
        )
    messages = [c["message"] for c in _status(caught)["details"]["causes"]]
    assert any("minAvailable and maxUnavailable cannot be both set" in m for m in messages)
    assert any("must not be greater than 100%" in m for m in messages)
    pdb = policy.create_namespaced_pod_disruption_budget(
        "default",
        {"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {}}}},
    )
    assert pdb.spec.min_available == 1


def test_the_emulator_python_helpers_decode_too(kube: KubeEmulator) -> None:
    created = kube.create(
        {**_pod("helper"), "metadata": {"name": "helper", "namespace": "default", "zzz": 1}}
    )
    assert "zzz" not in created["metadata"]
