"""Server-side apply's field ownership: which fields each manager applied, as ``managedFields``.

The real API server tracks every field of every object per field manager. The emulator tracks
only what ``Apply`` operations set, which is enough for the rule tests meet first: re-applying
a manifest that no longer sets a field removes that field, when the same manager set it and no
other applier also owns it. Ownership is written to ``metadata.managedFields`` in the real
``FieldsV1`` format (``{"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, ...}}}}``).

Paths are tuples of FieldsV1 segments: ``f:<field>`` for a map key, ``k:<json>`` for an item of
a list merged by key (built-in kinds; see ``MERGE_KEYS``), ``v:<json>`` for an item of a set
list (``finalizers``), ``.`` for "the list item itself". Other lists are atomic: one leaf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ._patch import MERGE_KEYS

__all__ = ["OWNED_ELSEWHERE", "applied_fields", "drop_fields", "owned_by", "record_apply"]

Path = tuple[str, ...]
#: Fields that are the server's (or identify the object) and never belong to an applier.
OWNED_ELSEWHERE = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:status",),
        ("f:metadata", "f:name"),
        ("f:metadata", "f:namespace"),
        ("f:metadata", "f:uid"),
        ("f:metadata", "f:resourceVersion"),
        ("f:metadata", "f:generation"),
        ("f:metadata", "f:creationTimestamp"),
        ("f:metadata", "f:managedFields"),
    }
)


def _segment(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _walk(value: Any, path: Path, by_key: bool) -> Iterator[Path]:
    """Every node under ``path``: maps recurse, keyed lists itemise, other values are leaves."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _walk(child, (*path, f"f:{key}"), by_key)
        return
    field = path[-1][2:] if path and path[-1].startswith("f:") else ""
    merge_key = MERGE_KEYS.get(field) if by_key and isinstance(value, list) else None
    if merge_key == "":
        yield from ((*path, f"v:{_segment(item)}") for item in value)
    elif merge_key and all(isinstance(item, dict) and merge_key in item for item in value):
        for item in value:
            item_path = (*path, f"k:{_segment({merge_key: item[merge_key]})}")
            yield (*item_path, ".")
            yield from _walk(item, item_path, by_key)
    else:
        yield path


def applied_fields(config: Mapping[str, Any], *, by_key: bool) -> set[Path]:
    """The leaf paths an applied configuration sets (``by_key``: built-in merge keys apply)."""
    return {
        path
        for path in _walk(dict(config), (), by_key)
        if path and not any(path[: len(own)] == own for own in OWNED_ELSEWHERE)
    }


def _tree(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def _leaves(tree: Mapping[str, Any], path: Path = ()) -> Iterator[Path]:
    for part, child in tree.items():
        if child:
            yield from _leaves(child, (*path, part))
        else:
            yield (*path, part)


def owned_by(obj: Mapping[str, Any]) -> dict[str, set[Path]]:
    """Leaf paths per manager of the object's ``Apply`` entries."""
    owners: dict[str, set[Path]] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or ():
        if isinstance(entry, Mapping) and entry.get("operation") == "Apply":
            fields = entry.get("fieldsV1")
            paths = set(_leaves(fields)) if isinstance(fields, Mapping) else set()
            owners.setdefault(str(entry.get("manager", "")), set()).update(paths)
    return owners


def _matches(item: Any, part: str) -> bool:
    wanted = json.loads(part[2:])
    if part.startswith("v:"):
        return bool(item == wanted)
    return isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())


def _drop(node: Any, path: Path) -> bool:
    """Remove ``path`` under ``node``; True when ``node`` became empty because of it."""
    part, rest = path[0], path[1:]
    if part.startswith("f:") and isinstance(node, dict) and part[2:] in node:
        if rest and not _drop(node[part[2:]], rest):
            return False
        del node[part[2:]]
        return not node
    if part[:2] in ("k:", "v:") and isinstance(node, list):
        for index, item in enumerate(node):
            if _matches(item, part):
                if not rest or rest == (".",) or _drop(item, rest):
                    del node[index]
                return not node
    return False


def drop_fields(obj: dict[str, Any], paths: set[Path]) -> None:
    """Remove each path from ``obj``, and maps or lists left empty by that (in place).

    Whole list items (``.`` paths) go first: their fields include the merge key that finds them.
    """
    for path in sorted(paths, key=lambda p: len(p) - (p[-1] == ".")):
        _drop(obj, path)


def record_apply(
    obj: dict[str, Any], manager: str, config: Mapping[str, Any], *, by_key: bool, now: str
) -> None:
    """Make ``manager``'s ``Apply`` entry in ``metadata.managedFields`` own ``config``'s fields."""
    metadata = obj.setdefault("metadata", {})
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": obj.get("apiVersion", ""),
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": _tree(applied_fields(config, by_key=by_key)),
    }
    entries = []
    for existing in metadata.get("managedFields") or ():
        if existing.get("manager") == manager and existing.get("operation") == "Apply":
            if existing.get("fieldsV1") == entry["fieldsV1"]:
                # The same fields again: keep the entry's time, so a no-op apply changes nothing.
                entry = existing
            continue
        entries.append(existing)
    metadata["managedFields"] = [*entries, entry]
