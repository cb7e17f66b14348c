"""Events as a controller reports them and as ``kubectl describe`` looks them up.

Field selectors are the ones kube-apiserver's event strategy offers (``ToSelectableFields``
for core/v1; the ``regarding.*`` names of ``events.k8s.io/v1``).
"""

from __future__ import annotations

import datetime as dt
import json

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator

_FIRST = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
_LAST = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.timezone.utc)


def _core_event(
    name: str,
    *,
    kind: str = "AzureIdentity",
    target: str = "demo",
    namespace: str = "default",
    reason: str = "BindingMissing",
    event_type: str = "Warning",
    component: str = "mic",
    reporting_component: str = "",
) -> kubernetes.client.CoreV1Event:
    return kubernetes.client.CoreV1Event(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace),
        involved_object=kubernetes.client.V1ObjectReference(
            api_version="aadpodidentity.k8s.io/v1",
            kind=kind,
            name=target,
            namespace=namespace,
            uid=f"uid-{target}",
            resource_version="1001",
            field_path="spec.resourceID",
        ),
        reason=reason,
        message="no AzureIdentityBinding selects this identity",
        type=event_type,
        count=3,
        first_timestamp=_FIRST,
        last_timestamp=_LAST,
        source=kubernetes.client.V1EventSource(component=component) if component else None,
        reporting_component=reporting_component,
    )


@pytest.fixture
def events(core: kubernetes.client.CoreV1Api, kube: KubeEmulator) -> kubernetes.client.CoreV1Api:
    """Four core/v1 events in two namespaces, about two objects, from two components."""
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    core.create_namespaced_event("default", _core_event("demo.1"))
    core.create_namespaced_event(
        "default", _core_event("demo.2", reason="Assigned", event_type="Normal")
    )
    core.create_namespaced_event(
        "default", _core_event("web.1", kind="Pod", target="web", component="kubelet")
    )
    core.create_namespaced_event(
        "team",
        _core_event("demo.3", namespace="team", component="", reporting_component="podidentity"),
    )
    return core


def _names(event_list: object) -> list[str]:
    return [e.metadata.name for e in event_list.items]  # type: ignore[attr-defined]


def test_count_and_timestamps_are_kept_as_written(events: kubernetes.client.CoreV1Api) -> None:
    event = events.read_namespaced_event("demo.1", "default")
    assert (event.count, event.first_timestamp, event.last_timestamp) == (3, _FIRST, _LAST)
    assert event.involved_object.field_path == "spec.resourceID"
    event.count = 4
    event.last_timestamp = _LAST + dt.timedelta(minutes=1)
    updated = events.replace_namespaced_event("demo.1", "default", event)
    assert (updated.count, updated.first_timestamp) == (4, _FIRST)
    assert updated.last_timestamp == _LAST + dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.kind=AzureIdentity", ["demo.1", "demo.2"]),
        ("involvedObject.kind=Pod", ["web.1"]),
        ("involvedObject.name=demo,involvedObject.namespace=default", ["demo.1", "demo.2"]),
        ("involvedObject.uid=uid-web", ["web.1"]),
        ("involvedObject.apiVersion=aadpodidentity.k8s.io/v1", ["demo.1", "demo.2", "web.1"]),
        ("involvedObject.resourceVersion=1001,type=Normal", ["demo.2"]),
        ("involvedObject.fieldPath=spec.resourceID,reason=Assigned", ["demo.2"]),
        ("reason!=Assigned", ["demo.1", "web.1"]),
        ("type=Warning", ["demo.1", "web.1"]),
        ("source=kubelet", ["web.1"]),
        ("metadata.name=demo.1", ["demo.1"]),
        ("metadata.namespace=default,reason=BindingMissing", ["demo.1", "web.1"]),
    ],
)
def test_field_selectors_of_core_events(
    events: kubernetes.client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    assert _names(events.list_namespaced_event("default", field_selector=selector)) == expected


def test_source_falls_back_to_the_reporting_component(events: kubernetes.client.CoreV1Api) -> None:
    # The real strategy selects `source` by source.component, else reportingComponent.
    assert _names(events.list_event_for_all_namespaces(field_selector="source=podidentity")) == [
        "demo.3"
    ]
    assert _names(
        events.list_event_for_all_namespaces(field_selector="reportingComponent=podidentity")
    ) == ["demo.3"]


def test_listing_across_namespaces(events: kubernetes.client.CoreV1Api) -> None:
    everything = events.list_event_for_all_namespaces()
    assert [(e.metadata.namespace, e.metadata.name) for e in everything.items] == [
        ("default", "demo.1"),
        ("default", "demo.2"),
        ("default", "web.1"),
        ("team", "demo.3"),
    ]
    assert _names(
        events.list_event_for_all_namespaces(field_selector="involvedObject.namespace=team")
    ) == ["demo.3"]


def test_unsupported_event_field_is_bad_request(events: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        events.list_namespaced_event("default", field_selector="message=x")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["message"] == "field label not supported: message"


def test_kubectl_describe_lookup_finds_a_cluster_scoped_objects_events(
    core: kubernetes.client.CoreV1Api,
) -> None:
    # kubectl describe node sends involvedObject.namespace= (empty) to /api/v1/events.
    core.create_namespaced_event(
        "default", _core_event("node-1.1", kind="Node", target="node-1", namespace="default")
    )
    event = core.read_namespaced_event("node-1.1", "default")
    event.involved_object.namespace = None
    core.replace_namespaced_event("node-1.1", "default", event)
    selector = "involvedObject.name=node-1,involvedObject.namespace=,involvedObject.kind=Node"
    assert _names(core.list_event_for_all_namespaces(field_selector=selector)) == ["node-1.1"]


def _events_v1(name: str, *, controller: str, kind: str = "AzureIdentity") -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "eventTime": "2026-01-01T00:00:00.000001Z",
        "reportingController": controller,
        "reportingInstance": f"{controller}-0",
        "action": "Reconcile",
        "reason": "BindingMissing",
        "type": "Warning",
        "note": "no AzureIdentityBinding selects this identity",
        "regarding": {"kind": kind, "name": "demo", "namespace": "default", "uid": "uid-demo"},
        "series": {"count": 2, "lastObservedTime": "2026-01-01T00:05:00.000001Z"},
    }


def test_events_v1_field_selectors(api_client: kubernetes.client.ApiClient) -> None:
    api = kubernetes.client.EventsV1Api(api_client)
    api.create_namespaced_event("default", _events_v1("a", controller="podidentity.io/mic"))
    api.create_namespaced_event("default", _events_v1("b", controller="kubelet", kind="Pod"))
    created = api.read_namespaced_event("a", "default")
    assert created.series.count == 2
    assert created.note == "no AzureIdentityBinding selects this identity"
    for selector, expected in (
        ("regarding.kind=AzureIdentity,regarding.name=demo", ["a"]),
        ("regarding.uid=uid-demo,regarding.namespace=default", ["a", "b"]),
        ("reportingController=kubelet", ["b"]),
        ("reason=BindingMissing,type=Warning", ["a", "b"]),
        ("metadata.name=b", ["b"]),
    ):
        listed = api.list_namespaced_event("default", field_selector=selector)
        assert _names(listed) == expected, selector
    assert _names(api.list_event_for_all_namespaces()) == ["a", "b"]
    with pytest.raises(ApiException) as caught:
        api.list_namespaced_event("default", field_selector="involvedObject.kind=Pod")
    assert caught.value.status == 400
