"""Azure AD tokens for service principals and federated workload identities.

The requests themselves are azure-identity's (``ClientSecretCredential``,
``CertificateCredential``, ``ClientAssertionCredential`` from ``azure.identity.aio``): they know
the wire protocol, the authority quirks and certificate handling. This module only picks the
credential, turns a resource into a scope, and turns failures into :mod:`podidentity.errors`
(Azure AD's 429 into :class:`~podidentity.errors.AzureThrottledError`, 5xx and no answer into
:class:`~podidentity.errors.AzureUnavailableError`, any other refusal into
:class:`~podidentity.errors.AzureAuthenticationError`). The SDK's own retries are turned off
(``retry_total=0``): the caller retries within its request's deadline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError as SdkAzureError
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity.aio import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
)

from podidentity.azure.tokens import AccessToken
from podidentity.errors import (
    AzureAuthenticationError,
    AzureError,
    AzureThrottledError,
    AzureUnavailableError,
)

__all__ = [
    "WORKLOAD_IDENTITY_AUDIENCE",
    "certificate_token",
    "client_secret_token",
    "federated_token",
    "scope_for",
]

logger = logging.getLogger(__name__)

WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
"""The audience of service-account tokens that Azure AD exchanges (workload identity)."""


def scope_for(resource: str) -> str:
    """The v2 scope for an IMDS-style ``resource`` (``https://vault.azure.net/.default``)."""
    if resource.endswith("/.default"):
        return resource
    return resource + (".default" if resource.endswith("/") else "/.default")


def _authority(authority: str) -> str:
    return authority.rstrip("/")


async def client_secret_token(
    *,
    tenant_id: str,
    client_id: str,
    secret: str,
    resource: str,
    authority: str,
    options: Mapping[str, Any] | None = None,
) -> AccessToken:
    """A token for a service principal with a client secret.

    Args:
        tenant_id: the service principal's tenant.
        client_id: its application (client) ID.
        secret: the client secret (never logged).
        resource: the audience of the token.
        authority: the Azure AD authority URL (``https://login.microsoftonline.com/``).
        options: extra keyword arguments for the azure-identity credential (transport,
            ``connection_verify``, ``proxies``).

    Raises:
        podidentity.errors.AzureError: a subclass saying what Azure AD answered.
    """
    credential = ClientSecretCredential(
        tenant_id, client_id, secret, authority=_authority(authority), **_kwargs(options)
    )
    return await _token(credential, client_id, resource)


async def certificate_token(
    *,
    tenant_id: str,
    client_id: str,
    certificate: bytes,
    password: bytes | None,
    resource: str,
    authority: str,
    options: Mapping[str, Any] | None = None,
) -> AccessToken:
    """A token for a service principal with a certificate (PEM or PKCS#12 bytes).

    Raises:
        podidentity.errors.AzureError: a subclass saying what Azure AD answered.
    """
    try:
        credential = CertificateCredential(
            tenant_id,
            client_id,
            certificate_data=certificate,
            password=password or None,
            authority=_authority(authority),
            **_kwargs(options),
        )
    except (ValueError, TypeError) as err:
        # The certificate bytes could not be loaded (wrong password, not a certificate).
        raise AzureAuthenticationError(
            f"the certificate of client {client_id} could not be loaded: {type(err).__name__}",
            code="invalid_certificate",
        ) from None
    return await _token(credential, client_id, resource)


async def federated_token(
    *,
    tenant_id: str,
    client_id: str,
    assertion: str,
    resource: str,
    authority: str,
    options: Mapping[str, Any] | None = None,
) -> AccessToken:
    """Exchange a service-account token (``assertion``) for an Azure AD token of ``client_id``.

    Raises:
        podidentity.errors.AzureError: a subclass saying what Azure AD answered.
    """
    credential = ClientAssertionCredential(
        tenant_id, client_id, lambda: assertion, authority=_authority(authority), **_kwargs(options)
    )
    return await _token(credential, client_id, resource)


def _kwargs(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"retry_total": 0, **(options or {})}


async def _token(credential: AsyncTokenCredential, client_id: str, resource: str) -> AccessToken:
    try:
        async with credential:
            info: AccessTokenInfo = await credential.get_token_info(scope_for(resource))  # type: ignore[attr-defined]
    except SdkAzureError as err:
        raise _error(err, client_id) from None
    return AccessToken(
        token=info.token, expires_on=int(info.expires_on), resource=resource, client_id=client_id
    )


def _error(err: SdkAzureError, client_id: str) -> AzureError:
    # Only the class and Azure AD's codes reach the message: the SDK's text can quote request
    # bodies in some versions, and those carry secrets and assertions.
    response = getattr(err, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    code = _aad_code(str(err.message if hasattr(err, "message") else ""))
    what = f"Azure AD refused a token for client {client_id}"
    if isinstance(err, ServiceRequestError) or status >= 500:
        return AzureUnavailableError(
            f"Azure AD did not answer for client {client_id} ({type(err).__name__}, {status})",
            status_code=status,
        )
    if status == 429:
        headers = getattr(response, "headers", {}) or {}
        retry_after = _seconds(headers.get("Retry-After"))
        return AzureThrottledError(
            f"Azure AD throttled client {client_id}",
            retry_after=retry_after,
            status_code=status,
            code=code,
        )
    if isinstance(err, ClientAuthenticationError):
        return AzureAuthenticationError(
            f"{what}: {code or 'authentication failed'}", status_code=status, code=code
        )
    return AzureError(f"{what}: {type(err).__name__}", status_code=status, code=code)


def _aad_code(message: str) -> str:
    for word in message.replace(":", " ").split():
        if word.startswith("AADSTS") and word[6:].isdigit():
            return word
    return ""


def _seconds(value: Any, default: float = 1.0) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default
