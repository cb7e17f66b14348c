"""The default ClusterRoles and ClusterRoleBindings every cluster starts with.

A subset of kube-apiserver's bootstrap policy (``plugin/pkg/auth/authorizer/rbac/
bootstrappolicy``), with the rules a 1.37 server ends up with once aggregation has run:
``cluster-admin`` (bound to ``system:masters``), the user-facing ``admin``, ``edit`` and
``view``, discovery and ``/version`` for every authenticated user (``system:discovery``,
``system:basic-user``, ``system:public-info-viewer``, the latter for anonymous requests too),
the OIDC issuer documents for service accounts, and ``system:auth-delegator`` (TokenReview and
SubjectAccessReview, what a component that checks tokens is bound to).
"""

from __future__ import annotations

import uuid
from typing import Any

from ._rbac import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, GROUP, PRIVILEGED_GROUP
from ._resources import ResourceType

__all__ = ["bootstrap_objects"]

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"


def _rule(verbs: list[str], group: str, *resources: str) -> dict[str, Any]:
    return {"verbs": list(verbs), "apiGroups": [group], "resources": list(resources)}


def _urls(verbs: list[str], *urls: str) -> dict[str, Any]:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


# view: read what a namespace's workloads are made of, but not Secrets (reading them would let a
# viewer act as any service account in the namespace).
_VIEW_RULES = [
    _rule(
        _READ,
        "",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "pods",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
    ),
    _rule(
        _READ,
        "",
        "bindings",
        "events",
        "limitranges",
        "namespaces/status",
        "pods/log",
        "pods/status",
        "replicationcontrollers/status",
        "resourcequotas",
        "resourcequotas/status",
    ),
    _rule(_READ, "", "namespaces"),
    _rule(_READ, "discovery.k8s.io", "endpointslices"),
    _rule(
        _READ,
        "apps",
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ),
    _rule(_READ, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    _rule(_READ, "batch", "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
    _rule(_READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
    _rule(_READ, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
]

_EDIT_RULES = [
    _rule(["impersonate"], "", "serviceaccounts"),
    _rule(
        _WRITE,
        "",
        "pods",
        "pods/attach",
        "pods/exec",
        "pods/portforward",
        "pods/proxy",
    ),
    _rule(["create"], "", "pods/eviction"),
    _rule(
        _WRITE,
        "",
        "configmaps",
        "events",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "secrets",
        "serviceaccounts",
        "services",
        "services/proxy",
    ),
    _rule(["create"], "", "serviceaccounts/token"),
    _rule(
        _WRITE,
        "apps",
        "daemonsets",
        "deployments",
        "deployments/rollback",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
    ),
    _rule(_WRITE, "autoscaling", "horizontalpodautoscalers"),
    _rule(_WRITE, "batch", "cronjobs", "jobs"),
    _rule(_WRITE, "networking.k8s.io", "ingresses", "networkpolicies"),
    _rule(_WRITE, "policy", "poddisruptionbudgets"),
    _rule(
        _READ,
        "",
        "pods/attach",
        "pods/exec",
        "pods/portforward",
        "pods/proxy",
        "secrets",
        "services/proxy",
    ),
    *_VIEW_RULES,
]

_ADMIN_RULES = [
    _rule(["create"], "authorization.k8s.io", "localsubjectaccessreviews"),
    _rule(_READ + _WRITE, GROUP, "rolebindings", "roles"),
    *_EDIT_RULES,
]

_ALL = ["*"]
_CLUSTER_ROLES: dict[str, tuple[list[dict[str, Any]], dict[str, str]]] = {
    "cluster-admin": (
        [{"verbs": _ALL, "apiGroups": _ALL, "resources": _ALL}, _urls(_ALL, "*")],
        {},
    ),
    "admin": (_ADMIN_RULES, {}),
    "edit": (_EDIT_RULES, {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
    "view": (_VIEW_RULES, {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
    "system:discovery": (
        [
            _urls(
                ["get"],
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            )
        ],
        {},
    ),
    "system:public-info-viewer": (
        [_urls(["get"], "/healthz", "/livez", "/readyz", "/version", "/version/")],
        {},
    ),
    "system:basic-user": (
        [
            _rule(
                ["create"],
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "selfsubjectrulesreviews",
            ),
            _rule(["create"], "authentication.k8s.io", "selfsubjectreviews"),
        ],
        {},
    ),
    "system:service-account-issuer-discovery": (
        [
            _urls(
                ["get"],
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            )
        ],
        {},
    ),
    "system:auth-delegator": (
        [
            _rule(["create"], "authentication.k8s.io", "tokenreviews"),
            _rule(["create"], "authorization.k8s.io", "subjectaccessreviews"),
        ],
        {},
    ),
}

_CLUSTER_ROLE_BINDINGS: dict[str, list[str]] = {
    "cluster-admin": [PRIVILEGED_GROUP],
    "system:discovery": [_AUTHENTICATED],
    "system:basic-user": [_AUTHENTICATED],
    "system:public-info-viewer": [_AUTHENTICATED, _UNAUTHENTICATED],
    "system:service-account-issuer-discovery": ["system:serviceaccounts"],
}

_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def _metadata(name: str, now: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "uid": str(uuid.uuid4()),
        "creationTimestamp": now,
        "labels": {**_BOOTSTRAP_LABELS, **labels},
        "annotations": dict(_AUTOUPDATE),
    }


def bootstrap_objects(now: str) -> list[tuple[ResourceType, dict[str, Any]]]:
    """Fresh copies of the default ClusterRoles, then their ClusterRoleBindings."""
    objects: list[tuple[ResourceType, dict[str, Any]]] = []
    for name, (rules, labels) in _CLUSTER_ROLES.items():
        role = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": _metadata(name, now, labels),
            "rules": [{k: list(v) for k, v in rule.items()} for rule in rules],
        }
        objects.append((CLUSTER_ROLES, role))
    for name, groups in _CLUSTER_ROLE_BINDINGS.items():
        binding = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _metadata(name, now, {}),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups],
        }
        objects.append((CLUSTER_ROLE_BINDINGS, binding))
    return objects
