"""The one converter between models and the wire (JSON / YAML dictionaries).

Every model declares its wire fields as a table of :class:`Field` rows (attribute, v1 name,
legacy names, codec). Decoding, encoding and the CRD schema are all driven by those tables, so
a field cannot be readable but not writable, or present in the model but missing from the CRD.

Rules shared by every object (documented in ``docs/models.md``):

- the v1 camelCase name is written; it and the legacy capitalised names are read; both present
  with different values is an error, because silently picking one hides a mistake;
- ``null`` and absence are the same (as on the API server); a field equal to its default is not
  written, like Go's ``omitempty`` that upstream used, unless the field says ``always``;
- keys the tables do not name are kept, frozen, in the object's ``extra`` mapping and written
  back unchanged, so an older library version never drops a newer controller's fields.

Paths in errors use wire names (``spec.clientID``) because that is what users edit.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from podidentity.errors import ValidationError
from podidentity.models._frozen import FrozenDict, freeze, thaw
from podidentity.models._time import format_kube_time, parse_rfc3339

__all__ = [
    "Bool",
    "Codec",
    "Embedded",
    "EnumCodec",
    "Field",
    "Int",
    "Nested",
    "NestedList",
    "Str",
    "StrList",
    "StrMap",
    "Struct",
    "Timestamp",
    "check_extra",
    "check_json",
    "decode_struct",
    "encode_struct",
    "expect_mapping",
    "fields_schema",
    "join",
    "read_fields",
    "struct_schema",
    "type_name",
    "write_fields",
]

_INT32 = (-(2**31), 2**31 - 1)
_JSON_SCALARS = (str, int, float, bool, type(None), dt.date)  # dates: yaml.safe_load gives them


def join(path: str, key: str | int) -> str:
    """Extend a dotted field path (``spec`` + ``clientID``; ``values`` + ``0`` -> ``values[0]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(value: object) -> str:
    """The JSON name of a value's type, for messages that say what was found instead."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    return f"a Python {type(value).__name__}"


def expect_mapping(value: object, path: str) -> Mapping[str, Any]:
    """Return ``value`` if it is an object with string keys, else raise ``ValidationError``."""
    if not isinstance(value, Mapping):
        raise ValidationError(path, f"expected an object, found {type_name(value)}", value)
    for key in value:
        if not isinstance(key, str):
            raise ValidationError(path, "expected string keys", key)
    return value


def check_json(value: object, path: str, depth: int = 0) -> None:
    """Refuse values that have no JSON form, so ``extra`` can always be written back."""
    if depth > 100:
        raise ValidationError(path, "nested deeper than 100 levels")
    if isinstance(value, Mapping):
        for key, item in expect_mapping(value, path).items():
            check_json(item, join(path, key), depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, join(path, index), depth + 1)
    elif not isinstance(value, _JSON_SCALARS):
        raise ValidationError(path, f"expected a JSON value, found {type_name(value)}")


class Codec(Protocol):
    """How one field's value is checked, converted and described in the CRD schema."""

    def decode(self, value: object, path: str) -> Any:
        """Convert a non-null wire value, raising ``ValidationError`` naming ``path``."""

    def encode(self, value: Any) -> Any:
        """Convert a model value to its wire form."""

    def schema(self) -> dict[str, Any]:
        """The OpenAPI v3 schema of the wire form."""


@attrs.frozen
class Str:
    """A string; ``nonempty`` makes ``""`` count as missing (for ``metadata.name``)."""

    nonempty: bool = False

    def decode(self, value: object, path: str) -> str:
        """Accept only strings: a number where a name belongs is a mistake, not a name."""
        if not isinstance(value, str):
            raise ValidationError(path, f"expected a string, found {type_name(value)}", value)
        if self.nonempty and not value:
            raise ValidationError(path, "is required and may not be empty", value)
        return value

    def encode(self, value: str) -> str:
        """Strings are written as they are."""
        return value

    def schema(self) -> dict[str, Any]:
        """``type: string``."""
        return {"type": "string"}


class Bool:
    """A boolean."""

    def decode(self, value: object, path: str) -> bool:
        """Accept only ``true`` / ``false``."""
        if not isinstance(value, bool):
            raise ValidationError(path, f"expected a boolean, found {type_name(value)}", value)
        return value

    def encode(self, value: bool) -> bool:
        """Booleans are written as they are."""
        return value

    def schema(self) -> dict[str, Any]:
        """``type: boolean``."""
        return {"type": "boolean"}


@attrs.frozen
class Int:
    """An integer (int32 unless ``int64``), optionally with bounds."""

    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False
    int64: bool = False

    def decode(self, value: object, path: str) -> int:
        """Accept only integers in range; ``true`` is not ``1`` on the wire."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, f"expected an integer, found {type_name(value)}", value)
        low, high = (-(2**63), 2**63 - 1) if self.int64 else _INT32
        if self.minimum is not None:
            low = max(low, self.minimum)
        if self.maximum is not None:
            high = min(high, self.maximum)
        if not low <= value <= high:
            raise ValidationError(path, f"expected an integer from {low} to {high}", value)
        return value

    def encode(self, value: int) -> int:
        """Integers are written as they are."""
        return value

    def schema(self) -> dict[str, Any]:
        """``type: integer`` with its format, bounds and nullability."""
        out: dict[str, Any] = {"type": "integer", "format": "int64" if self.int64 else "int32"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.nullable:
            out["nullable"] = True
        return out


E = TypeVar("E", bound=enum.Enum)


@attrs.frozen
class EnumCodec:
    """A member of an ``IntEnum`` or ``str`` enum, written as its value."""

    enum_type: type[enum.Enum]
    rule: str

    def decode(self, value: object, path: str) -> enum.Enum:
        """Accept exactly the members' values (an ``int`` enum refuses ``true`` and ``1.0``)."""
        values = [m.value for m in self.enum_type]
        if isinstance(value, bool) or not any(type(value) is type(v) for v in values):
            raise ValidationError(path, self.rule, value)
        try:
            return self.enum_type(value)
        except ValueError:
            raise ValidationError(path, self.rule, value) from None

    def encode(self, value: enum.Enum) -> Any:
        """The member's value."""
        return value.value

    def schema(self) -> dict[str, Any]:
        """``integer`` with bounds for int enums (as upstream, no enum list); strings listed."""
        values = [m.value for m in self.enum_type]
        if all(isinstance(v, int) for v in values):
            return {"type": "integer", "minimum": min(values), "maximum": max(values)}
        return {"type": "string", "enum": values}


@attrs.frozen
class StrList:
    """A list of strings, kept as a tuple."""

    nullable: bool = False

    def decode(self, value: object, path: str) -> tuple[str, ...]:
        """Accept a list whose items are all strings."""
        if not isinstance(value, (list, tuple)):
            raise ValidationError(path, f"expected a list, found {type_name(value)}", value)
        return tuple(Str().decode(item, join(path, i)) for i, item in enumerate(value))

    def encode(self, value: tuple[str, ...]) -> list[str]:
        """A fresh list."""
        return list(value)

    def schema(self) -> dict[str, Any]:
        """``type: array`` of strings."""
        out: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        if self.nullable:
            out["nullable"] = True
        return out


class StrMap:
    """A map of strings to strings (labels, annotations, pod labels), kept frozen."""

    def decode(self, value: object, path: str) -> FrozenDict[str, str]:
        """Accept an object whose values are all strings."""
        mapping = expect_mapping(value, path)
        return FrozenDict((k, Str().decode(v, join(path, k))) for k, v in mapping.items())

    def encode(self, value: Mapping[str, str]) -> dict[str, str]:
        """A fresh dict."""
        return dict(value)

    def schema(self) -> dict[str, Any]:
        """``type: object`` with string values."""
        return {"type": "object", "additionalProperties": {"type": "string"}}


class Timestamp:
    """An RFC 3339 time such as ``2024-05-01T12:00:00Z``, kept as an aware ``datetime``."""

    def decode(self, value: object, path: str) -> dt.datetime:
        """Accept RFC 3339 text (or a ``datetime`` that ``yaml.safe_load`` already made)."""
        if isinstance(value, dt.datetime):
            parsed = value
        elif isinstance(value, str):
            try:
                parsed = parse_rfc3339(value)
            except ValueError:
                raise ValidationError(path, "expected an RFC 3339 time", value) from None
            if "T" not in value.upper():
                raise ValidationError(path, "expected an RFC 3339 time", value)
        else:
            raise ValidationError(path, f"expected a time, found {type_name(value)}", value)
        if parsed.tzinfo is None:
            raise ValidationError(path, "expected a time with a zone (Z or +hh:mm)", value)
        try:
            return parsed.astimezone(dt.timezone.utc)
        except OverflowError:
            raise ValidationError(path, "expected a time between years 1 and 9999", value) from None

    def encode(self, value: dt.datetime) -> str:
        """UTC with a ``Z``, seconds unless the value has a fraction, as Kubernetes writes."""
        return format_kube_time(value, micro=value.microsecond != 0)

    def schema(self) -> dict[str, Any]:
        """``type: string, format: date-time``."""
        return {"type": "string", "format": "date-time"}


@attrs.frozen
class Field:
    """One wire field of a struct or of a resource's ``spec``.

    Attributes:
        attr: the Python attribute name.
        wire: the v1 name, the one written.
        codec: converts and checks the value.
        legacy: other spellings that are read (pre-1.6 manifests).
        required: absence is a structural error.
        always: written even when equal to the default (``spec.type``).
        description: used in the CRD schema.
    """

    attr: str
    wire: str
    codec: Codec
    legacy: tuple[str, ...] = ()
    required: bool = False
    always: bool = False
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Every spelling that is read, the v1 one first."""
        return (self.wire, *self.legacy)


class Struct(Protocol):
    """A nested attrs class with a field table and an ``extra`` mapping for unknown keys."""

    _fields: ClassVar[tuple[Field, ...]]
    extra: FrozenDict[str, Any]


S = TypeVar("S")


def read_fields(
    value: object, path: str, fields: Sequence[Field]
) -> tuple[dict[str, Any], FrozenDict[str, Any]]:
    """Decode the known fields of one JSON object and freeze the unknown ones.

    Returns:
        The keyword arguments for the attrs class, and the ``extra`` mapping.
    """
    mapping = expect_mapping(value, path)
    values: dict[str, Any] = {}
    used: set[str] = set()
    for field in fields:
        if not field.legacy:
            # The common case, one spelling: skip the bookkeeping that legacy names need
            # (decoding is on every informer event of the reconciler).
            item = mapping.get(field.wire)
            if field.wire in mapping:
                used.add(field.wire)
            if item is None:
                if field.required:
                    raise ValidationError(join(path, field.wire), "is required")
                continue
            values[field.attr] = field.codec.decode(item, join(path, field.wire))
            continue
        present = [(name, mapping[name]) for name in field.names if name in mapping]
        used.update(name for name, _ in present)
        present = [(name, item) for name, item in present if item is not None]
        if not present:
            if field.required:
                raise ValidationError(join(path, field.wire), "is required")
            continue
        name, item = present[0]
        for other, other_item in present[1:]:
            if not _same(item, other_item):
                raise ValidationError(
                    join(path, field.wire),
                    f"given as both {name!r} and {other!r} with different values; "
                    f"keep only {field.wire!r}",
                    [item, other_item],
                )
        values[field.attr] = field.codec.decode(item, join(path, name))
    if len(used) == len(mapping):
        return values, _NO_EXTRA
    unknown = {k: v for k, v in mapping.items() if k not in used}
    check_json(unknown, path)
    return values, freeze(unknown)


_NO_EXTRA: FrozenDict[str, Any] = FrozenDict()


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except RecursionError:  # pragma: no cover - only for absurdly deep input
        return False


def write_fields(obj: Any, fields: Sequence[Field], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Encode the known fields that differ from their default, then the ``extra`` keys."""
    defaults = attrs.fields_dict(type(obj))
    out: dict[str, Any] = {}
    for field in fields:
        value = getattr(obj, field.attr)
        if value is None or (not field.always and value == defaults[field.attr].default):
            continue
        out[field.wire] = field.codec.encode(value)
    for key, item in extra.items():
        out[key] = thaw(item)
    return out


def check_extra(extra: Mapping[str, Any], fields: Sequence[Field], path: str) -> None:
    """Refuse ``extra`` keys that a field owns: written back they would clash with it."""
    if not extra:
        return
    for field in fields:
        for name in field.names:
            if name in extra:
                raise ValidationError(
                    join(path, name), f"is a known field; set {field.attr!r} instead of extra"
                )


def decode_struct(cls: Callable[..., S], value: object, path: str) -> S:
    """Build a nested struct from its wire form."""
    fields: tuple[Field, ...] = cls._fields  # type: ignore[attr-defined]
    values, extra = read_fields(value, path, fields)
    try:
        return cls(**values, extra=extra)
    except ValidationError as err:  # invariants checked by the class itself
        raise ValidationError(join(path, err.path), err.rule, err.value) from err


def encode_struct(obj: Any) -> dict[str, Any]:
    """Write a nested struct in wire form."""
    return write_fields(obj, obj._fields, obj.extra)


def struct_schema(cls: Any, description: str = "") -> dict[str, Any]:
    """The OpenAPI v3 schema of a nested struct."""
    return fields_schema(cls._fields, description)


def fields_schema(fields: Sequence[Field], description: str = "") -> dict[str, Any]:
    """The OpenAPI v3 object schema of a field table, with legacy spellings declared too.

    Legacy names are declared so that an API server with this CRD does not prune them before
    our reader gets to convert them.
    """
    props: dict[str, Any] = {}
    required: list[str] = []
    for field in fields:
        schema = field.codec.schema()
        if field.description:
            schema = {"description": field.description, **schema}
        props[field.wire] = schema
        for name in field.legacy:
            props[name] = {"description": f"Legacy spelling of {field.wire}; read, never written."}
            props[name].update(field.codec.schema())
        if field.required:
            required.append(field.wire)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if description:
        out = {"description": description, **out}
    if required:
        out["required"] = required
    return out


@attrs.frozen
class Nested:
    """A nested struct (``clientPassword``, ``labelSelector``, ``status`` ...)."""

    cls: Any
    description: str = ""

    def decode(self, value: object, path: str) -> Any:
        """Decode via the struct's field table."""
        return decode_struct(self.cls, value, path)

    def encode(self, value: Any) -> dict[str, Any]:
        """Encode via the struct's field table."""
        return encode_struct(value)

    def schema(self) -> dict[str, Any]:
        """The struct's schema."""
        return struct_schema(self.cls, self.description)


@attrs.frozen
class NestedList:
    """A list of nested structs, kept as a tuple."""

    cls: Any

    def decode(self, value: object, path: str) -> tuple[Any, ...]:
        """Decode each item via the struct's field table."""
        if not isinstance(value, (list, tuple)):
            raise ValidationError(path, f"expected a list, found {type_name(value)}", value)
        return tuple(decode_struct(self.cls, v, join(path, i)) for i, v in enumerate(value))

    def encode(self, value: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Encode each item."""
        return [encode_struct(v) for v in value]

    def schema(self) -> dict[str, Any]:
        """``type: array`` of the struct's schema."""
        return {"type": "array", "items": struct_schema(self.cls)}


@attrs.frozen
class Embedded:
    """A whole resource embedded in another (``azureIdentityRef`` in an assigned identity)."""

    cls: Any
    description: str = ""

    def decode(self, value: object, path: str) -> Any:
        """Decode the embedded resource; its apiVersion and kind may be missing."""
        return self.cls._decode(value, path)

    def encode(self, value: Any) -> dict[str, Any]:
        """Write the embedded resource in full, apiVersion and kind included."""
        return dict(value.to_dict())

    def schema(self) -> dict[str, Any]:
        """The resource's schema, marked as an embedded resource."""
        out = dict(self.cls._schema())
        if self.description:
            out = {"description": self.description, **out}
        out["x-kubernetes-embedded-resource"] = True
        return out
