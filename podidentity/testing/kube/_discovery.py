"""Discovery documents (``/version``, ``/api``, ``/apis``, resource lists) for kubectl.

Only the legacy (unaggregated) discovery format is served: kubectl asks for aggregated
discovery first (``as=APIGroupDiscoveryList``) and falls back to these documents when the
answer is plain ``application/json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ._resources import ResourceType

__all__ = ["api_group", "api_group_list", "api_resource_list", "api_versions", "version_info"]

_SUBRESOURCE_VERBS = ("get", "patch", "update")


def version_info() -> dict[str, str]:
    """``/version``: a 1.37 server (what the bundled kubectl expects)."""
    return {
        "major": "1",
        "minor": "37",
        "gitVersion": "v1.37.0-podidentity",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(address: str) -> dict[str, Any]:
    """``/api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _groups(resources: Iterable[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for resource in resources:
        if resource.group and resource.version not in groups.setdefault(resource.group, []):
            groups[resource.group].append(resource.version)
    return groups


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    """One ``APIGroup``."""
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list(resources: Iterable[ResourceType]) -> dict[str, Any]:
    """``/apis``."""
    groups = _groups(resources)
    items = []
    for group in sorted(groups):
        entry = api_group(group, groups[group])
        del entry["kind"], entry["apiVersion"]
        items.append(entry)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def group_versions(resources: Iterable[ResourceType], group: str) -> list[str]:
    """Versions served for ``group``."""
    return _groups(resources).get(group, [])


def api_resource_list(
    resources: Iterable[ResourceType],
    group: str,
    version: str,
    extra_subresources: Iterable[tuple[str, str, str]] = (),
) -> dict[str, Any] | None:
    """``/api/v1`` or ``/apis/{group}/{version}``; ``None`` when nothing is served there.

    ``extra_subresources`` are (plural, subresource, verb) triples from plug-ins.
    """
    served = [r for r in resources if r.group == group and r.version == version]
    if not served:
        return None
    extra: dict[tuple[str, str], list[str]] = {}
    for plural, sub, verb in extra_subresources:
        if sub:
            extra.setdefault((plural, sub), []).append(verb)
    entries: list[dict[str, Any]] = []
    for resource in sorted(served, key=lambda r: r.plural):
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(resource.verbs),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        if not resource.virtual:
            digest = hashlib.sha256(f"{resource.api_version}/{resource.plural}".encode())
            entry["storageVersionHash"] = digest.hexdigest()[:11]
        entries.append(entry)
        for sub in resource.subresources:
            entries.append(
                {
                    "name": f"{resource.plural}/{sub}",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(_SUBRESOURCE_VERBS),
                }
            )
        for (plural, sub), verbs in sorted(extra.items()):
            if plural == resource.plural and sub not in resource.subresources:
                entries.append(
                    {
                        "name": f"{plural}/{sub}",
                        "singularName": "",
                        "namespaced": resource.namespaced,
                        "kind": resource.kind,
                        "verbs": sorted(verbs),
                    }
                )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
