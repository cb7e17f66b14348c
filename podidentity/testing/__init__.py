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

from typing import TYPE_CHECKING, Any

# The names below are imported on first use (PEP 562): the pytest plugin lives in this package
# and pytest imports it at start-up wherever podidentity is installed, so importing the
# package must not pull in the emulators (kubernetes, uvicorn, azure SDKs) until a test uses
# them.
_EXPORTS: dict[str, tuple[str, str]] = {
    "AzureEmulator": ("podidentity.testing.azure", "AzureEmulator"),
    "CertificateAuthority": ("podidentity.testing._pki", "CertificateAuthority"),
    "Clock": ("podidentity.testing._clock", "Clock"),
    "DefaultWorld": ("podidentity.testing.default_world", "DefaultWorld"),
    "FaultInjector": ("podidentity.testing._faults", "FaultInjector"),
    "ForeignConnectionError": ("podidentity.testing.network_guard", "ForeignConnectionError"),
    "InvalidToken": ("podidentity.testing._jwt", "InvalidToken"),
    "IssuedCertificate": ("podidentity.testing._pki", "IssuedCertificate"),
    "JwtSigner": ("podidentity.testing._jwt", "JwtSigner"),
    "KubeEmulator": ("podidentity.testing.kube", "KubeEmulator"),
    "ManualClock": ("podidentity.testing._clock", "ManualClock"),
    "NetworkGuard": ("podidentity.testing.network_guard", "NetworkGuard"),
    "NodePool": ("podidentity.testing.sandbox", "NodePool"),
    "RateLimit": ("podidentity.testing._ratelimit", "RateLimit"),
    "RequestLog": ("podidentity.testing._faults", "RequestLog"),
    "RunningServer": ("podidentity.testing._server", "RunningServer"),
    "Sandbox": ("podidentity.testing.sandbox", "Sandbox"),
    "SandboxNode": ("podidentity.testing.sandbox", "SandboxNode"),
    "ServerThread": ("podidentity.testing._server", "ServerThread"),
    "SlidingWindow": ("podidentity.testing._ratelimit", "SlidingWindow"),
    "TLSFiles": ("podidentity.testing._server", "TLSFiles"),
    "guard": ("podidentity.testing.network_guard", "guard"),
    "populate_default_world": ("podidentity.testing.default_world", "populate_default_world"),
    "system_clock": ("podidentity.testing._clock", "system_clock"),
    "verify_jwt": ("podidentity.testing._jwt", "verify"),
    "with_faults": ("podidentity.testing._faults", "with_faults"),
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule) on first use."""
    import importlib

    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
