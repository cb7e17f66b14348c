"""Table printers of built-in kinds whose columns are computed, not read from one path.

The real server prints pods and events with Go functions (``pkg/printers/internalversion``),
always in wide mode: kubectl hides the ``priority: 1`` columns unless ``-o wide``. Those
columns are reproduced here so ``kubectl get pods -o wide`` and ``kubectl get events`` look
as they do against a cluster. Columns are ``(name, priority, format)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from podidentity.models._time import parse_rfc3339

from ._event_conversion import to_core_event

__all__ = ["EVENTS_V1_PRINTER", "EVENT_PRINTER", "POD_PRINTER", "Printer", "human_duration"]

_NONE = "<none>"


@attrs.frozen
class Printer:
    """The columns of a kind's table (``Name`` included) and how to compute one row."""

    columns: tuple[tuple[str, int, str], ...]
    row: Callable[[Mapping[str, Any]], list[Any]]


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration``: ``45s``, ``3m20s``, ``5h12m``, ``3d4h``, ``2y331d``."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def since(timestamp: Any, now: dt.datetime | None = None) -> str:
    """How long ago an RFC 3339 time (seconds or micro-seconds) was; ``<unknown>`` if unset."""
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = parse_rfc3339(timestamp)
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.timezone.utc)
    elapsed = ((now or dt.datetime.now(dt.timezone.utc)) - then).total_seconds()
    return human_duration(elapsed)


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, Mapping) else None
    return obj


# ---------------------------------------------------------------------------------------- pods


def _pod_row(pod: Mapping[str, Any]) -> list[Any]:
    """``printPod``: READY, STATUS (the reason kubectl users know), RESTARTS, AGE, wide cells."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase") or ""
    restarts, ready, running = 0, 0, False
    last_restart: str | None = None
    for container in reversed(statuses):
        restarts += int(container.get("restartCount") or 0)
        finished = _get(container, "lastState", "terminated", "finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated is not None:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and state.get("running") is not None:
            running = True
            ready += 1
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    if reason == "Completed" and running:
        reason = "Running" if conditions.get("Ready") == "True" else "NotReady"
    if _get(pod, "metadata", "deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    restart_text = str(restarts)
    if restarts and last_restart:
        restart_text = f"{restarts} ({since(last_restart)} ago)"
    gates = spec.get("readinessGates") or []
    gate_text = _NONE
    if gates:
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gate_text = f"{passed}/{len(gates)}"
    return [
        _get(pod, "metadata", "name") or "",
        f"{ready}/{len(spec.get('containers') or ())}",
        reason,
        restart_text,
        since(_get(pod, "metadata", "creationTimestamp")),
        status.get("podIP") or _NONE,
        spec.get("nodeName") or _NONE,
        status.get("nominatedNodeName") or _NONE,
        gate_text,
    ]


POD_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Ready", 0, ""),
        ("Status", 0, ""),
        ("Restarts", 0, ""),
        ("Age", 0, ""),
        ("IP", 1, ""),
        ("Node", 1, ""),
        ("Nominated Node", 1, ""),
        ("Readiness Gates", 1, ""),
    ),
    row=_pod_row,
)

# -------------------------------------------------------------------------------------- events


def _event_row(
    *,
    name: str,
    event_type: str,
    reason: str,
    regarding: Mapping[str, Any],
    message: str,
    component: str,
    instance: str,
    first: Any,
    last: Any,
    event_time: Any,
    count: int,
    series: Mapping[str, Any] | None,
) -> list[Any]:
    """``printEvent``, shared by core/v1 and events.k8s.io/v1 (one internal type upstream)."""
    first_seen = since(first) if first else since(event_time)
    last_seen = since(last) if last else first_seen
    if series:
        last_seen = since(series.get("lastObservedTime"))
        count = int(series.get("count") or 0)
    elif not count:
        count = 1  # singleton events of the new API carry no count
    kind = str(regarding.get("kind") or "").lower()
    target = f"{kind}/{regarding['name']}" if regarding.get("name") else kind
    source = f"{component}, {instance}" if component and instance else component
    return [
        last_seen,
        event_type,
        reason,
        target,
        regarding.get("fieldPath") or "",
        source,
        message.strip(),
        first_seen,
        count,
        name,
    ]


def _core_event_row(event: Mapping[str, Any]) -> list[Any]:
    return _event_row(
        name=_get(event, "metadata", "name") or "",
        event_type=event.get("type") or "",
        reason=event.get("reason") or "",
        regarding=event.get("involvedObject") or {},
        message=event.get("message") or "",
        component=_get(event, "source", "component") or event.get("reportingComponent") or "",
        instance=_get(event, "source", "host") or event.get("reportingInstance") or "",
        first=event.get("firstTimestamp"),
        last=event.get("lastTimestamp"),
        event_time=event.get("eventTime"),
        count=int(event.get("count") or 0),
        series=event.get("series"),
    )


def _events_v1_row(event: Mapping[str, Any]) -> list[Any]:
    # One printer for both APIs, over the core form, as upstream prints the internal type.
    return _core_event_row(to_core_event(event))


_EVENT_COLUMNS = (
    ("Last Seen", 0, ""),
    ("Type", 0, ""),
    ("Reason", 0, ""),
    ("Object", 0, ""),
    ("Subobject", 1, ""),
    ("Source", 1, ""),
    ("Message", 0, ""),
    ("First Seen", 1, ""),
    ("Count", 1, ""),
    ("Name", 1, "name"),
)
EVENT_PRINTER = Printer(columns=_EVENT_COLUMNS, row=_core_event_row)
EVENTS_V1_PRINTER = Printer(columns=_EVENT_COLUMNS, row=_events_v1_row)
