"""Typed, immutable models of the ``aadpodidentity.k8s.io/v1`` kinds, and label selectors.

Pure data, no I/O. Build them from the wire with :func:`parse` / ``Model.from_dict`` or from
manifests with :func:`load_yaml`; write them with ``to_dict()``; change them with
``attrs.evolve``; check them with ``problems()``. See ``docs/models.md``.
"""

from __future__ import annotations

from podidentity.models._frozen import FrozenDict
from podidentity.models._load import KINDS, Document, Model, load_documents, load_yaml, parse
from podidentity.models._objects import ManifestObject, manifest_objects
from podidentity.models._resource import API_VERSION, GROUP, VERSION
from podidentity.models.assigned import (
    ASSIGNED_IDENTITY_FINALIZER,
    NODE_NAME_LABEL,
    AssignedIdentityState,
    AssignedIdentityStatus,
    AzureAssignedIdentity,
    assigned_identity_name,
)
from podidentity.models.binding import BINDING_LABEL, AzureIdentityBinding
from podidentity.models.convert import Change, convert_documents, is_pod_identity_object
from podidentity.models.exception import AzurePodIdentityException, ExceptionStatus
from podidentity.models.identity import (
    BEHAVIOR_ANNOTATION,
    DEFAULT_AD_ENDPOINT,
    AzureIdentity,
    IdentityType,
    ReplicaStatus,
    SecretReference,
)
from podidentity.models.meta import ObjectMeta, OwnerReference
from podidentity.models.problems import Problem, Severity
from podidentity.models.selectors import LabelSelector, LabelSelectorRequirement, Operator
from podidentity.models.validate import Finding, validate_documents

__all__ = [
    "API_VERSION",
    "ASSIGNED_IDENTITY_FINALIZER",
    "AssignedIdentityState",
    "AssignedIdentityStatus",
    "AzureAssignedIdentity",
    "AzureIdentity",
    "AzureIdentityBinding",
    "AzurePodIdentityException",
    "BEHAVIOR_ANNOTATION",
    "BINDING_LABEL",
    "Change",
    "DEFAULT_AD_ENDPOINT",
    "Document",
    "ExceptionStatus",
    "Finding",
    "FrozenDict",
    "GROUP",
    "IdentityType",
    "KINDS",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ManifestObject",
    "Model",
    "NODE_NAME_LABEL",
    "ObjectMeta",
    "Operator",
    "OwnerReference",
    "Problem",
    "ReplicaStatus",
    "SecretReference",
    "Severity",
    "VERSION",
    "assigned_identity_name",
    "convert_documents",
    "is_pod_identity_object",
    "load_documents",
    "load_yaml",
    "manifest_objects",
    "parse",
    "validate_documents",
]
