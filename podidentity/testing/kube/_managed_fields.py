"""Field ownership (``metadata.managedFields``) on every write, and server-side apply conflicts.

The real API server records, for every object, which field manager owns which fields
(``sigs.k8s.io/structured-merge-diff``). This module reproduces its rules on the emulator's
dictionaries:

* **Update** (create, update, patch; ``/status`` writes with ``subresource: status``): the
  manager (the request's ``fieldManager``, else the user agent up to its first ``/``) gains the
  fields the write added or changed; every other manager loses them (no conflicts for
  updates); fields the write removed leave every manager. A write that changes nothing
  changes no entry.
* **Apply** (``application/apply-patch+yaml``): the applier owns exactly the fields of its
  configuration. Fields it applied before and no longer applies are removed from the object
  unless another manager owns them too. Changing a field another manager (applier or updater)
  owns is a 409 ``Conflict`` with one ``FieldManagerConflict`` cause per field, unless
  ``force=true``, which takes the fields over. Applying the value a field already has shares
  ownership without conflict.

Ownership is written in the real ``FieldsV1`` format (``{"f:spec": {"f:containers":
{'k:{"name":"app"}': {".": {}, "f:image": {}}}}}``), one entry per (manager, operation,
apiVersion for updates, subresource), sorted as the server sorts them. Paths are tuples of
FieldsV1 segments: ``f:<field>`` for a map key, ``k:<json>`` for an item of a list merged by key
(built-in kinds; see ``_patch.MERGE_KEYS``), ``v:<json>`` for an item of a set list
(``finalizers``), ``.`` for "the list item itself". Other lists, and empty maps, are leaves.

Simplified: maps and structs are not told apart (no ``.`` entry for a new label map),
``x-kubernetes-map-type: atomic`` structs (a workload's ``spec.selector``) are tracked per
field, and update managers are not capped at ten (no ``ancient-changes`` bucket).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from ._errors import APIError
from ._patch import MERGE_KEYS

__all__ = [
    "FIELD_MANAGER_MAX_LENGTH",
    "apply_config",
    "applied_fields",
    "manager_from_user_agent",
    "record_update",
    "validate_field_manager",
]

Path = tuple[str, ...]
FIELD_MANAGER_MAX_LENGTH = 128
#: Fields that identify the object or are the server's; nobody owns them.
_NEVER_OWNED: tuple[Path, ...] = (
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:resourceVersion"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:deletionTimestamp"),
    ("f:metadata", "f:deletionGracePeriodSeconds"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:selfLink"),
)
_ITEM = "."


def manager_from_user_agent(user_agent: str) -> str:
    """The default field manager: the user agent up to its first ``/``, printable, <= 128.

    ``kubectl/v1.37.1 (linux/amd64) ...`` gives ``kubectl``; the Python clients'
    ``OpenAPI-Generator/37.0.2/python`` gives ``OpenAPI-Generator``; Go's default
    ``Go-http-client/1.1`` gives ``Go-http-client``.
    """
    prefix = user_agent.split("/", 1)[0]
    kept = [c for c in prefix if c.isprintable() and unicodedata.category(c)[0] != "C"]
    result = ""
    for char in kept:
        if len((result + char).encode()) > FIELD_MANAGER_MAX_LENGTH:
            break
        result += char
    return result


def validate_field_manager(manager: str, options_kind: str) -> None:
    """422 for a ``fieldManager`` the real server refuses (too long, unprintable)."""
    problem = ""
    if len(manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        problem = f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"
    elif not manager.isprintable():
        problem = f"Invalid value: {json.dumps(manager)}: must only contain printable characters"
    if problem:
        raise APIError(
            422,
            "Invalid",
            f'{options_kind}.meta.k8s.io "" is invalid: fieldManager: {problem}',
            {"group": "meta.k8s.io", "kind": options_kind},
        )


# ------------------------------------------------------------------------------ field paths


def _segment(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _walk(
    value: Any, path: Path, by_key: bool, skip: frozenset[Path] = frozenset()
) -> Iterator[tuple[Path, Any]]:
    """Every owned node under ``path`` with its value (list items: ``.`` with ``None``).

    Subtrees whose path is in ``skip`` are not entered (``managedFields`` would cost most).
    """
    if isinstance(value, dict) and value:
        for key, child in value.items():
            child_path = (*path, f"f:{key}")
            if child_path not in skip:
                yield from _walk(child, child_path, by_key, skip)
        return
    field = path[-1][2:] if path and path[-1].startswith("f:") else ""
    merge_key = MERGE_KEYS.get(field) if by_key and isinstance(value, list) else None
    if merge_key == "":
        for item in value:
            yield (*path, f"v:{_segment(item)}"), None
    elif merge_key and all(isinstance(item, dict) and merge_key in item for item in value):
        for item in value:
            item_path = (*path, f"k:{_segment({merge_key: item[merge_key]})}")
            yield (*item_path, _ITEM), None
            yield from _walk(item, item_path, by_key, skip)
    else:
        yield path, value


def _values(
    obj: Mapping[str, Any] | None, by_key: bool, ignore: tuple[Path, ...]
) -> dict[Path, Any]:
    if not obj:
        return {}
    skip = frozenset((*_NEVER_OWNED, *ignore))
    return {path: value for path, value in _walk(dict(obj), (), by_key, skip) if path}


def applied_fields(
    config: Mapping[str, Any], *, by_key: bool, ignore: tuple[Path, ...] = ()
) -> set[Path]:
    """The paths an applied configuration sets (``by_key``: built-in merge keys apply)."""
    return set(_values(config, by_key, ignore))


def ignored_paths(has_status: bool, subresource: str | None) -> tuple[Path, ...]:
    """What a write may not own: ``status`` through the main resource, ``spec`` through /status."""
    if subresource == "status":
        return (("f:spec",),)
    return (("f:status",),) if has_status else ()


def _tree(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def _leaves(tree: Mapping[str, Any], path: Path = ()) -> Iterator[Path]:
    for part, child in tree.items():
        if isinstance(child, Mapping) and child:
            yield from _leaves(child, (*path, part))
        else:
            yield (*path, part)


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
                if not rest or rest == (_ITEM,) or _drop(item, rest):
                    del node[index]
                return not node
    return False


def drop_fields(obj: dict[str, Any], paths: set[Path]) -> None:
    """Remove each path from ``obj``, and maps or lists left empty by that (in place).

    Whole list items (``.`` paths) go first: their fields include the merge key that finds them.
    """
    for path in sorted(paths, key=lambda p: len(p) - (p[-1] == _ITEM)):
        _drop(obj, path)


def path_string(path: Path) -> str:
    """A FieldsV1 path as the server prints it in conflicts: ``.spec.containers[name="a"]``."""
    text = ""
    for part in path:
        if part == _ITEM:
            continue
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith("k:"):
            keys = json.loads(part[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif part.startswith("v:"):
            text += f"[={part[2:]}]"
    return text


# --------------------------------------------------------------------------------- managers


@attrs.define
class _Manager:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: set[Path]

    @property
    def key(self) -> tuple[str, str, str, str]:
        # Appliers are one manager whatever apiVersion they applied with, as upstream.
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """How a conflict names the manager (``"kubectl" using apps/v1``)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = _tree(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def _decode(entries: Any) -> dict[tuple[str, str, str, str], _Manager]:
    managers: dict[tuple[str, str, str, str], _Manager] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        fields = entry.get("fieldsV1")
        manager = _Manager(
            manager=str(entry.get("manager") or ""),
            operation=str(entry.get("operation") or ""),
            api_version=str(entry.get("apiVersion") or ""),
            subresource=str(entry.get("subresource") or ""),
            time=entry.get("time"),
            fields=set(_leaves(fields)) if isinstance(fields, Mapping) else set(),
        )
        existing = managers.get(manager.key)
        if existing is not None:
            existing.fields |= manager.fields
        else:
            managers[manager.key] = manager
    return managers


def _encode(managers: Mapping[Any, _Manager]) -> list[dict[str, Any]]:
    kept = [m for m in managers.values() if m.fields]
    kept.sort(key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    return [m.entry() for m in kept]


def _base_entries(
    obj: Mapping[str, Any], old: Mapping[str, Any] | None, subresource: str | None
) -> Any:
    """The entries a write starts from: the request's, if it sets any, else the stored ones.

    Setting ``managedFields: []`` keeps the stored entries (clients unaware of the field
    must not wipe it); ``[{}]`` clears them, as on a real server. Subresource writes never
    set them.
    """
    given = (obj.get("metadata") or {}).get("managedFields")
    if isinstance(given, list) and given and subresource is None:
        return given
    return ((old or {}).get("metadata") or {}).get("managedFields") or []


def _diff(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], by_key: bool, ignore: tuple[Path, ...]
) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two versions of an object."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    skip = frozenset((*_NEVER_OWNED, *ignore))
    _diff_into(old or {}, new, (), by_key, skip, changed, removed)
    return changed, removed


_MISSING: Any = object()


def _diff_into(
    old: Any,
    new: Any,
    path: Path,
    by_key: bool,
    skip: frozenset[Path],
    changed: set[Path],
    removed: set[Path],
) -> None:
    # Descend only where the versions differ: most writes touch one small part of an object.
    if isinstance(old, dict) and isinstance(new, dict) and old and new:
        for key in {**old, **new}:
            before, after = old.get(key, _MISSING), new.get(key, _MISSING)
            child = (*path, f"f:{key}")
            if child in skip or before == after:
                continue
            _diff_into(before, after, child, by_key, skip, changed, removed)
        return
    values_before = {} if old is _MISSING else dict(_walk(old, path, by_key, skip))
    values_after = {} if new is _MISSING else dict(_walk(new, path, by_key, skip))
    changed.update(
        p for p, v in values_after.items() if p not in values_before or values_before[p] != v
    )
    removed.update(set(values_before) - set(values_after))


def record_update(
    obj: dict[str, Any],
    old: Mapping[str, Any] | None,
    *,
    manager: str,
    api_version: str,
    subresource: str | None,
    has_status: bool,
    by_key: bool,
    now: str,
) -> None:
    """Write ``obj``'s ``managedFields`` after an ``Update`` by ``manager`` (in place)."""
    ignore = ignored_paths(has_status, subresource)
    managers = _decode(_base_entries(obj, old, subresource))
    changed, removed = _diff(old, obj, by_key, ignore)
    for other in managers.values():
        other.fields -= changed | removed
    if changed:
        mine = _Manager(manager, "Update", api_version, subresource or "", now, set())
        mine = managers.setdefault(mine.key, mine)
        mine.fields |= changed
        mine.time = now
    _set_entries(obj, _encode(managers))


def _set_entries(obj: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    metadata = obj.setdefault("metadata", {})
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


def _conflict(conflicts: list[tuple[_Manager, Path]]) -> APIError:
    conflicts.sort(key=lambda c: (c[0].describe(), path_string(c[1])))
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {manager.describe()}",
            "field": path_string(path),
        }
        for manager, path in conflicts
    ]
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        described = f"{manager.describe()}: {path_string(path)}"
        message = f"Apply failed with 1 conflict: conflict with {described}"
    else:
        lines: list[str] = []
        for described in dict.fromkeys(m.describe() for m, _ in conflicts):
            lines.append(f"conflicts with {described}:")
            lines.extend(f"- {path_string(p)}" for m, p in conflicts if m.describe() == described)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, {"causes": causes})


