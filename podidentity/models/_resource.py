"""Behaviour shared by the four kinds: wire conversion, schema, names, problems.

The kinds are separate attrs classes (their fields differ); this mixin gives them one
``from_dict`` / ``to_dict`` driven by each class's field tables, so the four cannot drift
apart in how they treat legacy spellings, unknown fields or errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from podidentity.errors import ValidationError
from podidentity.models._frozen import FrozenDict, freeze, thaw
from podidentity.models._wire import (
    Field,
    check_extra,
    check_json,
    decode_struct,
    encode_struct,
    expect_mapping,
    fields_schema,
    join,
    read_fields,
    struct_schema,
    write_fields,
)
from podidentity.models.meta import ObjectMeta
from podidentity.models.problems import Problem

__all__ = ["API_VERSION", "GROUP", "VERSION", "Resource", "nested_problems", "object_label"]

GROUP = "aadpodidentity.k8s.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")

R = TypeVar("R", bound="Resource")


def object_label(kind: str, obj: object) -> str:
    """``Kind namespace/name`` for messages, from whatever the raw object has."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        return kind
    if isinstance(namespace, str) and namespace:
        return f"{kind} {namespace}/{name}"
    return f"{kind} {name}"


class Resource:
    """Mixin for the four ``aadpodidentity.k8s.io/v1`` kinds.

    Subclasses are ``attrs.frozen`` classes with ``metadata``, their spec fields (flattened onto
    the object), ``status``, ``spec_extra`` and ``extra`` attributes.
    """

    api_version: ClassVar[str] = API_VERSION
    kind: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    description: ClassVar[str]
    _spec_fields: ClassVar[tuple[Field, ...]]
    _status_type: ClassVar[Any]

    metadata: ObjectMeta
    status: Any
    spec_extra: FrozenDict[str, Any]
    extra: FrozenDict[str, Any]

    def __attrs_post_init__(self) -> None:
        check_extra(self.spec_extra, self._spec_fields, "spec")
        for name in _TOP_LEVEL:
            if name in self.extra:
                raise ValidationError(name, "is a known field; it may not be in extra")

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` (``""`` when not set, e.g. in a manifest)."""
        return self.metadata.namespace

    @classmethod
    def from_dict(cls: type[R], obj: Mapping[str, Any]) -> R:
        """Build from the wire form (a dict from JSON or YAML).

        ``apiVersion`` and ``kind`` may be missing; when present they must be this kind's.
        Legacy capitalised field names are read too. Unknown fields are kept.

        Raises:
            ValidationError: the object does not have this kind's structure; the message
                names the object, the field path, the rule and the value.
        """
        try:
            return cls._decode(obj, "")
        except ValidationError as err:
            raise err.within(object_label(cls.kind, obj)) from err
        except RecursionError as err:
            raise ValidationError("", "nested too deeply", obj=object_label(cls.kind, obj)) from err

    @classmethod
    def _decode(cls: type[R], obj: object, path: str) -> R:
        data = expect_mapping(obj, path)
        for key, expected in (("apiVersion", API_VERSION), ("kind", cls.kind)):
            if data.get(key) is not None and data[key] != expected:
                raise ValidationError(join(path, key), f"expected {expected!r}", data[key])
        if data.get("metadata") is None:
            raise ValidationError(join(path, "metadata"), "is required (with at least a name)")
        values: dict[str, Any] = {
            "metadata": decode_struct(ObjectMeta, data["metadata"], join(path, "metadata"))
        }
        spec = {} if data.get("spec") is None else data["spec"]
        fields, spec_extra = read_fields(spec, join(path, "spec"), cls._spec_fields)
        values.update(fields)
        if data.get("status") is not None:
            values["status"] = decode_struct(cls._status_type, data["status"], join(path, "status"))
        extra = {k: v for k, v in data.items() if k not in _TOP_LEVEL}
        check_json(extra, path)
        try:
            build: Any = cls  # the attrs subclass, whose __init__ the mixin cannot see
            return build(**values, spec_extra=spec_extra, extra=freeze(extra))  # type: ignore[no-any-return]
        except ValidationError as err:
            raise ValidationError(join(path, err.path), err.rule, err.value) from err

    def to_dict(self) -> dict[str, Any]:
        """The wire form, with v1 camelCase names; ready for ``json.dumps`` or the API."""
        spec_fields = type(self)._spec_fields
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": encode_struct(self.metadata),
            "spec": write_fields(self, spec_fields, self.spec_extra),
        }
        if self.status != type(self)._status_type():
            out["status"] = encode_struct(self.status)
        out.update(thaw(self.extra))
        return out

    @classmethod
    def _schema(cls) -> dict[str, Any]:
        """The OpenAPI v3 schema of this kind (used for the CRD and embedded references)."""
        spec = fields_schema(cls._spec_fields)
        # Upstream's spec and status embedded an ObjectMeta, so its schema declares metadata.
        spec["properties"]["metadata"] = {"type": "object"}
        status = struct_schema(cls._status_type)
        status["properties"]["metadata"] = {"type": "object"}
        return {
            "description": cls.description,
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": spec,
                "status": status,
            },
        }

    def problems(self) -> list[Problem]:
        """Semantic findings, each with a field path; never raises. Empty means fine."""
        return self.metadata.problems() + self._spec_problems()

    def _spec_problems(self) -> list[Problem]:
        raise NotImplementedError


def nested_problems(prefix: str, problems: list[Problem]) -> list[Problem]:
    """Re-root findings of an embedded object under ``prefix``."""
    return [attrs.evolve(p, path=join(prefix, p.path) if p.path else prefix) for p in problems]
