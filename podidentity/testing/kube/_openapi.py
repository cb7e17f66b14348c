"""Just enough OpenAPI v3 for kubectl: the index and one document per group-version.

kubectl reads ``/openapi/v3`` to learn whether the server supports server-side field
validation (a ``fieldValidation`` query parameter on the resource's PATCH operation) and, for
``apply``, the schemas of built-in kinds. The documents list every resource's paths with that
parameter and the ``x-kubernetes-group-version-kind`` extension; CRD schemas are included,
built-in kinds get an open object schema (kubectl then falls back to its compiled-in patch
strategies).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from ._resources import ResourceType

__all__ = ["openapi_index", "openapi_group_version"]

_WRITE_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation")
]


def _gv_path(resource: ResourceType) -> str:
    return f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"


def _group_versions(resources: Iterable[ResourceType]) -> dict[str, list[ResourceType]]:
    grouped: dict[str, list[ResourceType]] = {}
    for resource in resources:
        grouped.setdefault(_gv_path(resource), []).append(resource)
    return grouped


def openapi_group_version(resources: Iterable[ResourceType], gv_path: str) -> dict[str, Any] | None:
    """The document for ``api/v1`` or ``apis/{group}/{version}``, or ``None``."""
    served = _group_versions(resources).get(gv_path)
    if not served:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource in served:
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        schema_name = f"{resource.group or 'core'}.{resource.version}.{resource.kind}"
        schema: dict[str, Any] = dict(resource.schema) if resource.schema else {"type": "object"}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[schema_name] = schema
        ref = {"$ref": f"#/components/schemas/{schema_name}"}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        root = f"/{gv_path}/namespaces/{{namespace}}" if resource.namespaced else f"/{gv_path}"
        plain = {"x-kubernetes-group-version-kind": gvk, "responses": ok}
        write = {**plain, "parameters": _WRITE_PARAMS}
        paths[f"{root}/{resource.plural}"] = {
            "get": {**plain, "x-kubernetes-action": "list"},
            "post": {**write, "x-kubernetes-action": "post"},
        }
        paths[f"{root}/{resource.plural}/{{name}}"] = {
            "get": {**plain, "x-kubernetes-action": "get"},
            "put": {**write, "x-kubernetes-action": "put"},
            "patch": {**write, "x-kubernetes-action": "patch"},
            "delete": {**plain, "x-kubernetes-action": "delete"},
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_index(resources: Iterable[ResourceType]) -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document lives (hash busts caches)."""
    listing = list(resources)
    paths = {}
    for gv_path in sorted(_group_versions(listing)):
        document = openapi_group_version(listing, gv_path)
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
        paths[gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest.upper()}"}
    return {"paths": paths}
