"""List and watch options, label selectors and selector transitions, as a real server has them.

Through the official client where it can send the request, raw HTTP (httpx) where the client
would refuse to (non-numeric ``limit``) or hides the wire (watch ERROR events).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator

_CMS = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


@pytest.fixture
def http(kube: KubeEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kube.url, timeout=30) as client:
        yield client


def invalid(caught: pytest.ExceptionInfo[ApiException]) -> str:
    assert caught.value.status == 422
    body = json.loads(caught.value.body)
    assert (body["kind"], body["reason"]) == ("Status", "Invalid")
    assert body["details"]["kind"] == "ListOptions"
    return str(body["message"])


def test_values_that_do_not_decode_are_400_in_status_shape(http: httpx.Client) -> None:
    for params in ({"limit": "ten"}, {"watch": "1", "timeoutSeconds": "soon"}):
        response = http.get(_CMS, params=params)
        assert response.status_code == 400, params
        body = response.json()
        assert (body["kind"], body["status"], body["reason"]) == ("Status", "Failure", "BadRequest")
        assert body["message"].startswith("strconv.ParseInt: parsing ")


def test_timeout_seconds_zero_means_the_default(kube: KubeEmulator, http: httpx.Client) -> None:
    rv = kube.resource_version
    params = {"watch": "1", "timeoutSeconds": "0", "resourceVersion": rv}
    with http.stream("GET", _CMS, params=params) as stream:
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", **cm("late")}, namespace="default")
        line = next(stream.iter_lines())
    event = json.loads(line)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "late")


def test_forbidden_combinations_are_422(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", resource_version_match="NotOlderThan")
    assert invalid(caught) == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", send_initial_events=True)
    assert "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list" in invalid(
        caught
    )
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(
            "default", resource_version="0", resource_version_match="Exact"
        )
    assert 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"' in invalid(caught)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(
            "default", resource_version="1", resource_version_match="Newest"
        )
    assert (
        'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", '
        '"NotOlderThan", ""'
    ) in invalid(caught)


def test_watch_combinations_are_422(core: kubernetes.client.CoreV1Api) -> None:
    def watch(**options: Any) -> str:
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_config_map("default", watch=True, **options)
        return invalid(caught)

    assert watch(send_initial_events=True) == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    )
    assert (
        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
        in watch(resource_version="1", resource_version_match="NotOlderThan")
    )
    exact = watch(resource_version="1", resource_version_match="Exact", send_initial_events=True)
    assert 'Unsupported value: "Exact": supported values: "NotOlderThan"' in exact


def test_send_initial_events_ends_with_the_initial_events_end_bookmark(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    for name in ("a", "b"):
        core.create_namespaced_config_map("default", cm(name))
    watch = kubernetes.watch.Watch()
    seen: list[tuple[str, Any]] = []
    for event in watch.stream(
        core.list_namespaced_config_map,
        "default",
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=30,
    ):
        seen.append((event["type"], event["raw_object"]))
        if event["type"] == "BOOKMARK":
            watch.stop()
    assert [(kind, obj["metadata"].get("name")) for kind, obj in seen] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("BOOKMARK", None),
    ]
    bookmark = seen[-1][1]["metadata"]
    assert bookmark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["resourceVersion"] == kube.resource_version


def test_send_initial_events_false_starts_from_the_resource_version(
    kube: KubeEmulator, http: httpx.Client
) -> None:
    http.post(_CMS, json=cm("before"))
    rv = kube.resource_version
    http.post(_CMS, json=cm("after"))
    params = {
        "watch": "1",
        "sendInitialEvents": "false",
        "resourceVersionMatch": "NotOlderThan",
        "resourceVersion": rv,
        "timeoutSeconds": "30",
    }
    with http.stream("GET", _CMS, params=params) as stream:
        line = next(stream.iter_lines())
    assert json.loads(line)["object"]["metadata"]["name"] == "after"


def test_a_future_resource_version_is_refused(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api, http: httpx.Client
) -> None:
    core.create_namespaced_config_map("default", cm("a"))
    current = int(kube.resource_version)
    future = str(current + 100)
    expected = f"Timeout: Too large resource version: {future}, current: {current}"
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", resource_version=future)
    got = http.get(f"{_CMS}/a", params={"resourceVersion": future})  # a get, over raw HTTP
    for status, body in ((caught.value.status, json.loads(caught.value.body)), (504, got.json())):
        assert status == 504
        assert body["code"] == 504
        assert (body["reason"], body["message"]) == ("Timeout", expected)
        assert body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
        assert body["details"]["retryAfterSeconds"] == 1
    assert got.status_code == 504
    # A watch is accepted, then ends with the error as an event.
    with http.stream("GET", _CMS, params={"watch": "1", "resourceVersion": future}) as stream:
        lines = list(stream.iter_lines())
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["message"]) == (504, expected)


def test_an_exact_list_is_the_state_at_that_resource_version(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", cm("first"))
    rv = kube.resource_version
    core.create_namespaced_config_map("default", cm("second"))
    core.delete_namespaced_config_map("first", "default")
    exact = core.list_namespaced_config_map(
        "default", resource_version=rv, resource_version_match="Exact"
    )
    assert [c.metadata.name for c in exact.items] == ["first"]
    assert exact.metadata.resource_version == rv
    newer = core.list_namespaced_config_map(
        "default", resource_version=rv, resource_version_match="NotOlderThan"
    )
    assert [c.metadata.name for c in newer.items] == ["second"]
    kube.expire_watch_window()
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(
            "default", resource_version=rv, resource_version_match="Exact"
        )
    assert caught.value.status == 410


def test_leaving_a_selection_is_deleted_with_the_previous_object_and_the_new_version(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    created = core.create_namespaced_config_map("default", cm("c", app="web"))
    moved = core.patch_namespaced_config_map(
        "c", "default", {"metadata": {"labels": {"app": "db"}}}
    )
    back = core.patch_namespaced_config_map(
        "c", "default", {"metadata": {"labels": {"app": "web"}}}
    )
    events = []
    for event in kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="app=web",
        resource_version=created.metadata.resource_version,
        timeout_seconds=2,
    ):
        events.append((event["type"], event["raw_object"]["metadata"]))
        if len(events) == 2:
            break
    (left, before), (joined, after) = events
    assert left == "DELETED"
    assert before["labels"] == {"app": "web"}  # as the watcher last saw it
    assert before["resourceVersion"] == moved.metadata.resource_version
    assert joined == "ADDED"
    assert after["resourceVersion"] == back.metadata.resource_version


def test_label_selectors_parse_as_labels_parse(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", cm("one", tier="1", app="web"))
    core.create_namespaced_config_map("default", cm("three", tier="3", app=""))
    core.create_namespaced_config_map("default", cm("text", tier="high"))
    core.create_namespaced_config_map("default", cm("none"))

    def selected(selector: str) -> list[str]:
        items = core.list_namespaced_config_map("default", label_selector=selector).items
        return sorted(c.metadata.name for c in items)

    assert selected("tier>2") == ["three"]  # "high" is not a number: never matches
    assert selected("tier<2") == ["one"]
    assert selected("tier>0,tier<5") == ["one", "three"]
    assert selected("!tier") == ["none"]
    assert selected("app in ()") == ["three"]  # upstream reads "()" as the empty value
    assert selected("app==web") == ["one"]
    assert selected("app notin (web)") == ["none", "text", "three"]
    for selector, message in (
        (
            "tier>high",
            "unable to parse requirement: values[0]: Invalid value: \"high\": for 'Gt', 'Lt' "
            "operators, the value must be an integer",
        ),
        (
            "-tier=1",
            'unable to parse requirement: key: Invalid value: "-tier": name part must consist '
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
        (
            "tier 1",
            "unable to parse requirement: found '1', expected: in, notin, =, ==, !=, gt, lt",
        ),
    ):
        with pytest.raises(ApiException) as caught:
            selected(selector)
        assert caught.value.status == 400, selector
        assert json.loads(caught.value.body)["message"] == message
