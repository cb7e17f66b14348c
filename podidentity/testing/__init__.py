"""Local emulators of Kubernetes and Azure for testing pod identity code over real HTTP.

Everything here serves on 127.0.0.1 only, so the official clients (``kubernetes``,
``kubernetes.aio``, azure-identity, azure-keyvault-secrets, kubectl) run against it unmodified:

- :class:`KubeEmulator`: an in-memory Kubernetes API server that also plays scheduler,
  kubelet and service-account issuer (``podidentity.testing.kube`` has the details).
- :class:`AzureEmulator`: one emulated tenant with Azure AD, an IMDS per node, ARM and Key
  Vault, reached under their real host names (``podidentity.testing.azure``).
- :class:`Sandbox`: both, agreeing on nodes, machines and the service-account issuer;
  :func:`populate_default_world` gives it the nodes, identities and vault of
  ``podidentity sandbox``.
- :data:`guard` / ``podidentity.testing.pytest_plugin``: refuse any connection outside
  127.0.0.0/8 during a test run; fixtures for the emulators.
- Building blocks for emulators of your own: :class:`CertificateAuthority`,
  :class:`JwtSigner` with :func:`verify_jwt`, :class:`ServerThread`, :class:`FaultInjector`
  and :class:`RequestLog`; one :class:`Clock` (:class:`ManualClock` to move time by hand) and one
  :class:`RateLimit` shared by every emulator.

Install with the ``testing`` extra: ``pip install podidentity[testing]``.
"""

from __future__ import annotations

from podidentity.testing._clock import Clock, ManualClock, system_clock
from podidentity.testing._faults import FaultInjector, RequestLog, with_faults
from podidentity.testing._jwt import InvalidToken, JwtSigner
from podidentity.testing._jwt import verify as verify_jwt
from podidentity.testing._pki import CertificateAuthority, IssuedCertificate
from podidentity.testing._ratelimit import RateLimit, SlidingWindow
from podidentity.testing._server import RunningServer, ServerThread, TLSFiles
from podidentity.testing.azure import AzureEmulator
from podidentity.testing.default_world import DefaultWorld, populate_default_world
from podidentity.testing.kube import KubeEmulator
from podidentity.testing.network_guard import ForeignConnectionError, NetworkGuard, guard
from podidentity.testing.sandbox import NodePool, Sandbox, SandboxNode

__all__ = [
    "AzureEmulator",
    "CertificateAuthority",
    "Clock",
    "DefaultWorld",
    "FaultInjector",
    "ForeignConnectionError",
    "InvalidToken",
    "IssuedCertificate",
    "JwtSigner",
    "KubeEmulator",
    "ManualClock",
    "NetworkGuard",
    "NodePool",
    "RateLimit",
    "RequestLog",
    "RunningServer",
    "Sandbox",
    "SandboxNode",
    "ServerThread",
    "SlidingWindow",
    "TLSFiles",
    "guard",
    "populate_default_world",
    "system_clock",
    "verify_jwt",
    "with_faults",
]
