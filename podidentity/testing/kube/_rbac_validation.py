"""Defaulting and validation of Roles, ClusterRoles and their bindings, as the real server does.

Runs as an admission hook on the four RBAC resources (``install``). The defaults are
``SetDefaults_Subject`` and ``SetDefaults_*RoleBinding`` (the ``rbac.authorization.k8s.io`` API
group of a User or Group subject and of ``roleRef``); the checks and their texts are those of
``pkg/apis/rbac/validation``: a rule needs verbs, and either API groups and resources or
non-resource URLs (never both, and never the latter in a namespaced Role); a binding needs a
valid ``roleRef`` (which can never change) and valid subjects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import APIError, Cause
from ._rbac import GROUP, RBAC_RESOURCES
from ._validation import field_cause, field_required, name_problems

if TYPE_CHECKING:
    from ._apiserver import AdmissionRequest, APIServer

__all__ = ["install"]

_SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def _invalid(field: str, printed: str, detail: str) -> Cause:
    # ``printed`` is already in Go's notation (a slice or struct, not a quoted string).
    return field_cause("FieldValueInvalid", field, f"Invalid value: {printed}: {detail}")


def _unsupported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    quoted = ", ".join(json.dumps(s) for s in supported)
    return field_cause(
        "FieldValueNotSupported",
        field,
        f"Unsupported value: {json.dumps(value)}: supported values: {quoted}",
    )


def _go_strings(values: Any) -> str:
    # Go's %#v of a []string, as field.Invalid prints a slice value.
    items = values if isinstance(values, list) else []
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in items) + "}"


def _rule_problems(rule: Any, index: int, namespaced: bool) -> list[Cause]:
    path = f"rules[{index}]"
    if not isinstance(rule, Mapping):
        return [_invalid(path, json.dumps(rule), "must be an object")]
    problems: list[Cause] = []
    if not rule.get("verbs"):
        problems.append(field_required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs")
    if urls:
        if namespaced:
            problems.append(
                _invalid(
                    f"{path}.nonResourceURLs",
                    _go_strings(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            problems.append(
                _invalid(
                    f"{path}.nonResourceURLs",
                    _go_strings(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return problems
    if not rule.get("apiGroups"):
        problems.append(
            field_required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        )
    if not rule.get("resources"):
        problems.append(
            field_required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    return problems


def _subject_problems(subject: Any, index: int, namespaced: bool) -> list[Cause]:
    path = f"subjects[{index}]"
    if not isinstance(subject, Mapping):
        return [_invalid(path, json.dumps(subject), "must be an object")]
    problems: list[Cause] = []
    name = subject.get("name") or ""
    if not name:
        problems.append(field_required(f"{path}.name"))
    kind = subject.get("kind")
    api_group = subject.get("apiGroup") or ""
    if kind == "ServiceAccount":
        if name:
            problems.extend(name_problems(str(name), "subdomain", f"{path}.name"))
        if api_group:
            problems.append(_unsupported(f"{path}.apiGroup", api_group, ("",)))
        if not namespaced and not subject.get("namespace"):
            problems.append(field_required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if api_group != GROUP:
            problems.append(_unsupported(f"{path}.apiGroup", api_group, (GROUP,)))
    else:
        problems.append(_unsupported(f"{path}.kind", kind or "", _SUBJECT_KINDS))
    return problems


def _role_ref_problems(ref: Any, cluster: bool) -> list[Cause]:
    if not isinstance(ref, Mapping):
        ref = {}
    problems: list[Cause] = []
    if ref.get("apiGroup") != GROUP:
        problems.append(_unsupported("roleRef.apiGroup", ref.get("apiGroup") or "", (GROUP,)))
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.get("kind") not in kinds:
        problems.append(_unsupported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        problems.append(field_required("roleRef.name"))
    return problems


def _go_role_ref(ref: Mapping[str, Any]) -> str:
    # How field.Invalid prints the old rbac.RoleRef struct.
    return (
        f"rbac.RoleRef{{APIGroup:{json.dumps(ref.get('apiGroup', ''))}, "
        f"Kind:{json.dumps(ref.get('kind', ''))}, Name:{json.dumps(ref.get('name', ''))}}}"
    )


def _default(obj: dict[str, Any], binding: bool) -> None:
    if not binding:
        return
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or ():
        kind = subject.get("kind") if isinstance(subject, dict) else None
        if kind in ("User", "Group") and not subject.get("apiGroup"):
            subject["apiGroup"] = GROUP


def _admit(request: AdmissionRequest) -> None:
    obj = request.object
    if obj is None:
        return
    resource = request.resource
    binding = resource.plural.endswith("bindings")
    namespaced = resource.namespaced
    _default(obj, binding)
    problems: list[Cause] = []
    if binding:
        problems.extend(_role_ref_problems(obj.get("roleRef"), cluster=not namespaced))
        old_ref = (request.old_object or {}).get("roleRef")
        if request.operation == "UPDATE" and old_ref != obj.get("roleRef"):
            problems.append(
                _invalid("roleRef", _go_role_ref(old_ref or {}), "cannot change roleRef")
            )
        for index, subject in enumerate(obj.get("subjects") or ()):
            problems.extend(_subject_problems(subject, index, namespaced))
    else:
        for index, rule in enumerate(obj.get("rules") or ()):
            problems.extend(_rule_problems(rule, index, namespaced))
    if problems:
        raise APIError.invalid(resource.kind, resource.group, request.name, problems)


def install(apiserver: APIServer) -> None:
    """Default and validate every write of the RBAC kinds."""
    for resource in RBAC_RESOURCES:
        apiserver.add_admission(resource.plural, _admit, group=resource.group)
