"""CustomResourceDefinitions: their validation, and the :class:`ResourceType` each one serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import APIError, Cause
from ._resources import PrinterColumn, ResourceType
from ._validation import field_invalid, field_required

__all__ = ["crd_problems", "crd_resource", "crd_status", "crd_update_problems"]


def _storage_version(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    versions = spec.get("versions") or []
    for version in versions:
        if version.get("storage"):
            return dict(version)
    return dict(versions[0]) if versions else {}


def crd_update_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Cause]:
    """Changes the real server refuses on a CRD update.

    The group and the plural are the CRD's identity: they make up its name and every URL of
    its objects, so they cannot change once it exists.
    """
    problems: list[Cause] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    pairs = (
        ("spec.group", old_spec.get("group"), new_spec.get("group")),
        (
            "spec.names.plural",
            (old_spec.get("names") or {}).get("plural"),
            (new_spec.get("names") or {}).get("plural"),
        ),
    )
    for path, before, after in pairs:
        if before != after:
            problems.append(field_invalid(path, after, "field is immutable"))
    return problems


def crd_problems(crd: Mapping[str, Any]) -> list[Cause]:
    """What the real server would reject in a CRD (the common mistakes only)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    problems: list[Cause] = []
    group, plural = spec.get("group"), names.get("plural")
    if not group:
        problems.append(field_required("spec.group"))
    if not plural:
        problems.append(field_required("spec.names.plural"))
    if not names.get("kind"):
        problems.append(field_required("spec.names.kind"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: "{spec.get("scope", "")}": supported values: '
                '"Cluster", "Namespaced"',
                "field": "spec.scope",
            }
        )
    versions = spec.get("versions") or []
    if not versions:
        problems.append(
            field_required(
                "spec.versions", "must have exactly one version marked as storage version"
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(
            field_invalid(
                "spec.versions", versions, "must have exactly one version marked as storage version"
            )
        )
    name = (crd.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        problems.append(
            field_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
        )
    return problems


def crd_resource(crd: Mapping[str, Any]) -> ResourceType:
    """The resource a valid CRD serves (its storage version)."""
    spec = crd["spec"]
    names = spec["names"]
    version = _storage_version(spec)
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    subresources = tuple(
        name for name in ("status", "scale") if name in (version.get("subresources") or {})
    )
    columns = tuple(
        PrinterColumn(
            name=c["name"],
            json_path=c["jsonPath"],
            type=c.get("type", "string"),
            priority=int(c.get("priority", 0)),
            description=c.get("description", ""),
            format=c.get("format", ""),
        )
        for c in version.get("additionalPrinterColumns") or ()
    )
    if not any(c.name == "Age" for c in columns):
        columns = (*columns, PrinterColumn("Age", ".metadata.creationTimestamp", type="date"))
    return ResourceType(
        group=spec["group"],
        version=version["name"],
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=subresources,
        schema=schema,
        printer_columns=columns,
    )


def crd_status(crd: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status the real apiextensions controller writes once names are accepted."""
    spec = crd["spec"]
    condition = {"status": "True", "lastTransitionTime": now}
    return {
        "acceptedNames": dict(spec["names"]),
        "conditions": [
            {
                **condition,
                "type": "NamesAccepted",
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                **condition,
                "type": "Established",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": [_storage_version(spec)["name"]],
    }


def reject(kind: str, name: str, problems: list[Cause]) -> APIError:
    """The 422 for a CRD."""
    return APIError.invalid(kind, "apiextensions.k8s.io", name, problems)
