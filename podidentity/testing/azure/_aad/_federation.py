"""Signing keys of external OIDC issuers, for workload identity federation.

Azure AD trusts a Kubernetes service-account token only after fetching the issuer's discovery
document (``<issuer>/.well-known/openid-configuration``) and the JWKS it points to, and checking
the token's signature with them. The emulator does the same over real HTTP(S) with httpx, from
the serving loop (so an issuer served by the same :class:`~podidentity.testing._server.ServerThread`
cannot deadlock it). Keys are cached per issuer and fetched again when a token names an unknown
key, which is how rotation works in Azure AD.

Issuers must be loopback URLs (the network guard refuses anything else); HTTPS issuers must
present a certificate from a CA the emulator was told to trust.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = ["IssuerUnreachable", "OidcKeys"]


class IssuerUnreachable(Exception):
    """The issuer's discovery document or JWKS could not be fetched or made no sense."""


class OidcKeys:
    """Fetches and caches issuers' JWKS.

    Args:
        ca_files: CA bundles to trust for HTTPS issuers (the emulator's own CA and any the
            test adds, such as the Kubernetes emulator's).
        timeout: seconds per HTTP request.
    """

    def __init__(self, ca_files: Iterable[Path] = (), *, timeout: float = 5.0) -> None:
        self._ca_files = list(ca_files)
        self._timeout = timeout
        self._cache: dict[str, Mapping[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0

    def trust(self, ca_file: Path) -> None:
        """Trust another CA for HTTPS issuers."""
        self._ca_files.append(Path(ca_file))

    def forget(self, issuer: str | None = None) -> None:
        """Drop cached keys of one issuer (or all)."""
        if issuer is None:
            self._cache.clear()
        else:
            self._cache.pop(issuer, None)

    async def jwks(self, issuer: str, *, refresh: bool = False) -> Mapping[str, Any]:
        """The issuer's key set, from cache unless ``refresh``."""
        async with self._lock:
            if not refresh and issuer in self._cache:
                return self._cache[issuer]
            keys = await self._fetch(issuer)
            self._cache[issuer] = keys
            return keys

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        for ca_file in self._ca_files:
            context.load_verify_locations(cafile=str(ca_file))
        return context

    async def _fetch(self, issuer: str) -> Mapping[str, Any]:
        self.fetches += 1
        discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        # trust_env=False: the test process may have HTTPS_PROXY pointing at the emulator's own
        # proxy, which only knows Azure host names.
        async with httpx.AsyncClient(
            verify=self._ssl_context(), trust_env=False, timeout=self._timeout
        ) as client:
            try:
                discovery = (await client.get(discovery_url)).raise_for_status().json()
                jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
                if not isinstance(jwks_uri, str):
                    raise IssuerUnreachable(f"{discovery_url} names no jwks_uri")
                if discovery.get("issuer") != issuer:
                    raise IssuerUnreachable(
                        f"{discovery_url} declares issuer {discovery.get('issuer')!r}"
                    )
                keys = (await client.get(jwks_uri)).raise_for_status().json()
            except (httpx.HTTPError, ValueError, OSError) as err:
                raise IssuerUnreachable(f"cannot fetch keys of {issuer}: {err}") from err
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise IssuerUnreachable(f"{issuer}'s JWKS is not a key set")
        return keys
