"""The field set and types of built-in kinds, read from the official client's generated models.

Every model class of the ``kubernetes`` package (``kubernetes.client.V1Pod``, ...) carries
``openapi_types`` (Python attribute -> type text such as ``List[V1Container]``,
``Dict[str, bytes]``, ``datetime``, ``object``) and ``attribute_map`` (Python attribute -> JSON
name). Both are generated from the API server's own OpenAPI document, so walking them gives the
emulator the real field set of each kind without a hand-written list that could drift.

The models lose three distinctions the Go types make; each is restored by a short table below,
the only hand-written part: ``MicroTime`` fields (six fractional digits) versus ``Time``,
``resource.Quantity`` fields (a string *or* a number) versus plain strings, and ``int64``
versus ``int32`` (only for the wording of type errors).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["FieldType", "fields", "go_struct_name", "go_type_name", "model_for"]

#: (apiVersion, kind) -> the model class name in ``kubernetes.client``.
_MODELS: Mapping[tuple[str, str], str] = {
    ("v1", "Event"): "CoreV1Event",
    ("events.k8s.io/v1", "Event"): "EventsV1Event",
}
#: MicroTime fields (``metav1.MicroTime``): (model, Python attribute).
_MICRO_TIME = frozenset(
    {
        ("V1LeaseSpec", "acquire_time"),
        ("V1LeaseSpec", "renew_time"),
        ("CoreV1Event", "event_time"),
        ("EventsV1Event", "event_time"),
        ("CoreV1EventSeries", "last_observed_time"),
        ("EventsV1EventSeries", "last_observed_time"),
    }
)
#: ``resource.Quantity`` fields (typed ``str`` by the models, but JSON numbers are accepted).
_QUANTITY = frozenset(
    {
        ("V1ResourceRequirements", "limits"),
        ("V1ResourceRequirements", "requests"),
        ("V1VolumeResourceRequirements", "limits"),
        ("V1VolumeResourceRequirements", "requests"),
        ("V1EmptyDirVolumeSource", "size_limit"),
        ("V1PodSpec", "overhead"),
        ("V1NodeStatus", "capacity"),
        ("V1NodeStatus", "allocatable"),
        ("V1ContainerStatus", "allocated_resources"),
    }
)
#: JSON names of ``int64`` fields (every other integer is an ``int32`` in type errors).
_INT64 = frozenset(
    {
        "activeDeadlineSeconds",
        "deletionGracePeriodSeconds",
        "expirationSeconds",
        "fsGroup",
        "generation",
        "gracePeriodSeconds",
        "observedGeneration",
        "runAsGroup",
        "runAsUser",
        "terminationGracePeriodSeconds",
    }
)
_GENERIC = re.compile(r"(List|Dict)\[(?:str, )?(.+)\]\Z")
_VERSION_PREFIX = re.compile(
    r"(?:Core|Events|Apiextensions|Storage|Authentication)?(V\d+\w*?)(?=[A-Z])"
)


@attrs.frozen
class FieldType:
    """One field's type.

    Attributes:
        kind: ``scalar``, ``list``, ``map`` or ``model``.
        name: for scalars ``str``, ``int``, ``bool``, ``float``, ``bytes``, ``datetime``,
            ``microtime``, ``quantity`` or ``object`` (anything: IntOrString, RawExtension);
            for models the class name.
        item: the element type of a list or map.
        json_name: the field's JSON name (for ``int64``/``int32`` wording).
    """

    kind: str
    name: str = ""
    item: FieldType | None = None
    json_name: str = ""


def _parse(text: str, json_name: str, special: str = "") -> FieldType:
    generic = _GENERIC.match(text)
    if generic:
        item = _parse(generic[2], json_name, special)
        return FieldType("list" if generic[1] == "List" else "map", item=item, json_name=json_name)
    if special and text in ("str", "datetime"):
        return FieldType("scalar", special, json_name=json_name)
    if text in ("str", "int", "bool", "float", "bytes", "datetime", "object", "date"):
        return FieldType("scalar", "datetime" if text == "date" else text, json_name=json_name)
    return FieldType("model", text, json_name=json_name)


def _client() -> Any:
    # Imported on first use: the models take ~1 s to import, and an emulator that only serves
    # custom resources never needs them.
    import kubernetes.client

    return kubernetes.client


@functools.cache
def fields(model: str) -> Mapping[str, FieldType]:
    """JSON field name -> type, for one model class of ``kubernetes.client``."""
    cls = getattr(_client(), model)
    result: dict[str, FieldType] = {}
    for attribute, text in cls.openapi_types.items():
        json_name = cls.attribute_map[attribute]
        special = ""
        if (model, attribute) in _MICRO_TIME:
            special = "microtime"
        elif (model, attribute) in _QUANTITY:
            special = "quantity"
        result[json_name] = _parse(text, json_name, special)
    return result


def model_for(api_version: str, kind: str) -> str | None:
    """The model class name for objects of ``apiVersion``/``kind``, or ``None``."""
    name = _MODELS.get((api_version, kind))
    if name is None:
        version = api_version.rsplit("/", 1)[-1]
        name = f"{version[0].upper()}{version[1:]}{kind}"
    return name if isinstance(getattr(_client(), name, None), type) else None


@functools.cache
def go_struct_name(model: str) -> str:
    """The Go type's name: ``V1PodSpec`` -> ``PodSpec``, ``CoreV1Event`` -> ``Event``."""
    return _VERSION_PREFIX.sub("", model, count=1)


def _go_package(model: str) -> str:
    match = _VERSION_PREFIX.match(model)
    return match[1].lower() if match else "v1"


def go_type_name(field: FieldType) -> str:
    """How Go prints the field's type in a decoding error (``[]v1.Container``, ``int32``)."""
    if field.kind == "list":
        assert field.item is not None
        return "[]" + go_type_name(field.item)
    if field.kind == "map":
        assert field.item is not None
        return "map[string]" + go_type_name(field.item)
    if field.kind == "model":
        return f"{_go_package(field.name)}.{go_struct_name(field.name)}"
    return {
        "str": "string",
        "int": "int64" if field.json_name in _INT64 else "int32",
        "bool": "bool",
        "float": "float64",
        "bytes": "[]uint8",
        "datetime": "v1.Time",
        "microtime": "v1.MicroTime",
        "quantity": "resource.Quantity",
    }.get(field.name, "interface {}")
