"""podidentity: Azure AD Pod Identity for Kubernetes, as a Python library.

Pods run in the security context of an Azure identity that a cluster administrator binds to
them, and read Azure Key Vault with it, without a service principal's secret in the cluster.

The public names are re-exported here; see the API reference for each.
"""

from __future__ import annotations

from podidentity import errors, models
from podidentity.errors import PodIdentityError, ValidationError
from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    IdentityType,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    Problem,
    SecretReference,
    load_yaml,
    parse,
)

__all__ = [
    "AssignedIdentityState",
    "AzureAssignedIdentity",
    "AzureIdentity",
    "AzureIdentityBinding",
    "AzurePodIdentityException",
    "IdentityType",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ObjectMeta",
    "PodIdentityError",
    "Problem",
    "SecretReference",
    "ValidationError",
    "errors",
    "load_yaml",
    "models",
    "parse",
]

__version__ = "0.1.0.dev0"
