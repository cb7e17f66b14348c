"""Object-name and metadata validation, with the real API server's wording.

Tests and kubectl users compare messages with what a cluster prints, so the texts below mirror
``k8s.io/apimachinery/pkg/util/validation`` word for word (regexes included).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from podidentity.models._names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name_part,
)

from ._errors import Cause

__all__ = [
    "STANDARD_FINALIZERS",
    "field_cause",
    "field_invalid",
    "field_required",
    "finalizer_warnings",
    "metadata_problems",
    "name_problems",
    "qualified_name_problems",
]

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = rf"{_LABEL_FMT}(\.{_LABEL_FMT})*"

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    f"used for validation is '{_SUBDOMAIN_FMT}')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{_LABEL_FMT}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def _quote(value: Any) -> str:
    """Render a value the way Go's validation errors do (strings quoted, numbers bare)."""
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, default=str)


def field_cause(reason: str, path: str, message: str) -> Cause:
    """A cause with any ``reason`` (``FieldValueTooLong``, ``FieldValueNotSupported``, ...)."""
    return {"reason": reason, "message": message, "field": path}


def field_invalid(path: str, value: Any, detail: str) -> Cause:
    """A ``FieldValueInvalid`` cause."""
    return field_cause("FieldValueInvalid", path, f"Invalid value: {_quote(value)}: {detail}")


def field_required(path: str, detail: str = "") -> Cause:
    """A ``FieldValueRequired`` cause."""
    message = f"Required value: {detail}" if detail else "Required value"
    return field_cause("FieldValueRequired", path, message)


def name_problems(name: str, rule: str, path: str = "metadata.name") -> list[Cause]:
    """Problems with an object name under ``rule`` (``subdomain``, ``label`` or ``path``)."""
    problems: list[Cause] = []
    if rule == "label":
        if len(name) > 63:
            problems.append(field_invalid(path, name, "must be no more than 63 characters"))
        if not is_dns1123_label(name, limit=None):
            problems.append(field_invalid(path, name, _LABEL_MSG))
    elif rule == "subdomain":
        if len(name) > 253:
            problems.append(field_invalid(path, name, "must be no more than 253 characters"))
        if not is_dns1123_subdomain(name, limit=None):
            problems.append(field_invalid(path, name, _SUBDOMAIN_MSG))
    else:
        if name in (".", ".."):
            problems.append(field_invalid(path, name, f"may not be '{name}'"))
        for bad in ("/", "%"):
            if bad in name:
                problems.append(field_invalid(path, name, f"may not contain '{bad}'"))
    return problems


def qualified_name_problems(key: str, path: str) -> list[Cause]:
    prefix, slash, name = key.rpartition("/")
    problems: list[Cause] = []
    if slash and not is_dns1123_subdomain(prefix, limit=None):
        problems.append(field_invalid(path, key, "prefix part " + _SUBDOMAIN_MSG))
    if len(name) > 63:
        problems.append(field_invalid(path, key, "name part must be no more than 63 characters"))
    if not is_qualified_name_part(name, limit=None):
        problems.append(field_invalid(path, key, _NAME_PART_MSG))
    return problems


def metadata_problems(metadata: Mapping[str, Any], name_rule: str) -> list[Cause]:
    """Problems with ``metadata``: name (or generateName), labels and annotations."""
    problems: list[Cause] = []
    name = metadata.get("name")
    if not name:
        problems.append(field_required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        problems.append(field_invalid("metadata.name", name, "must be a string"))
    else:
        problems.extend(name_problems(name, name_rule))
    labels = metadata.get("labels") or {}
    if not isinstance(labels, Mapping):
        problems.append(field_invalid("metadata.labels", labels, "must be a map"))
        labels = {}
    for key, value in labels.items():
        problems.extend(qualified_name_problems(str(key), "metadata.labels"))
        if not isinstance(value, str) or not is_label_value(value):
            problems.append(field_invalid("metadata.labels", value, _LABEL_VALUE_MSG))
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        problems.append(field_invalid("metadata.annotations", annotations, "must be a map"))
    else:
        for key, value in annotations.items():
            problems.extend(qualified_name_problems(str(key), "metadata.annotations"))
            if not isinstance(value, str):
                problems.append(field_invalid("metadata.annotations", value, "must be a string"))
    finalizers = metadata.get("finalizers") or []
    if isinstance(finalizers, list):
        for index, finalizer in enumerate(finalizers):
            where = f"metadata.finalizers[{index}]"
            problems.extend(qualified_name_problems(str(finalizer), where))
    return problems


#: Finalizers the API server knows without a domain (no "prefer a domain-qualified" warning).
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def finalizer_warnings(metadata: Mapping[str, Any]) -> list[str]:
    """The warnings a real server adds for finalizer names without a domain."""
    return [
        f"metadata.finalizers: {json.dumps(name)}: prefer a domain-qualified finalizer name "
        "including a path (/) to avoid accidental conflicts with other finalizer writers"
        for name in metadata.get("finalizers") or ()
        if isinstance(name, str) and "/" not in name and name not in STANDARD_FINALIZERS
    ]
