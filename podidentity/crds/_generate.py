"""Build the CRDs from the models' field tables, and compare them with the shipped files."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from podidentity.crds import CRD_FILES
from podidentity.models import GROUP, KINDS, VERSION

__all__ = ["HEADER", "build_crd", "check", "render", "write"]

HEADER = "# Generated from podidentity.models by `python -m podidentity.crds`. Do not edit.\n"

_AGE = {
    "description": "CreationTimestamp is a timestamp representing the server time when this "
    "object was created. It is not guaranteed to be set in happens-before order across "
    "separate operations. Clients may not set this value. It is represented in RFC3339 form "
    "and is in UTC.",
    "jsonPath": ".metadata.creationTimestamp",
    "name": "Age",
    "type": "date",
}
# Upstream's printer columns, plus ones for the assigned identity that upstream lacked.
_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "AzureIdentity": [
        {"jsonPath": ".spec.type", "name": "Type", "type": "string"},
        {"jsonPath": ".spec.clientID", "name": "ClientID", "type": "string"},
        _AGE,
    ],
    "AzureIdentityBinding": [
        {"jsonPath": ".spec.azureIdentity", "name": "AzureIdentity", "type": "string"},
        {"jsonPath": ".spec.selector", "name": "Selector", "type": "string"},
        _AGE,
    ],
    "AzureAssignedIdentity": [
        {"jsonPath": ".spec.pod", "name": "Pod", "type": "string"},
        {"jsonPath": ".spec.nodename", "name": "Node", "type": "string"},
        {"jsonPath": ".status.status", "name": "State", "type": "string"},
        _AGE,
    ],
}


# The controller writes the assigned identity's status through the status subresource, so a
# user allowed to edit the spec cannot mark an assignment Assigned (upstream had none, and
# wrote /status/status with a JSON patch on the object itself).
_STATUS_SUBRESOURCE = frozenset({"AzureAssignedIdentity"})


def build_crd(kind: str) -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CRD of one kind, from its model."""
    cls = KINDS[kind]
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": cls._schema()},
    }
    if kind in _COLUMNS:
        version["additionalPrinterColumns"] = _COLUMNS[kind]
    if kind in _STATUS_SUBRESOURCE:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            # Groups under k8s.io need this annotation; upstream declared itself unapproved.
            "annotations": {"api-approved.kubernetes.io": "unapproved"},
            "name": f"{cls.plural}.{GROUP}",
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": cls.plural,
                "singular": cls.singular,
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def render(kind: str) -> str:
    """The file text of one kind's CRD."""
    return HEADER + yaml.safe_dump(build_crd(kind), sort_keys=False, width=1000)


def write(directory: Path) -> list[Path]:
    """Write every CRD file into ``directory``; return the paths written."""
    paths = []
    for kind, name in sorted(CRD_FILES.items()):
        path = directory / name
        path.write_text(render(kind), encoding="utf-8")
        paths.append(path)
    return paths


def check(directory: Path) -> str:
    """A unified diff from the files in ``directory`` to the generated ones; ``""`` if equal."""
    diffs: list[str] = []
    for kind, name in sorted(CRD_FILES.items()):
        path = directory / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        wanted = render(kind)
        if current != wanted:
            diffs.extend(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    wanted.splitlines(keepends=True),
                    fromfile=f"{path} (shipped)",
                    tofile=f"{path} (generated)",
                )
            )
    return "".join(diffs)
