"""Access tokens of the emulated tenant: issued by Azure AD and IMDS, checked by ARM and Key Vault.

All tokens are RS256 JWTs signed by one :class:`~podidentity.testing._jwt.JwtSigner`, carrying
the claims real Azure AD v1 access tokens carry (``aud``, ``iss``, ``tid``, ``oid``,
``appid``/``azp``, ``idtyp``, ``iat``/``nbf``/``exp``), so every emulated service can tell who
is calling and tests can assert on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from podidentity.testing._clock import Clock
from podidentity.testing._jwt import InvalidToken, JwtSigner, verify
from podidentity.testing.azure._world import Principal, resource_key

__all__ = ["IssuedToken", "TokenIssuer", "resource_from_scope"]

#: Azure AD access tokens live 60-90 minutes; the emulator uses the short end by default.
AAD_TOKEN_LIFETIME = 3599
#: IMDS hands out tokens that the platform caches for about 24 hours.
IMDS_TOKEN_LIFETIME = 86399


def resource_from_scope(scope: str) -> str:
    """``https://vault.azure.net/.default`` -> ``https://vault.azure.net`` (as Azure AD does).

    Azure AD drops ``/.default`` with its slash: the token's ``aud`` has no trailing slash
    (``https://management.azure.com//.default`` keeps one, as the Azure CLI relies on).
    """
    if scope.endswith("/.default"):
        return scope[: -len("/.default")]
    return scope[: -len(".default")] if scope.endswith(".default") else scope


@attrs.frozen(repr=False)
class IssuedToken:
    """An access token with its lifetime (``repr`` hides the token itself)."""

    access_token: str
    issued_at: int
    not_before: int
    expires_on: int
    audience: str
    principal: Principal

    def __repr__(self) -> str:
        return (
            f"IssuedToken(access_token='****', audience={self.audience!r},"
            f" client_id={self.principal.client_id!r}, expires_on={self.expires_on})"
        )

    @property
    def expires_in(self) -> int:
        """Seconds of validity from issue."""
        return self.expires_on - self.issued_at


class TokenIssuer:
    """Signs and verifies the tenant's access tokens, on the world's clock.

    Args:
        tenant_id: the ``tid`` claim and part of the issuer.
        clock: the world's time.
        signer: the signing key (generated when omitted).
    """

    def __init__(self, tenant_id: str, clock: Clock, signer: JwtSigner | None = None) -> None:
        self.tenant_id = tenant_id
        self.clock = clock
        self.signer = signer or JwtSigner()

    def __repr__(self) -> str:
        return f"TokenIssuer(tenant_id={self.tenant_id!r}, kid={self.signer.kid!r})"

    @property
    def issuer(self) -> str:
        """The ``iss`` of v1 access tokens (what ARM and Key Vault receive)."""
        return f"https://sts.windows.net/{self.tenant_id}/"

    def issue(
        self,
        principal: Principal,
        audience: str,
        *,
        lifetime: int = AAD_TOKEN_LIFETIME,
        extra_claims: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign an access token for ``principal`` to call ``audience``."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": "emulated",
            "appid": principal.client_id,
            "azp": principal.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": self.tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "1.0",
        }
        if principal.resource_id:
            claims["xms_mirid"] = principal.resource_id
        claims.update(extra_claims or {})
        return IssuedToken(
            access_token=self.signer.sign(claims),
            issued_at=now,
            not_before=now,
            expires_on=now + lifetime,
            audience=audience,
            principal=principal,
        )

    def verify(self, token: str, audience: str | Iterable[str]) -> dict[str, Any]:
        """Check a token of this tenant for ``audience`` (trailing slash and case ignored).

        Raises:
            InvalidToken: with ``reason`` ``expired``, ``audience``, ``issuer``, ``signature``,
                ``malformed``, ...
        """
        wanted = [audience] if isinstance(audience, str) else list(audience)
        claims = verify(
            token, self.signer.jwks(), audiences=None, issuer=self.issuer, now=self.clock()
        )
        aud = claims.get("aud")
        if not isinstance(aud, str) or resource_key(aud) not in {resource_key(a) for a in wanted}:
            raise InvalidToken(
                "audience", f"the token's audience {aud!r} is not one of {sorted(wanted)}"
            )
        if claims.get("tid") != self.tenant_id:
            raise InvalidToken("issuer", "the token was issued by another tenant")
        return claims
