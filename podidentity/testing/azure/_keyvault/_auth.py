"""Who may call a vault: the bearer challenge, token checks and access-policy permissions.

Key Vault authenticates every request with an Azure AD access token. A request without one gets
``401`` and a ``WWW-Authenticate`` challenge naming the tenant's authority and the resource to
ask a token for; the SDKs send their first request bare on purpose to read it. Every later
``401`` carries the same challenge. A token must be for the vault resource
(``https://vault.azure.net`` or its app id), unexpired, and from the vault's tenant; then the
caller's object id (``oid``) must hold the permission in the vault's access policies
(``secrets get``, ``certificates list``, ...), else ``403 Forbidden``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from podidentity.testing._jwt import InvalidToken, unverified_claims
from podidentity.testing.azure._keyvault._errors import FWLINK_ACCESS, KeyVaultError

__all__ = [
    "KEY_VAULT_APP_ID",
    "PERMISSIONS",
    "AccessPolicy",
    "Caller",
    "TokenVerifier",
    "authenticate",
    "authorize",
    "challenge",
    "normalize_permissions",
]

#: Checks a token for an audience and returns its claims; raises ``InvalidToken``.
TokenVerifier = Callable[[str, str], Mapping[str, Any]]

#: The application id of Azure Key Vault, accepted as a token audience like the resource URL.
KEY_VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"

# What every object kind's access policy can grant; certificates and keys add their own.
_COMMON_PERMISSIONS = ("get", "list", "delete", "recover", "backup", "restore", "purge")
_MANAGED_OBJECT_PERMISSIONS = (*_COMMON_PERMISSIONS, "update", "create", "import")

#: Access-policy permissions by object kind, as ARM spells them (matched case-insensitively).
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "secrets": frozenset([*_COMMON_PERMISSIONS, "set"]),
    "certificates": frozenset(
        [
            *_MANAGED_OBJECT_PERMISSIONS,
            "managecontacts",
            "manageissuers",
            "getissuers",
            "listissuers",
            "setissuers",
            "deleteissuers",
        ]
    ),
    "keys": frozenset(
        [
            *_MANAGED_OBJECT_PERMISSIONS,
            "decrypt",
            "encrypt",
            "unwrapkey",
            "wrapkey",
            "verify",
            "sign",
            "release",
            "rotate",
            "getrotationpolicy",
            "setrotationpolicy",
        ]
    ),
}


def normalize_permissions(kind: str, permissions: Iterable[str]) -> frozenset[str]:
    """Lower-case permissions, expanding ``all``; a typo raises ``ValueError`` naming it."""
    known = PERMISSIONS[kind]
    wanted = {p.lower() for p in permissions}
    if "all" in wanted:
        return known
    unknown = wanted - known
    if unknown:
        raise ValueError(
            f"unknown {kind} permission(s) {sorted(unknown)}; known: {sorted(known)} or 'all'"
        )
    return frozenset(wanted)


@attrs.frozen
class AccessPolicy:
    """One access-policy entry of a vault: an object id and what it may do."""

    object_id: str
    secrets: frozenset[str] = frozenset()
    certificates: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    def allows(self, kind: str, permission: str) -> bool:
        """Whether the entry grants ``permission`` on objects of ``kind``."""
        granted: frozenset[str] = getattr(self, kind)
        return permission in granted


@attrs.frozen
class Caller:
    """The authenticated principal of a request, from its token's claims."""

    object_id: str
    app_id: str
    tenant_id: str
    issuer: str


def challenge(authority: str, tenant_id: str, resource: str) -> str:
    """The ``WWW-Authenticate`` value Key Vault sends with every ``401``."""
    return f'Bearer authorization="{authority.rstrip("/")}/{tenant_id}", resource="{resource}"'


def _unauthorized(message: str, www_authenticate: str) -> KeyVaultError:
    return KeyVaultError(
        401, "Unauthorized", message, headers=[("WWW-Authenticate", www_authenticate)]
    )


def _token_message(err: InvalidToken, token: str, resource: str) -> str:
    if err.reason == "audience":
        try:
            found = unverified_claims(token).get("aud")
        except InvalidToken:
            found = None
        return (
            f"AKV10022: Invalid audience. Expected {resource} or {KEY_VAULT_APP_ID}, "
            f"found: {found}."
        )
    if err.reason == "expired":
        return "[TokenExpired] Error validating token: 'S2S12086'."
    if err.reason == "not_yet_valid":
        return "Token not yet valid."
    if err.reason == "unknown_key":
        return "AKV10046: Unable to resolve the key used for signature validation."
    # Key Vault's exact wording for the remaining cases is not documented; say what failed.
    return f"Error validating token: {err}."


def _verify(token: str, verify_token: TokenVerifier, resource: str) -> Mapping[str, Any]:
    # Key Vault takes its resource URL or its application id as the audience.
    try:
        return verify_token(token, resource)
    except InvalidToken as err:
        if err.reason != "audience":
            raise
    return verify_token(token, KEY_VAULT_APP_ID)


def authenticate(
    authorization: str | None,
    *,
    tenant_id: str,
    verify_token: TokenVerifier,
    resource: str,
    authority: str,
) -> Caller:
    """Check the ``Authorization`` header of a request to a vault of ``tenant_id``.

    Raises:
        KeyVaultError: ``401`` with the challenge when the token is missing or not acceptable.
    """
    www_authenticate = challenge(authority, tenant_id, resource)
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("AKV10000: Request is missing a Bearer or PoP token.", www_authenticate)
    try:
        claims = _verify(token, verify_token, resource)
    except InvalidToken as err:
        raise _unauthorized(_token_message(err, token, resource), www_authenticate) from err
    token_tenant = str(claims.get("tid", ""))
    issuer = str(claims.get("iss", f"https://sts.windows.net/{token_tenant}/"))
    if token_tenant.lower() != tenant_id.lower():
        raise _unauthorized(
            f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant_id}/, "
            f"found {issuer}.",
            www_authenticate,
        )
    object_id = str(claims.get("oid", ""))
    if not object_id:
        raise _unauthorized("Error validating token: the token has no oid claim.", www_authenticate)
    app_id = str(claims.get("appid") or claims.get("azp") or "")
    return Caller(object_id=object_id, app_id=app_id, tenant_id=token_tenant, issuer=issuer)


def authorize(
    policies: Mapping[str, AccessPolicy],
    caller: Caller,
    kind: str,
    permission: str,
    *,
    vault: str,
    location: str,
) -> None:
    """Require ``permission`` on ``kind`` for the caller in a vault's access policies.

    Raises:
        KeyVaultError: ``403 Forbidden`` (inner ``AccessDenied``) worded as the service does.
    """
    policy = policies.get(caller.object_id.lower())
    if policy is not None and policy.allows(kind, permission):
        return
    raise KeyVaultError(
        403,
        "Forbidden",
        f"The user, group or application 'appid={caller.app_id};oid={caller.object_id};"
        f"iss={caller.issuer}' does not have {kind} {permission} permission on key vault "
        f"'{vault};location={location}'. For help resolving this issue, please see "
        f"{FWLINK_ACCESS}",
        inner_code="AccessDenied",
    )
