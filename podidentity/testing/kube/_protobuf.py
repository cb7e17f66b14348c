"""Just enough Kubernetes protobuf to read the access reviews kubectl sends.

kubectl's typed clients send ``application/vnd.kubernetes.protobuf`` bodies (and accept JSON
back). The emulator otherwise speaks JSON only, but ``kubectl auth can-i`` and ``kubectl auth
whoami`` post their reviews as protobuf, so those few kinds are decoded here: the ``k8s`` + NUL
envelope (``runtime.Unknown``), then the fields of the review spec by their numbers in
``k8s.io/api/authorization/v1/generated.proto``. The wire format is read by hand because it is
a handful of varints and length-delimited fields; a protobuf dependency and generated classes
would be far larger than this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._errors import APIError

__all__ = ["decode_review"]

_MAGIC = b"k8s\x00"

#: Field numbers of the messages involved: number -> (JSON name, nested message or "string").
_RESOURCE_ATTRIBUTES = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
_NON_RESOURCE_ATTRIBUTES = {1: ("path", "string"), 2: ("verb", "string")}
_SELF_SPEC = {
    1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
}
_SUBJECT_SPEC = {
    **_SELF_SPEC,
    3: ("user", "string"),
    4: ("groups", "repeated"),
    6: ("uid", "string"),
}
_RULES_SPEC = {1: ("namespace", "string")}
#: kind -> field number of ``spec`` in the review and the spec's fields.
_KINDS: dict[str, tuple[int, dict[int, tuple[str, Any]]]] = {
    "SelfSubjectAccessReview": (2, _SELF_SPEC),
    "SubjectAccessReview": (2, _SUBJECT_SPEC),
    "LocalSubjectAccessReview": (2, _SUBJECT_SPEC),
    "SelfSubjectRulesReview": (2, _RULES_SPEC),
    "SelfSubjectReview": (0, {}),
}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("truncated field")
            yield number, data[at : at + size]
            at += size
        elif wire == 5:
            at += 4
        elif wire == 1:
            at += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _message(data: bytes, schema: dict[int, tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema or not isinstance(value, bytes):
            continue
        name, kind = schema[number]
        if kind == "string":
            out[name] = value.decode()
        elif kind == "repeated":
            out.setdefault(name, []).append(value.decode())
        else:
            out[name] = _message(value, kind)
    return out


def decode_review(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded access review.

    Raises:
        APIError: 415 for anything else (the emulator is JSON-only), 400 for a broken body.
    """
    unsupported = APIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml",
    )
    if not raw.startswith(_MAGIC):
        raise unsupported
    try:
        envelope = dict(_fields(raw[len(_MAGIC) :]))
        type_meta = envelope.get(1, b"")
        body = envelope.get(2, b"")
        if not isinstance(type_meta, bytes) or not isinstance(body, bytes):
            raise ValueError("malformed envelope")
        meta = _message(type_meta, {1: ("apiVersion", "string"), 2: ("kind", "string")})
        kind = meta.get("kind", "")
        if kind not in _KINDS:
            raise unsupported
        spec_number, spec_schema = _KINDS[kind]
        review: dict[str, Any] = {**meta, "spec": {}}
        for number, value in _fields(body):
            if number == spec_number and isinstance(value, bytes):
                review["spec"] = _message(value, spec_schema)
            elif number == 1 and isinstance(value, bytes):
                review["metadata"] = _message(value, {3: ("namespace", "string")})
    except (ValueError, UnicodeDecodeError) as err:
        raise APIError.bad_request(f"the protobuf body could not be decoded: {err}") from err
    return review
