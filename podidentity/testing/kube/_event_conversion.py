"""Conversion between core/v1 ``Event`` and ``events.k8s.io/v1`` ``Event``.

The real server stores events once, in the core form, and serves ``events.k8s.io/v1`` by
converting (``pkg/apis/events/v1/conversion.go``). These functions are that conversion on
wire dictionaries. Renamed fields:

=====================================  ==============================
events.k8s.io/v1                       core/v1
=====================================  ==============================
``regarding``                          ``involvedObject``
``note``                               ``message``
``reportingController``                ``reportingComponent``
``deprecatedSource``                   ``source``
``deprecatedCount``                    ``count``
``deprecatedFirstTimestamp``           ``firstTimestamp``
``deprecatedLastTimestamp``            ``lastTimestamp``
=====================================  ==============================

Everything else (``metadata``, ``eventTime``, ``series``, ``action``, ``related``, ``type``,
``reason``, ``reportingInstance``) has the same name in both. ``reportingController`` maps to
``reportingComponent``, not to ``source.component``, because that is what the real conversion
does; readers that want a component fall back from one to the other (``kubectl describe``,
the ``source`` field selector).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CORE_API_VERSION", "EVENTS_V1_API_VERSION", "to_core_event", "to_events_v1_event"]

CORE_API_VERSION = "v1"
EVENTS_V1_API_VERSION = "events.k8s.io/v1"

#: (events.k8s.io/v1 name, core/v1 name) of the fields the two forms name differently.
_RENAMED = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
)
_TO_CORE = dict(_RENAMED)
_TO_EVENTS_V1 = {core: v1 for v1, core in _RENAMED}


def _renamed(
    event: Mapping[str, Any], names: Mapping[str, str], api_version: str
) -> dict[str, Any]:
    # A shallow copy suffices: the values are committed objects that nobody mutates, and the
    # store encodes the result before anyone could.
    converted = {names.get(field, field): value for field, value in event.items()}
    converted["apiVersion"] = api_version
    converted["kind"] = "Event"
    return converted


def to_core_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The core/v1 form of an ``events.k8s.io/v1`` event."""
    return _renamed(event, _TO_CORE, CORE_API_VERSION)


def to_events_v1_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The ``events.k8s.io/v1`` form of a core/v1 event."""
    return _renamed(event, _TO_EVENTS_V1, EVENTS_V1_API_VERSION)
