"""The CustomResourceDefinitions of the four kinds, shipped as package data.

The YAML files here are generated from the models (``python -m podidentity.crds``; a test
fails when they are stale). They are a structural superset of upstream's v1 schema: the same
properties and types, plus our extensions (``labelSelector``, ``serviceAccountNames``,
identity type 3) and the legacy capitalised spellings, declared so an API server does not prune
them before podidentity reads them.

Loading needs no models import, so tools and emulators can install the CRDs cheaply.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import yaml

__all__ = ["CRD_FILES", "load_crd", "load_crds"]

CRD_FILES = {
    "AzureAssignedIdentity": "aadpodidentity.k8s.io_azureassignedidentities.yaml",
    "AzureIdentity": "aadpodidentity.k8s.io_azureidentities.yaml",
    "AzureIdentityBinding": "aadpodidentity.k8s.io_azureidentitybindings.yaml",
    "AzurePodIdentityException": "aadpodidentity.k8s.io_azurepodidentityexceptions.yaml",
}
"""Package-data file name of each kind's CRD."""


def load_crd(kind: str) -> dict[str, Any]:
    """The CRD of one kind as a fresh dict, ready to POST to ``apiextensions.k8s.io/v1``.

    Raises:
        KeyError: ``kind`` is not one of :data:`CRD_FILES`.
    """
    crd: dict[str, Any] = json.loads(_crd_json(CRD_FILES[kind]))
    return crd


@functools.cache
def _crd_json(file_name: str) -> str:
    # Parsing the YAML is ~10 ms a file (every KubeEmulator start installs all four); parse it
    # once per process and hand out fresh dicts from its JSON form (plain JSON types only).
    text = importlib.resources.files(__name__).joinpath(file_name).read_text("utf-8")
    return json.dumps(yaml.safe_load(text))


def load_crds() -> list[dict[str, Any]]:
    """All four CRDs, sorted by kind; each call returns fresh dicts the caller may change."""
    return [load_crd(kind) for kind in sorted(CRD_FILES)]
