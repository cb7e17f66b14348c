"""Field selectors (``fieldSelector=spec.nodeName=node-1,status.phase!=Failed``).

Each resource supports a fixed set of fields, as in the real server; anything else is a 400
``field label not supported``. Field values are compared as strings (``spec.hostNetwork=true``).
Most fields are paths into the object; a few are computed the way the real server's
``ToSelectableFields`` computes them (an event's ``source``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._errors import APIError

__all__ = ["FieldSelector", "supported_fields"]

_COMMON = ("metadata.name", "metadata.namespace")
_EXTRA: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "namespaces"): ("status.phase",),
    ("", "secrets"): ("type",),
    ("events.k8s.io", "events"): (
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "source",
        "type",
    ),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def _event_source(event: Mapping[str, Any]) -> str:
    # Events written through events.k8s.io/v1 have no source.component: the real server then
    # selects them by their reporting controller.
    return _value(event, "source.component") or _value(event, "reportingComponent")


def _events_v1_source(event: Mapping[str, Any]) -> str:
    # The real server maps events.k8s.io/v1 `source` to the core field of the same name, which
    # reads as `_event_source` does, here on the converted names.
    return _value(event, "deprecatedSource.component") or _value(event, "reportingController")


_COMPUTED: Mapping[tuple[str, str, str], Callable[[Mapping[str, Any]], str]] = {
    ("", "events", "source"): _event_source,
    ("events.k8s.io", "events", "source"): _events_v1_source,
}


def supported_fields(group: str, plural: str) -> tuple[str, ...]:
    """The field labels a resource can be selected by."""
    return _COMMON + _EXTRA.get((group, plural), ())


def _value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@attrs.frozen
class FieldSelector:
    """A parsed field selector: all requirements must hold."""

    requirements: tuple[tuple[str, str, str], ...]
    #: per requirement, how to compute a field that is not a plain path (else ``None``).
    getters: tuple[Callable[[Mapping[str, Any]], str] | None, ...]

    @classmethod
    def parse(cls, text: str, group: str, plural: str) -> FieldSelector:
        """Parse ``text`` for resource ``group/plural``; 400 for syntax or unsupported fields."""
        allowed = supported_fields(group, plural)
        requirements = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            for op in ("!=", "==", "="):
                if op in part:
                    field, value = part.split(op, 1)
                    break
            else:
                raise APIError.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            field = field.strip()
            if field not in allowed:
                raise APIError.bad_request(f"field label not supported: {field}")
            requirements.append((field, "!=" if op == "!=" else "=", value.strip()))
        getters = tuple(_COMPUTED.get((group, plural, f)) for f, _, _ in requirements)
        return cls(tuple(requirements), getters)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` satisfies every requirement."""
        for (field, op, value), getter in zip(self.requirements, self.getters, strict=True):
            actual = getter(obj) if getter is not None else _value(obj, field)
            if (actual == value) != (op == "="):
                return False
        return True

    def as_predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        """``matches`` as a plain function."""
        return self.matches
