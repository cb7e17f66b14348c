"""RBAC: the four ``rbac.authorization.k8s.io/v1`` kinds and the authorizer that reads them.

The rules are evaluated the way kube-apiserver's RBAC authorizer does
(``plugin/pkg/auth/authorizer/rbac``): every ClusterRoleBinding that names the user (by user
name, group, or service account) contributes its ClusterRole's rules everywhere; a RoleBinding
contributes its Role's or ClusterRole's rules in its own namespace only. A rule allows a request
when its verbs, API groups, resources (``pods``, ``pods/status``, ``*/scale``, ``*``) and
resource names all match, or, for requests that are not for a resource, its verbs and
``nonResourceURLs`` (``/healthz``, ``/apis/*``). Members of ``system:masters`` are allowed
everything before RBAC is asked, as kube-apiserver's privileged-group authorizer does.

Pure lookups over the store, no I/O; everything runs on the serving loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._printers import Printer, since
from ._resources import ResourceType
from ._store import Store

if TYPE_CHECKING:
    from ._apiserver import UserInfo

__all__ = [
    "GROUP",
    "PRIVILEGED_GROUP",
    "RBAC_RESOURCES",
    "Attributes",
    "Decision",
    "RBACAuthorizer",
    "rule_allows",
]

GROUP = "rbac.authorization.k8s.io"
#: kube-apiserver allows this group everything, before and regardless of RBAC.
PRIVILEGED_GROUP = "system:masters"
_SA_PREFIX = "system:serviceaccount:"


# ------------------------------------------------------------------------------ served kinds


def _role_row(obj: Mapping[str, Any]) -> list[Any]:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    return [obj["metadata"]["name"], created or "<unknown>"]


def _subjects(obj: Mapping[str, Any], kind: str) -> str:
    names = []
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    for subject in obj.get("subjects") or ():
        if not isinstance(subject, Mapping) or subject.get("kind") != kind:
            continue
        if kind == "ServiceAccount":
            names.append(f"{subject.get('namespace') or namespace}/{subject.get('name', '')}")
        else:
            names.append(str(subject.get("name", "")))
    return ", ".join(names)


def _binding_row(obj: Mapping[str, Any]) -> list[Any]:
    ref = obj.get("roleRef") or {}
    return [
        obj["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        since(obj["metadata"].get("creationTimestamp")),
        _subjects(obj, "User"),
        _subjects(obj, "Group"),
        _subjects(obj, "ServiceAccount"),
    ]


_ROLE_PRINTER = Printer(columns=(("Name", 0, "name"), ("Created At", 0, "")), row=_role_row)
_BINDING_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Role", 0, ""),
        ("Age", 0, ""),
        ("Users", 1, ""),
        ("Groups", 1, ""),
        ("ServiceAccounts", 1, ""),
    ),
    row=_binding_row,
)


def _rbac(plural: str, kind: str, namespaced: bool, printer: Printer) -> ResourceType:
    return ResourceType(
        group=GROUP,
        version="v1",
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        # ValidateRBACName: any name that is a valid path segment ("system:discovery").
        name_rule="path",
        printer=printer,
    )


ROLES = _rbac("roles", "Role", True, _ROLE_PRINTER)
CLUSTER_ROLES = _rbac("clusterroles", "ClusterRole", False, _ROLE_PRINTER)
ROLE_BINDINGS = _rbac("rolebindings", "RoleBinding", True, _BINDING_PRINTER)
CLUSTER_ROLE_BINDINGS = _rbac("clusterrolebindings", "ClusterRoleBinding", False, _BINDING_PRINTER)
RBAC_RESOURCES: tuple[ResourceType, ...] = (
    CLUSTER_ROLES,
    CLUSTER_ROLE_BINDINGS,
    ROLES,
    ROLE_BINDINGS,
)


# ------------------------------------------------------------------------------ decisions


@attrs.frozen
class Attributes:
    """What a request asks to do, as kube-apiserver's ``authorizer.Attributes`` say it.

    Attributes:
        user: who asks.
        verb: ``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
            ``deletecollection`` (or ``impersonate``) for resources; the lower-case HTTP method
            for other paths.
        resource_request: whether the request is for a resource (else for ``path``).
        namespace: the namespace (for a namespace object, its own name); ``""`` for
            cluster-scoped requests.
        api_group: ``""`` for core.
        api_version: the version in the URL.
        resource: the plural (``pods``).
        subresource: ``status``, ``binding``, ``token`` ...; ``""`` for the object itself.
        name: the object's name; ``""`` for collections.
        path: the URL path (what ``nonResourceURLs`` match).
    """

    user: UserInfo
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@attrs.frozen
class Decision:
    """An authorizer's answer: ``reason`` is what the real server puts in a 403 or a review."""

    allowed: bool
    reason: str = ""


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_matches(rule: Mapping[str, Any], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for allowed in rule.get("resources") or ():
        if allowed in ("*", combined):
            return True
        if subresource and allowed == f"*/{subresource}":
            return True
    return False


def _url_matches(rule: Mapping[str, Any], path: str) -> bool:
    for allowed in rule.get("nonResourceURLs") or ():
        if allowed in ("*", path):
            return True
        if isinstance(allowed, str) and allowed.endswith("*") and path.startswith(allowed[:-1]):
            return True
    return False


def rule_allows(attributes: Attributes, rule: Mapping[str, Any]) -> bool:
    """Whether one ``PolicyRule`` allows the request (RBAC's ``RuleAllows``)."""
    if not _has(rule.get("verbs"), attributes.verb):
        return False
    if not attributes.resource_request:
        return _url_matches(rule, attributes.path)
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups"), attributes.api_group)
        and _resource_matches(rule, attributes.resource, attributes.subresource)
        and (not names or attributes.name in names)
    )