def apply_config(
    live: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    manager: str,
    api_version: str,
    subresource: str | None,
    has_status: bool,
    by_key: bool,
    force: bool,
    now: str,
    merge: Callable[[Any, Any], Any],
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live``, with its managedFields.

    Raises:
        APIError: 409 Conflict naming each field another manager owns and this apply changes
            (unless ``force``).
    """
    ignore = ignored_paths(has_status, subresource)
    managers = _decode(((live.get("metadata") or {}).get("managedFields")) or [])
    mine = _Manager(manager, "Apply", api_version, subresource or "", now, set())
    previous = managers.pop(mine.key, None)
    wanted = applied_fields(config, by_key=by_key, ignore=ignore)
    base = json.loads(json.dumps(live))
    base.get("metadata", {}).pop("managedFields", None)
    merged: dict[str, Any] = merge(base, config)
    others: set[Path] = set().union(*(m.fields for m in managers.values()))
    if previous is not None:
        drop_fields(merged, previous.fields - wanted - others)
    changed, removed = _diff(base, merged, by_key, ignore)
    conflicts = [
        (other, path) for other in managers.values() for path in sorted(other.fields & changed)
    ]
    if conflicts and not force:
        raise _conflict(conflicts)
    for other in managers.values():
        other.fields -= changed | removed
    if previous is not None and previous.fields == wanted and not changed and not removed:
        mine.time = previous.time  # a no-op apply changes nothing, not even the time
    mine.fields = wanted
    managers[mine.key] = mine
    _set_entries(merged, _encode(managers))
    return merged
