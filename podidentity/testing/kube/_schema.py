"""Structural-schema validation and pruning of custom objects, as a CRD's API server does.

Only the parts of OpenAPI v3 that CRDs commonly use are checked: ``type`` (with
``nullable``, ``x-kubernetes-int-or-string``), ``properties`` / ``additionalProperties`` /
``items``, ``required``, ``enum``, ``minimum`` / ``maximum`` (and exclusive forms),
``minLength`` / ``maxLength``, ``pattern``, ``minItems`` / ``maxItems``. ``anyOf``, ``oneOf``,
``allOf``, ``not`` and CEL rules are not evaluated. Pruning drops every field the schema does not
declare unless ``x-kubernetes-preserve-unknown-fields: true``; the root and embedded resources
(``x-kubernetes-embedded-resource``) keep ``apiVersion``, ``kind`` and ``metadata``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ._errors import Cause
from ._validation import field_cause, field_invalid, field_required

__all__ = ["prune", "validate"]

_EMBEDDED_METADATA = ("name", "namespace", "labels", "annotations", "generateName", "finalizers")
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED = "x-kubernetes-embedded-resource"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value: Any, schema: Mapping[str, Any]) -> bool:
    actual = _type_name(value)
    if schema.get("x-kubernetes-int-or-string") and actual in ("integer", "string"):
        return True
    if actual == "null":
        return bool(schema.get("nullable"))
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return actual == expected


def validate(schema: Mapping[str, Any], value: Any, path: str = "") -> list[Cause]:
    """Problems with ``value`` under ``schema``; ``path`` is the field path (``spec.type``)."""
    causes: list[Cause] = []
    _check(schema, value, path, causes)
    return causes


def _check(schema: Mapping[str, Any], value: Any, path: str, causes: list[Cause]) -> None:
    expected = schema.get("type")
    where = path or "<root>"
    if expected and not _type_ok(expected, value, schema):
        causes.append(
            field_cause(
                "FieldValueTypeInvalid",
                where,
                f"Invalid value: {json.dumps(_type_name(value))}: "
                f"{where} in body must be of type {expected}: {json.dumps(value)}",
            )
        )
        return
    if value is None:
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(json.dumps(e) for e in enum)
        causes.append(
            field_cause(
                "FieldValueNotSupported",
                where,
                f"Unsupported value: {json.dumps(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(schema, value, where, causes)
    if isinstance(value, str):
        _check_string(schema, value, where, causes)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                field_invalid(
                    where, value, f"{where} in body should have at least {schema['minItems']} items"
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                field_cause(
                    "FieldValueTooMany",
                    where,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _check(items, item, f"{path}[{index}]", causes)
    if isinstance(value, dict):
        _check_object(schema, value, path, causes)


def _check_number(schema: Mapping[str, Any], value: float, where: str, causes: list[Cause]) -> None:
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            causes.append(
                field_invalid(where, value, f"{where} in body should be greater than {minimum}")
            )
        elif value < minimum:
            causes.append(
                field_invalid(
                    where, value, f"{where} in body should be greater than or equal to {minimum}"
                )
            )
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            causes.append(
                field_invalid(where, value, f"{where} in body should be less than {maximum}")
            )
        elif value > maximum:
            causes.append(
                field_invalid(
                    where, value, f"{where} in body should be less than or equal to {maximum}"
                )
            )


def _check_string(schema: Mapping[str, Any], value: str, where: str, causes: list[Cause]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(
            field_invalid(
                where, value, f"{where} in body should be at least {schema['minLength']} chars long"
            )
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(
            field_cause(
                "FieldValueTooLong",
                where,
                f"Too long: may not be more than {schema['maxLength']} bytes",
            )
        )
    pattern = schema.get("pattern")
    if pattern and re.search(pattern, value) is None:
        causes.append(field_invalid(where, value, f"{where} in body should match '{pattern}'"))


def _check_object(
    schema: Mapping[str, Any], value: dict[str, Any], path: str, causes: list[Cause]
) -> None:
    prefix = f"{path}." if path else ""
    for required in schema.get("required", ()):
        if required not in value:
            causes.append(field_required(f"{prefix}{required}"))
    properties: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if not path and key in ("apiVersion", "kind", "metadata"):
            continue
        sub = properties.get(key)
        if sub is None and isinstance(additional, Mapping):
            sub = additional
        if sub is not None:
            _check(sub, item, f"{prefix}{key}", causes)


def prune(
    schema: Mapping[str, Any],
    value: Any,
    *,
    root: bool = True,
    dropped: list[str] | None = None,
    path: str = "",
) -> Any:
    """Drop fields the schema does not declare, in place; returns ``value``.

    ``dropped`` collects the paths of removed fields (``fieldValidation=Strict`` reports them).
    """
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        embedded = root or bool(schema.get(_EMBEDDED))
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in list(value):
            if embedded and key in ("apiVersion", "kind"):
                continue
            if embedded and key == "metadata":
                if not root and isinstance(value[key], dict):
                    for meta_key in list(value[key]):
                        if meta_key not in _EMBEDDED_METADATA:
                            del value[key][meta_key]
                continue
            sub = properties.get(key)
            if sub is None and isinstance(additional, Mapping):
                sub = additional
            if sub is None:
                if not (schema.get(_PRESERVE) or additional is True):
                    del value[key]
                    if dropped is not None:
                        dropped.append(f"{prefix}{key}")
                continue
            prune(sub, value[key], root=False, dropped=dropped, path=f"{prefix}{key}")
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                prune(items, item, root=False, dropped=dropped, path=f"{path}[{index}]")
    return value
