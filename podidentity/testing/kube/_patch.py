"""The three patch formats of the API server: JSON merge, JSON patch and strategic merge.

Strategic merge knows the merge keys of built-in kinds by field name (the same field name has
the same strategy everywhere in core/v1, with a few exceptions that do not matter for tests):
lists of containers, env, volumes, conditions ... merge by key, ``finalizers`` merges as a set,
every other list is replaced. Directives ``$patch: delete|replace`` (in maps and list items),
``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` are honoured (the last
one only as far as removing it; order follows the patch for merged keys).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ._errors import APIError

__all__ = ["MERGE_KEYS", "apply_json_patch", "apply_merge_patch", "apply_strategic_merge_patch"]

#: field name -> merge key for lists that merge by key; ``""`` merges a primitive list as a set.
MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "taints": "key",
    "addresses": "type",
    "ownerReferences": "uid",
    "finalizers": "",
}


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise APIError.bad_request(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], op: str) -> Any:
    node = doc
    for part in parts:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise APIError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: {op} operation does not apply: doc is missing path: /{'/'.join(parts)}",
            ) from None
    return node


def _index(container: list[Any], key: str, *, insert: bool) -> int:
    if insert and key == "-":
        return len(container)
    try:
        index = int(key)
    except ValueError:
        raise APIError.bad_request(f"invalid array index {key!r}") from None
    limit = len(container) if insert else len(container) - 1
    if index < 0 or index > limit:
        raise APIError(422, "Invalid", f"array index {index} out of bounds")
    return index


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], "add")
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(_index(parent, last, insert=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise APIError(422, "Invalid", f"add operation does not apply: /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise APIError(422, "Invalid", "remove operation cannot remove the whole document")
    parent = _walk(doc, parts[:-1], "remove")
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, insert=False))
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise APIError(
        422, "Invalid", f"remove operation does not apply: doc is missing path: /{'/'.join(parts)}"
    )


def apply_json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); returns a new value."""
    if not isinstance(operations, list):
        raise APIError.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise APIError.bad_request(f"invalid json patch operation: {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts, "replace")
            if parts:
                parent = _walk(doc, parts[:-1], "replace")
                if isinstance(parent, list):
                    parent[_index(parent, parts[-1], insert=False)] = copy.deepcopy(op.get("value"))
                else:
                    parent[parts[-1]] = copy.deepcopy(op.get("value"))
            else:
                doc = copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            source = _pointer(str(op.get("from", "")))
            value = _walk(doc, source, kind)
            if kind == "move":
                _remove(doc, source)
            doc = _add(doc, parts, copy.deepcopy(value))
        elif kind == "test":
            if _walk(doc, parts, "test") != op.get("value"):
                raise APIError(
                    422, "Invalid", f"testing value /{'/'.join(parts)} failed: value differs"
                )
        else:
            raise APIError.bad_request(f"unknown json patch operation {kind!r}")
    return doc


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for built-in kinds; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    deletions: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = list(value or [])
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, MERGE_KEYS[key])
        elif isinstance(value, dict):
            merged = apply_strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    for key, removed in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in removed]
    return result


def _merge_list(current: Any, patch: list[Any], merge_key: str) -> list[Any]:
    existing = list(copy.deepcopy(current)) if isinstance(current, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if not merge_key:
        for item in patch:
            if item not in existing:
                existing.append(copy.deepcopy(item))
        return existing
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise APIError.bad_request(
                f"map: {item!r} does not contain declared merge key: {merge_key}"
            )
        position = next(
            (i for i, old in enumerate(existing) if old.get(merge_key) == item[merge_key]), None
        )
        if item.get("$patch") == "delete":
            if position is not None:
                existing.pop(position)
        elif position is None:
            existing.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            existing[position] = apply_strategic_merge_patch(existing[position], item)
    return existing
