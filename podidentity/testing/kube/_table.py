"""Server-side ``Table`` rendering, which ``kubectl get`` asks for by default.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``; the server answers
with column definitions and one row per object whose ``object`` is the object's
``PartialObjectMetadata`` (or the whole object with ``includeObject=Object``). ``date`` columns
are rendered as ages (``5m``), as the real server does for CRD printer columns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._printers import since
from ._resources import PrinterColumn, ResourceType

__all__ = ["TABLE_ACCEPT", "human_age", "table"]

TABLE_ACCEPT = "as=table"
_FILTER = re.compile(r"\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]")


def human_age(timestamp: str | None, now: dt.datetime | None = None) -> str:
    """``5s``, ``3m20s``, ``5h``, ``2y331d`` since an RFC 3339 timestamp (``<unknown>`` if none).

    The real server's ``duration.HumanDuration``, so ages read as they do against a cluster.
    """
    return since(timestamp, now)


def _lookup(obj: Any, path: str) -> Any:
    """A tiny JSONPath subset: ``.a.b``, ``[0]`` and ``[?(@.type=="Ready")]``."""
    node = obj
    tokens = re.findall(r"\[\?\(@\.\w+==\"[^\"]*\"\)\]|\[\d+\]|[^.\[\]]+", path)
    for token in tokens:
        if node is None:
            return None
        match = _FILTER.fullmatch(token)
        if match:
            key, wanted = match.groups()
            items = node if isinstance(node, list) else []
            node = next((i for i in items if isinstance(i, Mapping) and i.get(key) == wanted), None)
        elif token.startswith("["):
            index = int(token[1:-1])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            node = node.get(token) if isinstance(node, Mapping) else None
    return node


def _cell(column: PrinterColumn, obj: Mapping[str, Any]) -> Any:
    value = _lookup(obj, column.json_path)
    if column.type == "date":
        return human_age(value if isinstance(value, str) else None)
    if value is None:
        return None if column.type in ("integer", "number", "boolean") else "<none>"
    if isinstance(value, (dict, list)):
        return str(value)
    return value


def _column_definitions(resource: ResourceType) -> list[dict[str, Any]]:
    if resource.printer is not None:
        return [
            {"name": name, "type": "string", "format": fmt, "description": "", "priority": priority}
            for name, priority, fmt in resource.printer.columns
        ]
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ]
    for column in resource.printer_columns:
        columns.append(
            {
                "name": column.name,
                "type": "string" if column.type == "date" else column.type,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            }
        )
    if not any(c.type == "date" for c in resource.printer_columns):
        columns.append(
            {"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}
        )
    return columns


def _row(resource: ResourceType, obj: Mapping[str, Any], include_object: str) -> dict[str, Any]:
    if resource.printer is not None:
        cells = resource.printer.row(obj)
    else:
        cells = [obj.get("metadata", {}).get("name", "")]
        cells.extend(_cell(c, obj) for c in resource.printer_columns)
        if not any(c.type == "date" for c in resource.printer_columns):
            cells.append(human_age(obj.get("metadata", {}).get("creationTimestamp")))
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return row


def table(
    resource: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
    headers: bool = True,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects``."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": _column_definitions(resource) if headers else [],
        "rows": [_row(resource, obj, include_object) for obj in objects],
    }
