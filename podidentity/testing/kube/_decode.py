"""Decoding a built-in object as the API server's JSON decoder does, and request warnings.

The real server decodes a request body into the kind's Go struct. That drops fields the struct
does not have (and reports them: a ``Warning`` header under ``fieldValidation=Warn``, the
default; nothing under ``Ignore``; a 400 under ``Strict``), refuses values of the wrong JSON
type with a 400 ``BadRequest`` naming the Go struct field, refuses timestamps that
``time.Parse`` refuses, base64 that is not base64 (``[]byte`` fields such as Secret ``data``)
and malformed quantities. :func:`decode` does the same on the emulator's dictionaries, walking
the field types of :mod:`._builtin_schema`.

Warnings collected while a request is served (:func:`warn`) are sent back as ``Warning:
299 - "..."`` headers by the REST layer, which opens a :func:`warning_scope` per request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
import re
from collections.abc import Iterator
from typing import Any

from podidentity.models._time import parse_kube_time

from ._builtin_schema import FieldType, fields, go_struct_name, go_type_name, model_for
from ._errors import APIError

__all__ = [
    "FIELD_VALIDATION_VALUES",
    "WarningScope",
    "current_warning_headers",
    "set_field_validation",
    "decode",
    "warn",
    "warning_scope",
]

FIELD_VALIDATION_VALUES = ("Ignore", "Strict", "Warn")
_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/=\r\n]*\Z")
_QUANTITY = re.compile(r"[+-]?[0-9.]+[eEinumkKMGTP]*[-+]?[0-9]*\Z")
_QUANTITY_MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


class WarningScope:
    """The warnings of one request and its ``fieldValidation`` directive."""

    def __init__(self, field_validation: str) -> None:
        self.field_validation = field_validation
        self.warnings: list[str] = []
        self.open = True

    def header_values(self) -> list[bytes]:
        """``Warning`` header values, as Go's ``strconv.Quote`` renders them."""
        return [f"299 - {json.dumps(text)}".encode() for text in dict.fromkeys(self.warnings)]


_SCOPE: contextvars.ContextVar[WarningScope | None] = contextvars.ContextVar(
    "kube_warning_scope", default=None
)


@contextlib.contextmanager
def warning_scope(field_validation: str = "Warn") -> Iterator[WarningScope]:
    """Collect the warnings of the request served inside the ``with`` block."""
    scope = WarningScope(field_validation or "Warn")
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        # Tasks started during the request copied the context; a closed scope ignores them.
        scope.open = False
        _SCOPE.reset(token)


def set_field_validation(field_validation: str) -> None:
    """Set the ``fieldValidation`` directive of the request being served (``Warn`` if empty)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.field_validation = field_validation or "Warn"


def current_warning_headers() -> list[bytes]:
    """The ``Warning`` header values of the request being served."""
    scope = _SCOPE.get()
    return scope.header_values() if scope is not None and scope.open else []


def warn(text: str) -> None:
    """Add a warning to the current request's response (no-op outside a request)."""
    scope = _SCOPE.get()
    if scope is not None and scope.open:
        scope.warnings.append(text)


def _field_validation() -> str:
    scope = _SCOPE.get()
    return scope.field_validation if scope is not None and scope.open else "Ignore"