def _applies_to(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(name) and name == user.username
    if kind == "Group":
        return bool(name) and name in user.groups
    if kind == "ServiceAccount":
        # A RoleBinding's subject may leave the namespace out: it means the binding's own.
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.username == f"{_SA_PREFIX}{sa_namespace}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any], namespace: str) -> str:
    name = str(subject.get("name", ""))
    if subject.get("kind") == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or namespace}"
    return f'{subject.get("kind", "")} "{name}"'


def aggregate_errors(errors: Sequence[str]) -> str:
    """Go's ``utilerrors.NewAggregate(errs).Error()``: one message, or ``[a, b]``."""
    if len(errors) == 1:
        return errors[0]
    return "[" + ", ".join(errors) + "]"


@attrs.frozen
class _Grant:
    """The rules one binding gives the user, and how the real server describes it."""

    rules: Sequence[Mapping[str, Any]]
    source: str


class RBACAuthorizer:
    """Decides requests from the Roles, ClusterRoles and bindings in ``store``.

    Args:
        store: the API server's store (RBAC objects are read on every decision, so a binding
            created a moment ago counts at once).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def _objects(self, resource: ResourceType, namespace: str = "") -> Iterator[Mapping[str, Any]]:
        """The objects of ``resource`` in ``namespace`` ("" for cluster-scoped), in key order."""
        store = self._store.resources.get((resource.group, resource.plural))
        if store is None:
            return
        keys = store.sorted_keys()
        # Keys sort by (namespace, name): one namespace is one contiguous run.
        for key in keys[bisect.bisect_left(keys, (namespace, "")) :]:
            if key[0] != namespace:
                return
            yield store.objects[key].obj

    def _get(self, resource: ResourceType, namespace: str, name: str) -> Mapping[str, Any] | None:
        store = self._store.resources.get((resource.group, resource.plural))
        stored = None if store is None else store.objects.get((namespace, name))
        return None if stored is None else stored.obj

    def _role_rules(
        self, ref: Mapping[str, Any], namespace: str
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        name = str(ref.get("name", ""))
        if ref.get("kind") == "ClusterRole":
            role = self._get(CLUSTER_ROLES, "", name)
            missing = f'clusterrole.{GROUP} "{name}" not found'
        elif ref.get("kind") == "Role" and namespace:
            role = self._get(ROLES, namespace, name)
            missing = f'role.{GROUP} "{name}" not found'
        else:
            return (), f"unsupported role reference kind: {ref.get('kind')!r}"
        if role is None:
            return (), missing
        rules = role.get("rules") or []
        return [r for r in rules if isinstance(r, Mapping)], None

    def _grants(self, user: UserInfo, namespace: str, errors: list[str]) -> Iterator[_Grant]:
        """Every binding naming ``user`` that counts in ``namespace`` (RBAC's VisitRulesFor)."""
        scopes: list[tuple[ResourceType, str]] = [(CLUSTER_ROLE_BINDINGS, "")]
        if namespace:
            scopes.append((ROLE_BINDINGS, namespace))
        for resource, scope in scopes:
            for binding in self._objects(resource, scope):
                meta = binding["metadata"]
                subject = next(
                    (
                        s
                        for s in binding.get("subjects") or ()
                        if isinstance(s, Mapping) and _applies_to(user, s, scope)
                    ),
                    None,
                )
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                rules, error = self._role_rules(ref, scope)
                if error is not None:
                    errors.append(error)
                    continue
                if scope:
                    label = f'RoleBinding "{meta["name"]}/{scope}"'
                else:
                    label = f'ClusterRoleBinding "{meta["name"]}"'
                source = (
                    f'{label} of {ref.get("kind")} "{ref.get("name")}" to '
                    f"{_describe_subject(subject, scope)}"
                )
                yield _Grant(rules, source)

    def __call__(self, attributes: Attributes) -> Decision:
        """Decide one request."""
        if PRIVILEGED_GROUP in attributes.user.groups:
            return Decision(True)
        errors: list[str] = []
        for grant in self._grants(attributes.user, attributes.namespace, errors):
            for rule in grant.rules:
                if rule_allows(attributes, rule):
                    return Decision(True, f"RBAC: allowed by {grant.source}")
        return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")

    def rules_for(
        self, user: UserInfo, namespace: str
    ) -> tuple[list[Mapping[str, Any]], list[str]]:
        """Every rule ``user`` has in ``namespace`` and the errors met finding them.

        What ``SelfSubjectRulesReview`` reports; members of ``system:masters`` get the
        catch-all rules their privilege amounts to.
        """
        errors: list[str] = []
        rules = [r for g in self._grants(user, namespace, errors) for r in g.rules]
        if PRIVILEGED_GROUP in user.groups:
            rules.insert(0, {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
            rules.insert(1, {"verbs": ["*"], "nonResourceURLs": ["*"]})
        return rules, errors
