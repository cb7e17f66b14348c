"""core/v1 and events.k8s.io/v1 events are one set of objects, converted between the APIs.

The real server stores events once, in core form, and converts on every read, list and watch
(``pkg/apis/events/v1/conversion.go``), so whichever API a reporter uses, ``kubectl describe``
and every other reader see its events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

_FIRST = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
_LAST = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.timezone.utc)
_EVENT_TIME = "2026-01-01T00:00:00.000001Z"


def _events_v1_body(name: str, *, kind: str = "AzureIdentity") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "eventTime": _EVENT_TIME,
        "reportingController": "podidentity.io/mic",
        "reportingInstance": "mic-0",
        "action": "Reconcile",
        "reason": "BindingMissing",
        "type": "Warning",
        "note": "no AzureIdentityBinding selects this identity",
        "regarding": {"kind": kind, "name": "demo", "namespace": "default", "uid": "uid-demo"},
        "related": {"kind": "Pod", "name": "web", "namespace": "default"},
        "series": {"count": 2, "lastObservedTime": "2026-01-01T00:05:00.000001Z"},
        # No deprecated* fields: events.k8s.io/v1 refuses them on create (422 "needs to be
        # unset"), as a real server does.
    }


def _core_event(name: str, *, kind: str = "Pod") -> kubernetes.client.CoreV1Event:
    # With an eventTime: without one, the events.k8s.io/v1 form has none either (the real
    # server sends null), and the Python client's EventsV1Event model refuses to load it.
    return kubernetes.client.CoreV1Event(
        # A MicroTime: the client drops ".000000" when the microseconds are zero, which a real
        # server refuses, so they are not.
        event_time=_FIRST.replace(microsecond=1),
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace="default"),
        involved_object=kubernetes.client.V1ObjectReference(
            kind=kind, name="web", namespace="default", uid="uid-web"
        ),
        reason="NoIdentity",
        message="no AzureIdentityBinding matches the pod",
        type="Normal",
        count=4,
        first_timestamp=_FIRST,
        last_timestamp=_LAST,
        source=kubernetes.client.V1EventSource(component="nmi", host="node-2"),
        reporting_component="podidentity.io/nmi",
        reporting_instance="nmi-1",
        action="Bind",  # required of an event with an eventTime
    )


@pytest.fixture
def events_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.EventsV1Api:
    """``EventsV1Api`` over the emulator."""
    return kubernetes.client.EventsV1Api(api_client)


@pytest.fixture
def one_event_through_each_api(
    events_v1: kubernetes.client.EventsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    """``demo.1`` (an AzureIdentity's) written as events.k8s.io/v1, ``web.1`` (a pod's) as core."""
    events_v1.create_namespaced_event("default", _events_v1_body("demo.1"))
    core.create_namespaced_event("default", _core_event("web.1"))


def _names(event_list: Any) -> list[str]:
    return [e.metadata.name for e in event_list.items]


def test_an_events_v1_event_reads_through_core_v1(
    events_v1: kubernetes.client.EventsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    events_v1.create_namespaced_event("default", _events_v1_body("demo.1"))
    event = core.read_namespaced_event("demo.1", "default")
    assert event.api_version == "v1"
    assert (event.involved_object.kind, event.involved_object.uid) == ("AzureIdentity", "uid-demo")
    assert event.message == "no AzureIdentityBinding selects this identity"
    assert (event.reporting_component, event.reporting_instance) == ("podidentity.io/mic", "mic-0")
    assert event.source is None
    assert event.count is None
    assert event.first_timestamp is None
    assert (event.action, event.reason, event.type) == ("Reconcile", "BindingMissing", "Warning")
    assert event.series.count == 2
    assert event.related.name == "web"
    assert event.event_time is not None
    assert _names(core.list_namespaced_event("default")) == ["demo.1"]


def test_a_core_v1_event_reads_through_events_v1(
    events_v1: kubernetes.client.EventsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_event("default", _core_event("web.1"))
    event = events_v1.read_namespaced_event("web.1", "default")
    assert event.api_version == "events.k8s.io/v1"
    assert (event.regarding.kind, event.regarding.uid) == ("Pod", "uid-web")
    assert event.note == "no AzureIdentityBinding matches the pod"
    assert (event.reporting_controller, event.reporting_instance) == ("podidentity.io/nmi", "nmi-1")
    assert (event.deprecated_source.component, event.deprecated_source.host) == ("nmi", "node-2")
    assert event.deprecated_count == 4
    assert (event.deprecated_first_timestamp, event.deprecated_last_timestamp) == (_FIRST, _LAST)
    assert _names(events_v1.list_event_for_all_namespaces()) == ["web.1"]


def test_writes_through_one_api_are_seen_by_the_other(
    events_v1: kubernetes.client.EventsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    created = events_v1.create_namespaced_event("default", _events_v1_body("demo.1"))
    event = core.read_namespaced_event("demo.1", "default")
    # One object, one resourceVersion, whichever API reads it.
    assert event.metadata.resource_version == created.metadata.resource_version
    assert event.metadata.uid == created.metadata.uid
    event.count = 5
    updated = core.replace_namespaced_event("demo.1", "default", event)
    assert events_v1.read_namespaced_event("demo.1", "default").deprecated_count == 5
    stale = events_v1.read_namespaced_event("demo.1", "default")
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        events_v1.replace_namespaced_event("demo.1", "default", stale)
    assert conflict.value.status == 409
    stale.metadata.resource_version = updated.metadata.resource_version
    events_v1.replace_namespaced_event("demo.1", "default", stale)
    events_v1.delete_namespaced_event("demo.1", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_event("demo.1", "default")
    assert gone.value.status == 404
    core.create_namespaced_event("default", _core_event("web.1"))
    with pytest.raises(ApiException) as exists:
        events_v1.create_namespaced_event("default", _events_v1_body("web.1"))
    assert exists.value.status == 409


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.kind=AzureIdentity", ["demo.1"]),
        ("involvedObject.uid=uid-web", ["web.1"]),
        ("reportingComponent=podidentity.io/mic", ["demo.1"]),
        ("source=nmi", ["web.1"]),
        ("source=podidentity.io/mic", ["demo.1"]),
        ("type=Warning", ["demo.1"]),
    ],
)
def test_core_selectors_apply_to_events_v1_writes(
    one_event_through_each_api: None,
    core: kubernetes.client.CoreV1Api,
    selector: str,
    expected: list[str],
) -> None:
    assert _names(core.list_namespaced_event("default", field_selector=selector)) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("regarding.kind=Pod", ["web.1"]),
        ("regarding.name=web,regarding.namespace=default", ["web.1"]),
        ("reportingController=podidentity.io/nmi", ["web.1"]),
        ("source=nmi", ["web.1"]),
        ("reason=BindingMissing", ["demo.1"]),
    ],
)
def test_events_v1_selectors_apply_to_core_writes(
    one_event_through_each_api: None,
    events_v1: kubernetes.client.EventsV1Api,
    selector: str,
    expected: list[str],
) -> None:
    assert _names(events_v1.list_namespaced_event("default", field_selector=selector)) == expected


def test_events_v1_source_selector_falls_back_to_the_reporting_controller(
    events_v1: kubernetes.client.EventsV1Api,
) -> None:
    body = _events_v1_body("demo.1")
    events_v1.create_namespaced_event("default", body)
    selected = events_v1.list_namespaced_event(
        "default", field_selector="source=podidentity.io/mic"
    )
    assert _names(selected) == ["demo.1"]


END = "end.marker"


def _watch(list_events: Any, since: str) -> list[dict[str, Any]]:
    """Every event from ``since`` up to the ``END`` marker, which the test writes last.

    Ending on the marker rather than on the server's timeout: an event too many or too few
    before it still shows, and the watch does not idle until it times out.
    """
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(list_events, "default", resource_version=since, timeout_seconds=30):
        if event["raw_object"]["metadata"]["name"] == END:
            watch.stop()
            return seen
        seen.append({"type": event["type"], "object": event["raw_object"]})
    raise AssertionError(f"the watch ended before {END}: {seen}")


def test_watchers_of_both_apis_see_writes_through_either(
    events_v1: kubernetes.client.EventsV1Api,
    core: kubernetes.client.CoreV1Api,
) -> None:
    since = core.list_namespaced_event("default").metadata.resource_version
    events_v1.create_namespaced_event("default", _events_v1_body("demo.1"))
    core.create_namespaced_event("default", _core_event("web.1"))
    core.delete_namespaced_event("demo.1", "default")
    core.create_namespaced_event("default", _core_event(END))
    expected = [("ADDED", "demo.1"), ("ADDED", "web.1"), ("DELETED", "demo.1")]

    core_seen = _watch(core.list_namespaced_event, since)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in core_seen] == expected
    assert core_seen[0]["object"]["involvedObject"]["kind"] == "AzureIdentity"
    assert core_seen[0]["object"]["apiVersion"] == "v1"

    v1_seen = _watch(events_v1.list_namespaced_event, since)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in v1_seen] == expected
    assert v1_seen[1]["object"]["regarding"]["kind"] == "Pod"
    assert v1_seen[1]["object"]["apiVersion"] == "events.k8s.io/v1"
    rvs = [e["object"]["metadata"]["resourceVersion"] for e in core_seen]
    assert rvs == [e["object"]["metadata"]["resourceVersion"] for e in v1_seen]
