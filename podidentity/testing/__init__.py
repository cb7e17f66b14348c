"""Local emulators of Kubernetes and Azure for testing pod identity code over real HTTP.

Everything here serves on 127.0.0.1 only, so the official clients (``kubernetes``,
``kubernetes.aio``, azure-identity, azure-keyvault-secrets, kubectl) run against it unmodified:

- :class:`KubeEmulator`: an in-memory Kubernetes API server that also plays scheduler,
  kubelet and service-account issuer (``podidentity.testing.kube`` has the details).
- :class:`AzureEmulator`: one emulated tenant with Azure AD, an IMDS per node, ARM and Key
  Vault, reached under their real host names (``podidentity.testing.azure``).
- :data:`guard` / ``podidentity.testing.pytest_plugin``: refuse any connection outside
  127.0.0.0/8 during a test run.

Install with the ``testing`` extra: ``pip install podidentity[testing]``.
"""

from __future__ import annotations

from podidentity.testing.azure import AzureEmulator
from podidentity.testing.kube import KubeEmulator
from podidentity.testing.network_guard import ForeignConnectionError, NetworkGuard, guard
from podidentity.testing.sandbox import NodePool, Sandbox, SandboxNode

__all__ = [
    "AzureEmulator",
    "ForeignConnectionError",
    "KubeEmulator",
    "NetworkGuard",
    "NodePool",
    "Sandbox",
    "SandboxNode",
    "guard",
]
