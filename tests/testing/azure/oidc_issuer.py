"""A stand-in for the Kubernetes service-account issuer, for federation tests."""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from podidentity.testing._jwt import JwtSigner


@attrs.frozen
class OidcIssuer:
    """A stand-in for the Kubernetes service-account issuer: discovery, JWKS, token minting."""

    url: str
    signer: JwtSigner

    def token(
        self,
        subject: str = "system:serviceaccount:default:app",
        *,
        audience: str = "api://AzureADTokenExchange",
        lifetime: int = 3600,
        now: float | None = None,
        issuer: str | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": issuer or self.url,
            "sub": subject,
            "aud": [audience],
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
        }
        return self.signer.sign(claims)


def issuer_app(signer: JwtSigner, url_box: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/.well-known/openid-configuration":
            payload: Any = {
                "issuer": url_box[0],
                "jwks_uri": url_box[0] + "/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
            status = 200
        elif scope["path"] == "/openid/v1/jwks":
            payload, status = signer.jwks(), 200
        else:
            payload, status = {"error": "not found"}, 404
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
