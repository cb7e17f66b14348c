"""Object metadata: the part of ``metadata`` that the reconciler and the proxy read.

Only the fields podidentity uses are typed; everything else the API server adds
(``managedFields``, ``generateName``, ...) stays in :attr:`ObjectMeta.extra` and is written
back unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from podidentity.models._frozen import FrozenDict, freeze
from podidentity.models._names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_key,
    is_label_value,
    suggest_dns1123,
)
from podidentity.models._wire import (
    Bool,
    Field,
    Int,
    NestedList,
    Str,
    StrList,
    StrMap,
    Timestamp,
    check_extra,
    join,
)
from podidentity.models.problems import Problem, Severity

__all__ = ["ObjectMeta", "OwnerReference", "frozen_extra", "frozen_str_map"]


def frozen_str_map(value: Mapping[str, str]) -> FrozenDict[str, str]:
    """Converter for attrs: accept any mapping, keep a frozen copy."""
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


def frozen_extra(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    """Converter for ``extra``: freeze nested data so the object stays immutable."""
    frozen: FrozenDict[str, Any] = freeze(value)
    return frozen


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class OwnerReference:
    """An owner of an object; when the owner is deleted, the garbage collector deletes it too."""

    _fields: ClassVar[tuple[Field, ...]]

    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None
    block_owner_deletion: bool | None = None
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)


OwnerReference._fields = (
    Field("api_version", "apiVersion", Str(), required=True),
    Field("kind", "kind", Str(), required=True),
    Field("name", "name", Str(), required=True),
    Field("uid", "uid", Str(), required=True),
    Field("controller", "controller", Bool()),
    Field("block_owner_deletion", "blockOwnerDeletion", Bool()),
)


@attrs.frozen(kw_only=True)
class ObjectMeta:
    """The metadata of a namespaced object.

    ``name`` is the only required field: without it an object cannot be addressed. Times are
    timezone-aware ``datetime`` objects in UTC.
    """

    _fields: ClassVar[tuple[Field, ...]]

    name: str
    namespace: str = ""
    labels: FrozenDict[str, str] = attrs.field(default=FrozenDict(), converter=frozen_str_map)
    annotations: FrozenDict[str, str] = attrs.field(default=FrozenDict(), converter=frozen_str_map)
    uid: str = ""
    resource_version: str = ""
    generation: int | None = None
    creation_timestamp: dt.datetime | None = None
    deletion_timestamp: dt.datetime | None = None
    finalizers: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    owner_references: tuple[OwnerReference, ...] = attrs.field(default=(), converter=_tuple)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "metadata")

    @property
    def key(self) -> str:
        """``namespace/name``, or just ``name`` without a namespace (the informer cache key)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def problems(self, path: str = "metadata") -> list[Problem]:
        """Names and labels the API server would refuse."""
        found: list[Problem] = []
        if not is_dns1123_subdomain(self.name):
            found.append(
                Problem(
                    path=join(path, "name"),
                    message=f"{self.name!r} is not a valid name: use lowercase letters, digits, "
                    "'-' and '.', starting and ending with a letter or digit (DNS-1123)",
                    suggestion=suggest_dns1123(self.name) or None,
                )
            )
        if self.namespace and not is_dns1123_label(self.namespace):
            found.append(
                Problem(
                    path=join(path, "namespace"),
                    message=f"{self.namespace!r} is not a valid namespace (DNS-1123 label: "
                    "at most 63 lowercase letters, digits and '-')",
                    suggestion=suggest_dns1123(self.namespace, limit=63).replace(".", "-") or None,
                )
            )
        for key, value in self.labels.items():
            where = join(join(path, "labels"), key)
            if not is_label_key(key):
                found.append(Problem(path=where, message=f"{key!r} is not a valid label key"))
            if not is_label_value(value):
                found.append(
                    Problem(
                        path=where,
                        message=f"{value!r} is not a valid label value (at most 63 "
                        "letters, digits, '-', '_' or '.', starting and ending alphanumeric)",
                    )
                )
        for key in self.annotations:
            if not is_label_key(key):
                found.append(
                    Problem(
                        path=join(join(path, "annotations"), key),
                        message=f"{key!r} is not a valid annotation key",
                        severity=Severity.WARNING,
                    )
                )
        return found


ObjectMeta._fields = (
    Field("name", "name", Str(nonempty=True), required=True),
    Field("namespace", "namespace", Str()),
    Field("labels", "labels", StrMap()),
    Field("annotations", "annotations", StrMap()),
    Field("uid", "uid", Str()),
    Field("resource_version", "resourceVersion", Str()),
    Field("generation", "generation", Int(int64=True)),
    Field("creation_timestamp", "creationTimestamp", Timestamp()),
    Field("deletion_timestamp", "deletionTimestamp", Timestamp()),
    Field("finalizers", "finalizers", StrList()),
    Field("owner_references", "ownerReferences", NestedList(OwnerReference)),
)
