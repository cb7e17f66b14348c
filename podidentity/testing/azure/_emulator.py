"""One coherent emulated Azure: Azure AD, ARM, Key Vault and an IMDS per node, on 127.0.0.1.

:class:`AzureEmulator` starts every endpoint on one
:class:`~podidentity.testing._server.ServerThread`,
with TLS certificates from one generated CA, and routes the real host names
(``login.microsoftonline.com``, ``management.azure.com``, ``*.vault.azure.net``) to them through
a :class:`~podidentity.testing.azure._proxy.HostRoutingProxy`. The Azure SDKs then run
unmodified: point them at the world with :meth:`AzureEmulator.environ` /
:meth:`AzureEmulator.patched_environ` (``HTTPS_PROXY`` and the CA bundle), or per client with
:meth:`AzureEmulator.client_kwargs`.

All endpoints read one :class:`~podidentity.testing.azure._world.AzureWorld`: an identity
assigned through ARM is what IMDS on that VM issues tokens for, and the tokens Azure AD issues
are what ARM and Key Vault verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs

from podidentity.testing._clock import Clock, system_clock
from podidentity.testing._faults import FaultInjector, RequestLog, with_faults
from podidentity.testing._pki import CertificateAuthority
from podidentity.testing._server import RunningServer, ServerThread, TLSFiles
from podidentity.testing.azure._aad import AadService, OidcKeys, aad_error_body
from podidentity.testing.azure._arm import (
    DEFAULT_OPERATION_DURATION,
    ArmLimits,
    ArmService,
    arm_error_body,
    with_arm_headers,
)
from podidentity.testing.azure._imds import (
    DEFAULT_PROPAGATION_DELAY,
    ImdsLimits,
    ImdsNode,
    ImdsService,
    imds_error_body,
)
from podidentity.testing.azure._keyvault import VAULT_RATE_LIMIT, KeyVaultService
from podidentity.testing.azure._proxy import HostRoutingProxy
from podidentity.testing.azure._sdk_state import clear_key_vault_challenge_caches
from podidentity.testing.azure._tokens import IssuedToken, TokenIssuer
from podidentity.testing.azure._world import (
    AzureWorld,
    ComputeResource,
    ManagedIdentity,
    Principal,
    ServicePrincipal,
)

__all__ = ["AUTHORITY_HOST", "ARM_HOST", "AzureEmulator", "Endpoint", "ImdsEndpoint"]

logger = logging.getLogger(__name__)

AUTHORITY_HOST = "login.microsoftonline.com"
ARM_HOST = "management.azure.com"
#: Other names of Azure AD that SDKs and old configurations use.
_AUTHORITY_ALIASES = ("login.windows.net", "login.microsoft.com", "sts.windows.net")
#: Environment variables :meth:`AzureEmulator.patched_environ` sets (and restores afterwards).
_ENV_KEYS = (
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)

_S = TypeVar("_S")


@attrs.frozen
class Endpoint(Generic[_S]):
    """A served emulator endpoint: where it listens, what it logs, how to make it fail.

    Attributes:
        host: the real host name clients use (through the proxy).
        url: the loopback URL it listens on (``https://127.0.0.1:<port>``), for direct calls.
        log: every request it served (credentials masked).
        faults: next-N failures, resets, latency (errors in the service's own shape).
        service: the emulated service, for its own controls.
    """

    host: str
    url: str
    log: RequestLog
    faults: FaultInjector
    service: _S

    @property
    def base_url(self) -> str:
        """``https://<host>``, the URL SDK clients are given."""
        return f"https://{self.host}"


@attrs.frozen
class ImdsEndpoint:
    """The IMDS of one VM or scale-set instance.

    Attributes:
        node: the machine it belongs to.
        url: its plain-HTTP loopback URL (``AZURE_POD_IDENTITY_AUTHORITY_HOST``).
        log: every request it served.
        faults: next-N failures, resets, latency, in IMDS's error shape.
        service: the shared IMDS service (limits, held tokens, identity delay).
    """

    node: ImdsNode
    url: str
    log: RequestLog
    faults: FaultInjector
    service: ImdsService

    def restart(self, seconds: float = 70.0, *, status: int = 410) -> None:
        """Make this IMDS answer ``status`` for ``seconds`` of the world clock, as it restarts."""
        self.service.restart(self.node, seconds, status=status)


class AzureEmulator:
    """An emulated Azure tenant with Azure AD, ARM, Key Vault and per-node IMDS endpoints.

    Use as a context manager, sync or async::

        with AzureEmulator() as azure:
            app = azure.world.add_service_principal("ci")
            with azure.patched_environ():
                ClientSecretCredential(azure.tenant_id, app.client_id, app.secret).get_token(
                    "https://management.azure.com/.default"
                )

    The emulator is as slow and as strict as Azure by default: ARM writes complete
    ``operation_duration`` seconds after they are accepted, IMDS follows an assignment or a
    removal ``propagation_delay`` seconds after that, and IMDS, ARM and Key Vault throttle at
    their documented limits. Tests move a :class:`~podidentity.testing.ManualClock` rather than
    sleep, or pass ``operation_duration=0, propagation_delay=0, throttling=False``.

    Args:
        tenant_id: the tenant's ID (generated when omitted).
        clock: the world's time; pass a :class:`~podidentity.testing.azure.ManualClock` to make
            tokens expire or assignments propagate without sleeping.
        operation_duration: seconds (world clock) an ARM identity write takes
            (:attr:`ArmService.operation_duration`; 2 s by default, 0 for immediate).
        propagation_delay: seconds (world clock) IMDS lags behind a completed assignment or
            removal (:attr:`ImdsService.identity_delay`; 5 s by default, 0 for immediate).
        throttling: enforce IMDS's, ARM's and Key Vault's request limits (the default);
            ``False`` lifts all three.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        clock: Clock = system_clock,
        operation_duration: float = DEFAULT_OPERATION_DURATION,
        propagation_delay: float = DEFAULT_PROPAGATION_DELAY,
        throttling: bool = True,
    ) -> None:
        if operation_duration < 0 or propagation_delay < 0:
            raise ValueError("operation_duration and propagation_delay cannot be negative")
        self.clock = clock
        self.ca = CertificateAuthority("podidentity Azure emulator CA")
        self.world = AzureWorld(tenant_id=tenant_id, ca=self.ca, clock=clock)
        self.issuer = TokenIssuer(self.world.tenant_id, clock)
        self.oidc = OidcKeys()
        self.imds_service = ImdsService(self.world, self.issuer)
        self.imds_service.identity_delay = propagation_delay
        #: ARM (its :class:`ArmService`), configurable before :meth:`start`.
        self.arm_service = ArmService(self.world, self.issuer)
        self.arm_service.operation_duration = operation_duration
        self.keyvault = KeyVaultService(
            self.world.tenant_id, self.verify_access_token, clock=clock, ca=self.ca
        )
        if not throttling:
            self.set_throttling(False)
        self.proxy = HostRoutingProxy()
        self._server = ServerThread("podidentity-azure")
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ca_bundle: Path | None = None
        self._aad: Endpoint[AadService] | None = None
        self._arm: Endpoint[ArmService] | None = None
        self._keyvault_server: RunningServer | None = None
        self._imds: dict[ImdsNode, ImdsEndpoint] = {}

    def __repr__(self) -> str:
        state = "running" if self._aad is not None else "stopped"
        return f"AzureEmulator(tenant_id={self.tenant_id!r}, {state})"

    def set_throttling(self, enabled: bool) -> None:
        """Enforce (the default) or lift IMDS's, ARM's and Key Vault's documented limits.

        Enabling restores the default limits (:class:`ImdsLimits`, :class:`ArmLimits`,
        :data:`~podidentity.testing.azure._keyvault.VAULT_RATE_LIMIT`); set a service's own
        ``limits`` / ``rate_limit`` for other figures.
        """
        self.imds_service.limits = ImdsLimits() if enabled else None
        self.arm_service.limits = ArmLimits() if enabled else None
        self.keyvault.rate_limit = VAULT_RATE_LIMIT if enabled else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Generate certificates and start every endpoint and the proxy."""
        if self._aad is not None:
            return
        clear_key_vault_challenge_caches()
        self._tmp = tempfile.TemporaryDirectory(prefix="podidentity-azure-")
        directory = Path(self._tmp.name)
        self._ca_bundle = directory / "ca.pem"
        self._ca_bundle.write_bytes(self.ca.cert_pem)
        self.oidc.trust(self._ca_bundle)
        try:
            self._server.start()
            aad_service = AadService(self.world, self.issuer, self.oidc)
            self._aad = self._serve(
                "aad",
                AUTHORITY_HOST,
                aad_service,
                aad_service,
                aad_error_body,
                [AUTHORITY_HOST, *_AUTHORITY_ALIASES],
                directory,
            )
            arm_service = self.arm_service
            self._arm = self._serve(
                "arm",
                ARM_HOST,
                arm_service,
                arm_service,
                arm_error_body,
                [ARM_HOST],
                directory,
                outer=lambda app: with_arm_headers(app, arm_service),
            )
            vault_tls = self._tls(directory, "keyvault", [f"*.{self.keyvault.dns_suffix}"])
            self._keyvault_server = self._server.serve_asgi(self.keyvault.app, tls=vault_tls)
            for host in (AUTHORITY_HOST, *_AUTHORITY_ALIASES):
                self.proxy.add_route(host, _port(self._aad.url))
            self.proxy.add_route(ARM_HOST, _port(self._arm.url))
            self.proxy.add_route(
                self.keyvault.host_pattern,
                self._keyvault_server.port,
                only_if=self.keyvault.has_host,
            )
            self.proxy.serve(self._server)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Azure emulator for tenant %s serving, proxy %s", self.tenant_id, self.proxy.url
        )

    def _serve(
        self,
        name: str,
        host: str,
        app: Any,
        service: _S,
        error_body: Any,
        hostnames: list[str],
        directory: Path,
        outer: Callable[[Any], Any] | None = None,
    ) -> Endpoint[_S]:
        log, faults = RequestLog(), FaultInjector()
        wrapped = with_faults(app, faults=faults, log=log, error_body=error_body)
        if outer is not None:
            # Outside the fault layer, so injected answers get the service's headers too.
            wrapped = outer(wrapped)
        running = self._server.serve_asgi(wrapped, tls=self._tls(directory, name, hostnames))
        return Endpoint(host=host, url=running.url, log=log, faults=faults, service=service)

    def _tls(self, directory: Path, stem: str, hostnames: list[str]) -> TLSFiles:
        issued = self.ca.issue_server([*hostnames, "127.0.0.1", "localhost"])
        cert, key = issued.write(directory, stem)
        return TLSFiles(cert_file=cert, key_file=key)

    def stop(self) -> None:
        """Stop every endpoint and delete the certificate files."""
        self._server.stop()
        clear_key_vault_challenge_caches()
        with self._lock:
            self._imds.clear()
        self._aad = self._arm = None
        self._keyvault_server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AzureEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> AzureEmulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- the world and its endpoints ---------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        """The tenant (directory) ID."""
        return self.world.tenant_id

    @property
    def ca_bundle(self) -> Path:
        """The PEM file of the CA every emulator certificate chains to."""
        if self._ca_bundle is None:
            raise RuntimeError("the emulator is not running; use it as a context manager")
        return self._ca_bundle

    @property
    def aad(self) -> Endpoint[AadService]:
        """Azure AD (``login.microsoftonline.com``)."""
        if self._aad is None:
            raise RuntimeError("the emulator is not running; use it as a context manager")
        return self._aad

    @property
    def arm(self) -> Endpoint[ArmService]:
        """Azure Resource Manager (``management.azure.com``)."""
        if self._arm is None:
            raise RuntimeError("the emulator is not running; use it as a context manager")
        return self._arm

    @property
    def authority(self) -> str:
        """The authority URL to give SDKs explicitly (``https://login.microsoftonline.com``)."""
        return f"https://{AUTHORITY_HOST}"

    def imds(
        self,
        *,
        vm: ComputeResource | str | None = None,
        vmss: ComputeResource | str | None = None,
        instance: int = 0,
        resource_group: str | None = None,
    ) -> ImdsEndpoint:
        """The IMDS endpoint of a VM or of one scale-set instance, started on first use.

        Pass ``vm=`` (a VM or its name) or ``vmss=`` with ``instance=``.
        """
        node = self._node(vm=vm, vmss=vmss, instance=instance, resource_group=resource_group)
        # Held while starting, so two threads asking for the same node share one endpoint;
        # the serving loop never takes this lock, so waiting on it cannot deadlock.
        with self._lock:
            existing = self._imds.get(node)
            if existing is not None:
                return existing
            log, faults = RequestLog(), FaultInjector()
            app = with_faults(
                self.imds_service.app(node), faults=faults, log=log, error_body=imds_error_body
            )
            running = self._server.serve_asgi(app)
            endpoint = ImdsEndpoint(
                node=node, url=running.url, log=log, faults=faults, service=self.imds_service
            )
            self._imds[node] = endpoint
            return endpoint

    def imds_url(
        self,
        *,
        vm: ComputeResource | str | None = None,
        vmss: ComputeResource | str | None = None,
        instance: int = 0,
        resource_group: str | None = None,
    ) -> str:
        """The node's IMDS URL, the value for ``AZURE_POD_IDENTITY_AUTHORITY_HOST``."""
        return self.imds(vm=vm, vmss=vmss, instance=instance, resource_group=resource_group).url

    def _node(
        self,
        *,
        vm: ComputeResource | str | None,
        vmss: ComputeResource | str | None,
        instance: int,
        resource_group: str | None,
    ) -> ImdsNode:
        if (vm is None) == (vmss is None):
            raise ValueError("pass exactly one of vm= or vmss=")
        target = vm if vm is not None else vmss
        assert target is not None  # one of the two, checked above
        if isinstance(target, ComputeResource):
            compute = target
        elif vm is not None:
            compute = self.world.vm(target, resource_group=resource_group)
        else:
            compute = self.world.vmss(target, resource_group=resource_group)
        if compute.kind == "virtualMachineScaleSets" and not 0 <= instance < compute.capacity:
            raise ValueError(f"scale set {compute.name} has no instance {instance}")
        return ImdsNode(
            kind=compute.kind,
            subscription_id=compute.subscription_id,
            resource_group=compute.resource_group,
            name=compute.name,
            instance=instance if compute.kind == "virtualMachineScaleSets" else None,
        )

    # -- tokens ------------------------------------------------------------------------------

    def verify_access_token(self, token: str, audience: str) -> Mapping[str, Any]:
        """Check a token this tenant issued for ``audience``; return its claims.

        Raises:
            podidentity.testing._jwt.InvalidToken: expired, wrong audience, bad signature, ...
        """
        return self.issuer.verify(token, audience)

    def issue_token(
        self,
        who: ManagedIdentity | ServicePrincipal | Principal,
        audience: str,
        *,
        lifetime: int = 3599,
    ) -> IssuedToken:
        """Mint a token directly (no HTTP), e.g. to call ARM from a test without a credential."""
        principal = who if isinstance(who, Principal) else who.principal
        return self.issuer.issue(principal, audience, lifetime=lifetime)

    # -- pointing SDKs at the world ----------------------------------------------------------

    def environ(
        self,
        *,
        vm: ComputeResource | str | None = None,
        vmss: ComputeResource | str | None = None,
        instance: int = 0,
    ) -> dict[str, str]:
        """Environment variables that point Azure SDKs at this world.

        ``HTTPS_PROXY`` (both spellings) sends ``login.microsoftonline.com``,
        ``management.azure.com`` and ``*.vault.azure.net`` to the emulators; ``NO_PROXY`` keeps
        loopback (IMDS, other emulators) direct; ``REQUESTS_CA_BUNDLE`` (requests, so sync
        azure-core and MSAL) and ``SSL_CERT_FILE`` (``ssl.create_default_context``, so aiohttp
        and httpx) trust the emulator CA. With ``vm=`` or ``vmss=``,
        ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` is that node's IMDS.
        """
        env = {
            "HTTPS_PROXY": self.proxy.url,
            "https_proxy": self.proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "SSL_CERT_FILE": str(self.ca_bundle),
            "AZURE_AUTHORITY_HOST": self.authority,
        }
        if vm is not None or vmss is not None:
            env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = self.imds_url(
                vm=vm, vmss=vmss, instance=instance
            )
        return env

    @contextlib.contextmanager
    def patched_environ(
        self,
        *,
        vm: ComputeResource | str | None = None,
        vmss: ComputeResource | str | None = None,
        instance: int = 0,
        extra: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, str]]:
        """Set :meth:`environ` (plus ``extra``) in ``os.environ`` for the block, then restore.

        Without a node, ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` is removed for the block, so no
        credential can fall back to the real IMDS address.
        """
        env = {**self.environ(vm=vm, vmss=vmss, instance=instance), **(extra or {})}
        keys = {*_ENV_KEYS, *env}
        saved = {k: os.environ.get(k) for k in keys}
        try:
            for key in keys:
                os.environ.pop(key, None)
            os.environ.update(env)
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for azure-core clients and credentials, instead of the environment.

        ``connection_verify`` trusts the emulator CA; ``proxies`` sends https through the
        routing proxy. Works with the requests (sync) and aiohttp (aio) transports.
        """
        return {"connection_verify": str(self.ca_bundle), "proxies": {"https": self.proxy.url}}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
