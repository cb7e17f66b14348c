"""Service-account identities for tests: a token and a kubeconfig, with the RBAC rules asked for.

``KubeEmulator.service_account("reconciler", namespace="kube-system", rules=[...])`` creates
the service account if needed, grants the rules (a Role and RoleBinding in the namespace, a
ClusterRole and ClusterRoleBinding for ``cluster_rules``), and returns what a component running
as that service account holds: a bound token for the API server's audience and a kubeconfig
that uses it. Requests made with them are authorized by RBAC like any pod's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._rbac import GROUP

if TYPE_CHECKING:
    from ._emulator import KubeEmulator

__all__ = ["ServiceAccountIdentity", "grant_rules"]

#: One RBAC ``PolicyRule`` as a manifest dict: ``{"verbs": [...], "apiGroups": [...], ...}``.
Rule = Mapping[str, Any]


@attrs.frozen
class ServiceAccountIdentity:
    """What a pod running as a service account holds.

    Attributes:
        namespace: the service account's namespace.
        name: its name.
        token: a bearer token for the API server (never log it).
        kubeconfig_path: a kubeconfig using ``token`` (its context's namespace is
            ``namespace``), for ``kubernetes.config`` loaders and kubectl.
    """

    namespace: str
    name: str
    token: str = attrs.field(repr=False)
    kubeconfig_path: Path

    @property
    def username(self) -> str:
        """``system:serviceaccount:<namespace>:<name>``, as RBAC and the audit log see it."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def _rules(rules: Sequence[Rule], where: str) -> list[dict[str, Any]]:
    checked = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or not rule.get("verbs"):
            raise ValueError(
                f"{where}[{index}] must be a PolicyRule mapping with verbs, e.g. "
                '{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}'
            )
        checked.append({k: list(v) for k, v in rule.items()})
    return checked


def grant_rules(
    emulator: KubeEmulator,
    namespace: str,
    service_account: str,
    *,
    rules: Sequence[Rule] = (),
    cluster_rules: Sequence[Rule] = (),
) -> None:
    """Give a service account ``rules`` in its namespace and ``cluster_rules`` everywhere.

    Each call adds a Role and RoleBinding (and a ClusterRole and ClusterRoleBinding) named
    after the service account with a generated suffix; nothing is ever taken away.

    Raises:
        ValueError: a rule is not a mapping with ``verbs``.
    """
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    for kinds, granted, scoped in (
        (("Role", "RoleBinding"), _rules(rules, "rules"), True),
        (("ClusterRole", "ClusterRoleBinding"), _rules(cluster_rules, "cluster_rules"), False),
    ):
        if not granted:
            continue
        role_kind, binding_kind = kinds
        metadata: dict[str, Any] = {"generateName": f"{service_account}-"}
        if scoped:
            metadata["namespace"] = namespace
        role = emulator.create(
            {"apiVersion": f"{GROUP}/v1", "kind": role_kind, "metadata": metadata, "rules": granted}
        )
        emulator.create(
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": binding_kind,
                "metadata": {**metadata, "name": role["metadata"]["name"]},
                "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role["metadata"]["name"]},
                "subjects": [subject],
            }
        )
