"""podidentity: Azure AD Pod Identity for Kubernetes, as a Python library.

Pods run in the security context of an Azure identity that a cluster administrator binds to
them, and read Azure Key Vault with it, without a service principal's secret in the cluster.

The public names are re-exported here; see the API reference for each.
"""

from __future__ import annotations

from podidentity import errors
from podidentity.errors import PodIdentityError, ValidationError

__all__ = [
    "PodIdentityError",
    "ValidationError",
    "errors",
]

__version__ = "0.1.0.dev0"
