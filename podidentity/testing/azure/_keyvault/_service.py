"""The Azure Key Vault emulator: vaults, secrets, certificates, keys, access policies.

:class:`KeyVaultService` is the state of every emulated vault plus the ASGI app that serves
their data plane by ``Host`` (``<vault>.vault.azure.net``). Serve it with TLS under a
certificate for ``*.vault.azure.net`` and route the name to it with the
:class:`~podidentity.testing.azure._proxy.HostRoutingProxy`; then the unmodified SDK clients
(``SecretClient``, ``CertificateClient``, ``KeyClient``, sync and aio) talk to it with their
real vault URLs, challenge authentication included.

Tokens are checked by an injected ``verify_token(token, audience) -> claims`` (the Azure AD
emulator provides it), so the Key Vault emulator never needs to know how tokens are minted. A
caller is its token's ``oid``; what it may do is set with :meth:`KeyVaultService.grant`, as
access policies do. Each vault has its own request log and fault rules.

A name the service does not know (``nosuch.vault.azure.net``) would fail DNS in Azure; the
emulator cannot fail DNS, so route with ``only_if=service.has_host`` (the proxy then answers
``502`` as for an unresolvable name), or the service answers ``404 VaultNotFound``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from podidentity.testing._faults import FaultInjector, RequestLog, with_faults
from podidentity.testing._http import error_boundary
from podidentity.testing._pki import CertificateAuthority, IssuedCertificate
from podidentity.testing._ratelimit import RateLimit, SlidingWindow
from podidentity.testing.azure._http import (
    ASGIApp,
    Receive,
    Scope,
    Send,
)
from podidentity.testing.azure._keyvault._app import VaultSettings, vault_app
from podidentity.testing.azure._keyvault._auth import (
    AccessPolicy,
    TokenVerifier,
    normalize_permissions,
)
from podidentity.testing.azure._keyvault._errors import KeyVaultError, fault_error_body
from podidentity.testing.azure._keyvault._state import (
    CertificateVersion,
    KeyVersion,
    SecretVersion,
    Vault,
    new_version,
    validate_object_name,
)

__all__ = ["CERTIFICATE_CONTENT_TYPES", "VAULT_RATE_LIMIT", "KeyVaultService", "RateLimit"]

#: The content type of a certificate's backing secret, by format.
CERTIFICATE_CONTENT_TYPES: Mapping[str, str] = {
    "pfx": "application/x-pkcs12",
    "pem": "application/x-pem-file",
}
#: Key Vault's documented service limit for secrets, per vault: 4,000 transactions per 10 s.
VAULT_RATE_LIMIT = RateLimit(requests=4000, per_seconds=10.0)
_VAULT_NAME = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


def _epoch(value: dt.datetime | float | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("give timezone-aware datetimes (Key Vault times are UTC)")
        return int(value.timestamp())
    return int(value)


class KeyVaultService:
    """Every emulated vault of one world, and the ASGI app serving them.

    Args:
        tenant_id: the default tenant of new vaults (a token from another tenant gets
            ``401 AKV10032``).
        verify_token: ``(token, audience) -> claims``; raises
            :class:`~podidentity.testing._jwt.InvalidToken` for a bad token.
        clock: epoch seconds, for ``created``/``updated``/deletion dates and the rate limit.
        dns_suffix: the vault DNS suffix; the challenge resource is ``https://<suffix>``.
        authority: the Azure AD authority named in the challenge.
        location: the default Azure region of new vaults (it appears in error messages).
        rate_limit: Key Vault's per-vault service limit (:data:`VAULT_RATE_LIMIT`, 4,000 per
            10 s, by default); ``None`` turns throttling off. Read at every request, so it may
            be changed at any time.
        short_pages: serve list pages as a real vault often does (the first one empty with a
            ``nextLink``, the rest short); ``False`` fills every page. Changeable later through
            :attr:`short_pages`.
        ca: issues certificates for :meth:`create_certificate` (a private CA by default).

    The setup methods are thread-safe and may be called while the app serves.
    """

    def __init__(
        self,
        tenant_id: str,
        verify_token: TokenVerifier,
        *,
        clock: Callable[[], float] = time.time,
        dns_suffix: str = "vault.azure.net",
        authority: str = "https://login.microsoftonline.com",
        location: str = "eastus",
        rate_limit: RateLimit | None = VAULT_RATE_LIMIT,
        short_pages: bool = True,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.dns_suffix = dns_suffix.lower().strip(".")
        self.location = location
        self._clock = clock
        self.rate_limit = rate_limit
        self._ca = ca
        self._settings = VaultSettings(
            verify_token=verify_token,
            resource=f"https://{self.dns_suffix}",
            authority=authority,
            clock=clock,
            short_pages=short_pages,
        )
        self._lock = threading.Lock()
        self._vaults: dict[str, Vault] = {}
        self._apps: dict[str, ASGIApp] = {}

        self._app: ASGIApp = error_boundary(self._serve)

    def __repr__(self) -> str:
        with self._lock:
            names = sorted(self._vaults)
        return f"KeyVaultService(tenant_id={self.tenant_id!r}, vaults={names})"

    # -- vaults ------------------------------------------------------------------------------

    @property
    def short_pages(self) -> bool:
        """Whether lists come in short pages (first one empty), as a real vault serves them."""
        return self._settings.short_pages

    @short_pages.setter
    def short_pages(self, value: bool) -> None:
        self._settings.short_pages = value

    @property
    def resource(self) -> str:
        """The resource tokens must be issued for (``https://vault.azure.net``)."""
        return self._settings.resource

    @property
    def host_pattern(self) -> str:
        """The proxy route pattern for every vault (``*.vault.azure.net``)."""
        return f"*.{self.dns_suffix}"

    def create_vault(
        self, name: str, *, tenant_id: str | None = None, location: str | None = None
    ) -> str:
        """Create an empty vault and return its URL (``https://<name>.vault.azure.net/``).

        Raises:
            ValueError: the name is not a valid vault name (3-24 letters, digits and single
                dashes, starting with a letter) or is taken.
        """
        if not _VAULT_NAME.match(name):
            raise ValueError(
                f"invalid vault name {name!r}: 3-24 letters, digits and dashes, starting with a "
                "letter, ending with a letter or digit, no consecutive dashes"
            )
        key = name.lower()
        vault = Vault(
            name=key,
            url=f"https://{key}.{self.dns_suffix}",
            tenant_id=tenant_id or self.tenant_id,
            location=location or self.location,
        )
        windows: dict[RateLimit, SlidingWindow] = {}

        def limiter() -> SlidingWindow | None:
            # Read at each request, so a test may change or lift ``rate_limit`` at any time.
            limit = self.rate_limit
            if limit is None:
                return None
            with self._lock:
                return windows.setdefault(limit, limit.window(self._clock))

        app = with_faults(
            vault_app(vault, self._settings, limiter),
            faults=vault.faults,
            log=vault.log,
            error_body=fault_error_body,
        )
        with self._lock:
            if key in self._vaults:
                raise ValueError(f"a vault named {name!r} already exists")
            self._vaults[key] = vault
            self._apps[key] = app
        return vault.url + "/"

    def vault_url(self, vault: str) -> str:
        """The URL of an existing vault (with the trailing slash ARM's ``vaultUri`` has)."""
        return self._vault(vault).url + "/"

    def has_host(self, host: str) -> bool:
        """Whether ``host`` names an existing vault (for the proxy's ``only_if``)."""
        return self._vault_for_host(host) is not None

    def requests(self, vault: str) -> RequestLog:
        """The vault's request log (``Authorization`` masked)."""
        return self._vault(vault).log

    def faults(self, vault: str) -> FaultInjector:
        """The vault's fault rules (errors answered in Key Vault's error shape)."""
        return self._vault(vault).faults

    def grant(
        self,
        vault: str,
        principal_id: str,
        *,
        secrets: Iterable[str] = ("get", "list"),
        certificates: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> None:
        """Add an access policy for an object id (a token's ``oid``), merged with any existing.

        Permissions are the ARM names (``get``, ``list``, ``set``, ``delete``, ...) or ``all``.

        Raises:
            ValueError: an unknown permission name.
        """
        policy = AccessPolicy(
            object_id=principal_id,
            secrets=normalize_permissions("secrets", secrets),
            certificates=normalize_permissions("certificates", certificates),
            keys=normalize_permissions("keys", keys),
        )
        target = self._vault(vault)
        with target.lock:
            target.grant(policy)

    def revoke(self, vault: str, principal_id: str) -> None:
        """Remove every permission of an object id."""
        target = self._vault(vault)
        with target.lock:
            target.policies.pop(principal_id.lower(), None)

    # -- secrets -----------------------------------------------------------------------------

    def set_secret(
        self,
        vault: str,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
        expires: dt.datetime | float | None = None,
        not_before: dt.datetime | float | None = None,
    ) -> str:
        """Add a new version of a secret and return its version id."""
        now = int(self._clock())
        target = self._vault(vault)
        with target.lock:
            if name.lower() in target.certificates:
                raise ValueError(
                    f"{name!r} is a certificate's backing secret; add a certificate version instead"
                )
            secret = target.add_secret(
                SecretVersion(
                    name=name,
                    version=new_version(),
                    value=value,
                    created=now,
                    updated=now,
                    content_type=content_type,
                    tags=dict(tags) if tags is not None else None,
                    enabled=enabled,
                    not_before=_epoch(not_before),
                    expires=_epoch(expires),
                )
            )
            return secret.version

    def set_enabled(
        self, vault: str, name: str, enabled: bool, *, version: str | None = None
    ) -> None:
        """Enable or disable the latest (or the given) version of a secret."""
        target = self._vault(vault)
        with target.lock:
            secret = target.secret(name, version)
            secret.enabled = enabled
            secret.updated = int(self._clock())

    def disable(self, vault: str, name: str, *, version: str | None = None) -> None:
        """Disable a secret version: reading it then answers ``403 SecretDisabled``."""
        self.set_enabled(vault, name, False, version=version)

    def secret_value(self, vault: str, name: str, version: str | None = None) -> str:
        """The value of the latest (or the given) version, for assertions."""
        target = self._vault(vault)
        with target.lock:
            return target.secret(name, version).value

    def secret_versions(self, vault: str, name: str) -> list[str]:
        """The version ids of a live secret, oldest first."""
        target = self._vault(vault)
        with target.lock:
            return [s.version for s in target.secret_versions(name)]

    def delete_secret(self, vault: str, name: str) -> None:
        """Soft-delete a secret (it moves to the deleted secrets, recoverable)."""
        target = self._vault(vault)
        with target.lock:
            target.delete_secret(name, int(self._clock()))

    # -- certificates and keys ---------------------------------------------------------------

    def create_certificate(
        self,
        vault: str,
        name: str,
        *,
        format: Literal["pfx", "pem"] = "pfx",
        certificate: IssuedCertificate | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Add a certificate version with its backing key and secret; return the version.

        The certificate is issued by the service's CA for ``CN=<name>`` unless ``certificate``
        (an RSA one) is given. The backing secret holds the private key and chain: base64
        PKCS#12 without a password (``pfx``, ``application/x-pkcs12``) or PEM key then
        certificates (``pem``, ``application/x-pem-file``).
        """
        if format not in CERTIFICATE_CONTENT_TYPES:
            raise ValueError(f"format must be 'pfx' or 'pem', got {format!r}")
        validate_object_name(name)
        issued = certificate or self._certificate_authority().issue_client(name)
        if not isinstance(issued.private_key, rsa.RSAPrivateKey):
            raise ValueError("Key Vault certificates here are RSA; give an RSA certificate")
        content_type = CERTIFICATE_CONTENT_TYPES[format]
        value = (
            base64.b64encode(issued.pkcs12()).decode("ascii")
            if format == "pfx"
            else issued.pem.decode("ascii")
        )
        now = int(self._clock())
        version = new_version()
        target = self._vault(vault)
        with target.lock:
            taken = (name.lower() in target.secrets) or (name.lower() in target.keys)
            if taken and name.lower() not in target.certificates:
                # The certificate's backing secret and key take its name.
                raise ValueError(f"a secret or key named {name!r} already exists in {vault!r}")
            target.add_secret(
                SecretVersion(
                    name=name,
                    version=version,
                    value=value,
                    created=now,
                    updated=now,
                    content_type=content_type,
                    managed=True,
                    tags=dict(tags) if tags is not None else None,
                )
            )
            target.add_key(
                KeyVersion(
                    name=name,
                    version=version,
                    private_key=issued.private_key,
                    created=now,
                    updated=now,
                    key_ops=("sign", "verify", "wrapKey", "unwrapKey", "encrypt", "decrypt"),
                    managed=True,
                )
            )
            target.add_certificate(
                CertificateVersion(
                    name=name,
                    version=version,
                    certificate=issued,
                    content_type=content_type,
                    created=now,
                    updated=now,
                    tags=dict(tags) if tags is not None else None,
                )
            )
        return version

    def create_key(self, vault: str, name: str, *, tags: Mapping[str, str] | None = None) -> str:
        """Add a new RSA-2048 key version and return its version id."""
        validate_object_name(name)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(self._clock())
        version = new_version()
        target = self._vault(vault)
        with target.lock:
            target.add_key(
                KeyVersion(
                    name=name,
                    version=version,
                    private_key=private_key,
                    created=now,
                    updated=now,
                    tags=dict(tags) if tags is not None else None,
                )
            )
        return version

    # -- serving -----------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        """The ASGI app serving every vault, dispatching by ``Host``.

        A plain coroutine function (the error boundary around :meth:`_serve`) rather than a
        bound method, because uvicorn's interface detection takes a bound method for an ASGI2
        app.
        """
        return self._app

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = ""
        for key, value in scope["headers"]:
            if key.lower() == b"host":
                host = value.decode("latin-1")
        name = self._vault_for_host(host)
        with self._lock:
            vault_app_ = self._apps.get(name) if name else None
            known = sorted(self._vaults)
        if vault_app_ is None:
            raise KeyVaultError(
                404,
                "VaultNotFound",
                f"The podidentity Key Vault emulator has no vault at {host!r} (in Azure the name "
                f"would not resolve). Known vaults: {known}",
            )
        await vault_app_(scope, receive, send)

    def _vault_for_host(self, host: str) -> str | None:
        name = host.partition(":")[0].lower().rstrip(".")
        suffix = "." + self.dns_suffix
        if not name.endswith(suffix):
            return None
        label = name[: -len(suffix)]
        with self._lock:
            return label if label in self._vaults else None

    def _vault(self, name: str) -> Vault:
        with self._lock:
            vault = self._vaults.get(name.lower())
        if vault is None:
            raise KeyError(f"no vault named {name!r}; create it with create_vault()")
        return vault

    def _certificate_authority(self) -> CertificateAuthority:
        with self._lock:
            if self._ca is None:
                self._ca = CertificateAuthority("podidentity Key Vault emulator CA")
            return self._ca
