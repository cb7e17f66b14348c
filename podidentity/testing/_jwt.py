"""RS256 JSON Web Tokens for the emulators: signing, JWKS, and verification.

The Kubernetes emulator signs service-account tokens and the Azure AD emulator signs access
tokens with a :class:`JwtSigner`; the other side verifies with :func:`verify` against the JWKS
the issuer publishes, exactly as the real services do. Only RS256 is accepted: ``alg: none`` and
HMAC tokens are refused, which is the point of verifying at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "DecodedJwt",
    "InvalidToken",
    "JwtSigner",
    "b64url_decode",
    "b64url_encode",
    "decode",
    "unverified_claims",
    "verify",
]

#: Seconds of clock skew tolerated on ``exp`` and ``nbf``, as Azure AD and kube-apiserver allow.
LEEWAY = 60.0


class InvalidToken(ValueError):
    """A token that is malformed, badly signed, expired, or meant for someone else.

    Attributes:
        reason: a short machine-readable reason (``malformed``, ``signature``, ``expired``,
            ``not_yet_valid``, ``audience``, ``issuer``, ``unknown_key``, ``algorithm``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ``ValueError`` on garbage."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ValueError("not base64url") from err


def _int_to_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64_to_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


class JwtSigner:
    """An RSA key pair that signs RS256 tokens and publishes itself as a JWKS."""

    def __init__(self, *, key_size: int = 2048) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        numbers = self._key.public_key().public_numbers()
        self._public_jwk = {"kty": "RSA", "n": _int_to_b64(numbers.n), "e": _int_to_b64(numbers.e)}
        # The key ID is the RFC 7638 thumbprint, so it is stable for the key and unique.
        canonical = json.dumps(
            {k: self._public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":")
        )
        self.kid = b64url_encode(hashlib.sha256(canonical.encode()).digest())

    def __repr__(self) -> str:
        return f"JwtSigner(kid={self.kid!r})"

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The verification key."""
        return self._key.public_key()

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK."""
        return {**self._public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document an issuer serves at its ``jwks_uri``."""
        return {"keys": [self.jwk()]}

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """Return a compact RS256 JWS of ``claims``."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid, **(headers or {})}
        signing_input = (
            b64url_encode(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
        )
        signature = self._key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + b64url_encode(signature)


@attrs.frozen(repr=False)
class DecodedJwt:
    """A compact JWS split into its parts, nothing verified yet.

    Attributes:
        header: the JOSE header.
        claims: the payload.
        signature: the raw signature bytes.
        signing_input: the first two segments exactly as sent, which is what was signed (some
            clients keep base64 padding there, so it is not re-encoded).
    """

    header: dict[str, Any]
    claims: dict[str, Any]
    signature: bytes
    signing_input: bytes

    def __repr__(self) -> str:
        # Claims can identify a caller; the parts that could be replayed stay out of reprs.
        return f"DecodedJwt(alg={self.header.get('alg')!r}, iss={self.claims.get('iss')!r})"

    @property
    def audiences(self) -> list[str]:
        """The ``aud`` claim as a list (a string or a list of strings on the wire)."""
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return [aud]
        return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def decode(token: str) -> DecodedJwt:
    """Split and decode a compact JWS without checking anything.

    Raises:
        InvalidToken: ``malformed``, when the token is not three base64url JSON-object parts.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed", "a JWT has three dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as err:
        raise InvalidToken("malformed", "the JWT is not valid base64url JSON") from err
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed", "the JWT header and payload must be JSON objects")
    return DecodedJwt(
        header=header,
        claims=claims,
        signature=signature,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
    )


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a token *without* checking anything: for routing and logs only."""
    return decode(token).claims


def _public_key_from_jwk(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    try:
        return rsa.RSAPublicNumbers(_b64_to_int(jwk["e"]), _b64_to_int(jwk["n"])).public_key()
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidToken("unknown_key", "the signing key in the JWKS is not an RSA key") from err


def verify(
    token: str,
    jwks: Mapping[str, Any],
    *,
    audiences: Iterable[str] | None = None,
    issuer: str | None = None,
    now: float | None = None,
    leeway: float = LEEWAY,
) -> dict[str, Any]:
    """Check an RS256 token's signature, lifetime, audience and issuer; return its claims.

    Args:
        token: the compact JWS.
        jwks: the issuer's key set (``{"keys": [...]}``).
        audiences: accepted audiences; the token's ``aud`` (string or list) must contain one.
            ``None`` skips the check.
        issuer: the required ``iss``; ``None`` skips the check.
        now: the current time in epoch seconds (injectable for tests).
        leeway: clock skew allowed on ``exp`` and ``nbf``.

    Raises:
        InvalidToken: with a ``reason`` saying which check failed.
    """
    decoded = decode(token)
    header, claims = decoded.header, decoded.claims
    signature, signing_input = decoded.signature, decoded.signing_input
    if header.get("alg") != "RS256":
        raise InvalidToken(
            "algorithm", f"only RS256 tokens are accepted, got {header.get('alg')!r}"
        )
    keys = [k for k in jwks.get("keys", []) if isinstance(k, Mapping)]
    kid = header.get("kid")
    candidates = [k for k in keys if kid is None or k.get("kid") == kid]
    if not candidates:
        raise InvalidToken("unknown_key", f"no key with kid {kid!r} in the issuer's JWKS")
    for jwk in candidates:
        try:
            _public_key_from_jwk(jwk).verify(
                signature, signing_input, padding.PKCS1v15(), hashes.SHA256()
            )
            break
        except InvalidSignature:
            continue
    else:
        raise InvalidToken("signature", "the token's signature does not verify")
    current = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise InvalidToken("malformed", "the token has no numeric exp claim")
    if current > exp + leeway:
        raise InvalidToken("expired", "the token has expired")
    if isinstance(nbf, (int, float)) and current + leeway < nbf:
        raise InvalidToken("not_yet_valid", "the token is not valid yet")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidToken("issuer", f"the token's issuer {claims.get('iss')!r} is not {issuer!r}")
    if audiences is not None:
        aud = claims.get("aud")
        token_auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        wanted = set(audiences)
        if not token_auds & wanted:
            raise InvalidToken(
                "audience",
                f"the token's audience {sorted(token_auds)} is not one of {sorted(wanted)}",
            )
    return claims