class _TypeError(Exception):
    pass


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _base64_error(text: str) -> str | None:
    """Go's ``base64.StdEncoding`` error for ``text``, or ``None`` when it decodes."""
    try:
        base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        pass
    else:
        return None
    offset = next(
        (i for i, ch in enumerate(text) if not _BASE64_ALPHABET.match(ch)),
        None,
    )
    if offset is None:
        first_pad = text.find("=")
        offset = first_pad if 0 <= first_pad < len(text) - 2 else (len(text) // 4) * 4
    return f"illegal base64 data at input byte {offset}"


class _Walker:
    def __init__(self) -> None:
        self.unknown: list[str] = []

    def mismatch(self, value: Any, struct: str, path: str, field: FieldType) -> _TypeError:
        kind = _json_kind(value)
        if kind == "number" and field.kind == "scalar" and field.name == "int":
            kind = f"number {json.dumps(value)}"
        return _TypeError(
            f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type "
            f"{go_type_name(field)}"
        )

    def model(
        self,
        model: str,
        obj: dict[str, Any],
        path: str,
        where: str,
        previous: Any = None,
    ) -> None:
        known = fields(model)
        struct = go_struct_name(model)
        for key in list(obj):
            if isinstance(previous, dict) and key in previous and previous[key] == obj[key]:
                continue  # as stored, so already decoded (an update changes a small part)
            field = known.get(key)
            here = f"{path}.{key}" if path else key
            if field is None:
                self.unknown.append(f"{where}.{key}" if where else key)
                del obj[key]
                continue
            if obj[key] is None:
                del obj[key]
                continue
            obj[key] = self.value(field, obj[key], struct, here, f"{where}.{key}" if where else key)

    def value(self, field: FieldType, value: Any, struct: str, path: str, where: str) -> Any:
        if field.kind == "model":
            if not isinstance(value, dict):
                raise self.mismatch(value, struct, path, field)
            self.model(field.name, value, path, where)
            return value
        if field.kind == "list":
            if not isinstance(value, list):
                raise self.mismatch(value, struct, path, field)
            assert field.item is not None
            return [
                self.value(field.item, item, struct, path, f"{where}[{index}]")
                for index, item in enumerate(value)
            ]
        if field.kind == "map":
            if not isinstance(value, dict):
                raise self.mismatch(value, struct, path, field)
            assert field.item is not None
            for key in list(value):
                if value[key] is not None:
                    value[key] = self.value(field.item, value[key], struct, path, f"{where}.{key}")
            return value
        return self.scalar(field, value, struct, path)

    def scalar(self, field: FieldType, value: Any, struct: str, path: str) -> Any:
        name = field.name
        if name == "object":
            return value
        if name == "quantity":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            if not isinstance(value, str):
                raise self.mismatch(value, struct, path, field)
            if not _QUANTITY.match(value.strip()):
                raise _TypeError(_QUANTITY_MESSAGE)
            return value
        if name == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif name == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif name == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise self.mismatch(value, struct, path, field)
        if name in ("datetime", "microtime"):
            try:
                parse_kube_time(value, micro=name == "microtime")
            except ValueError as err:
                raise _TypeError(str(err)) from None
        elif name == "bytes":
            problem = _base64_error(value)
            if problem:
                raise _TypeError(problem)
        return value


def decode(
    api_version: str,
    kind: str,
    obj: dict[str, Any],
    *,
    strict: bool = False,
    previous: Any = None,
) -> bool:
    """Decode a built-in object in place; ``False`` when the kind has no model (not built-in).

    Unknown fields are removed (reported as warnings unless ``fieldValidation=Ignore``); under
    ``strict`` they are a 400. Wrong types, unparseable timestamps, bad base64 and malformed
    quantities are a 400 in the real server's words. Top-level fields equal to ``previous``
    (the stored object an update starts from) were decoded when stored and are skipped.
    """
    model = model_for(api_version, kind)
    if model is None:
        return False
    version = api_version.rsplit("/", 1)[-1]
    prefix = f"{kind} in version {json.dumps(version)} cannot be handled as a {kind}: "
    walker = _Walker()
    try:
        walker.model(model, obj, "", "", previous)
    except _TypeError as err:
        raise APIError.bad_request(prefix + str(err)) from None
    if walker.unknown:
        texts = [f"unknown field {json.dumps(path)}" for path in walker.unknown]
        if strict:
            raise APIError.bad_request(prefix + "strict decoding error: " + ", ".join(texts))
        if _field_validation() != "Ignore":
            for text in texts:
                warn(text)
    return True
