"""The objects in manifest documents, and where pods and workloads keep their labels.

Shared by :mod:`~podidentity.models.convert` and :mod:`~podidentity.models.validate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import attrs

__all__ = ["LABEL_MAPS", "ManifestObject", "label_maps", "manifest_objects"]

# Where pods and workloads keep labels that the API server matches against a binding.
LABEL_MAPS = (
    ("metadata", "labels"),
    ("spec", "selector", "matchLabels"),
    ("spec", "template", "metadata", "labels"),
    ("spec", "jobTemplate", "metadata", "labels"),
    ("spec", "jobTemplate", "spec", "selector", "matchLabels"),
    ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
)


@attrs.frozen
class ManifestObject:
    """One object of the documents: a document, or an item of a ``List`` document."""

    index: int
    """The document's position in the list given."""
    prefix: str
    """``""`` for a document, ``items[N]`` for an item of a list."""
    data: Any


def manifest_objects(documents: Sequence[Any]) -> list[ManifestObject]:
    """The objects of the documents, in order.

    A ``kind: List`` document (what ``kubectl get -o yaml`` prints) or a ``<Kind>List`` stands
    for its items, so the output of kubectl can be checked and converted as it is.
    """
    found: list[ManifestObject] = []
    for index, data in enumerate(documents):
        kind = data.get("kind") if isinstance(data, Mapping) else None
        items = data.get("items") if isinstance(data, Mapping) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            found += [ManifestObject(index, f"items[{i}]", item) for i, item in enumerate(items)]
        else:
            found.append(ManifestObject(index, "", data))
    return found


def label_maps(data: Mapping[str, Any]) -> Iterator[tuple[str, MutableMapping[str, Any]]]:
    """Each label map of an object that the ``aadpodidbinding`` label matters in, by path."""
    for keys in LABEL_MAPS:
        node: Any = data
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, MutableMapping):
            yield ".".join(keys), node
