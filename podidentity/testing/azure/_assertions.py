"""Client assertions: the JWTs applications sign with a certificate instead of sending a secret.

Azure AD finds the registered certificate by the thumbprint in the header (``x5t``: SHA-1,
``x5t#S256``: SHA-256, both base64url of the raw digest) and checks the signature with its public
key: RS256 (PKCS#1 v1.5) or PS256 (PSS), which MSAL and azure-identity use today. The signing
input is the token's first two segments exactly as sent, because azure-identity's aio client
keeps base64 padding there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from podidentity.testing._jwt import b64url_decode
from podidentity.testing._pki import IssuedCertificate

__all__ = ["InvalidAssertion", "ParsedAssertion", "find_certificate", "parse", "verify_signature"]


class InvalidAssertion(ValueError):
    """An assertion that cannot be parsed or verified; ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen(repr=False)
class ParsedAssertion:
    """A JWT split into its parts, not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def __repr__(self) -> str:
        return f"ParsedAssertion(alg={self.header.get('alg')!r}, iss={self.claims.get('iss')!r})"

    @property
    def audiences(self) -> list[str]:
        """The ``aud`` claim as a list."""
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return [aud]
        return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def parse(token: str) -> ParsedAssertion:
    """Split and decode a compact JWS without verifying anything."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidAssertion("malformed", "a JWT has three dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as err:
        raise InvalidAssertion("malformed", "the JWT is not base64url JSON") from err
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidAssertion("malformed", "the JWT header and payload must be objects")
    return ParsedAssertion(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def thumbprint_hex(assertion: ParsedAssertion) -> str:
    """The thumbprint the client named, upper-case hex (for error messages)."""
    for name in ("x5t#S256", "x5t"):
        value = assertion.header.get(name)
        if isinstance(value, str):
            try:
                return b64url_decode(value).hex().upper()
            except ValueError:
                return ""
    return ""


def find_certificate(
    assertion: ParsedAssertion, certificates: Sequence[IssuedCertificate]
) -> IssuedCertificate | None:
    """The registered certificate whose thumbprint the assertion's header names."""
    wanted = thumbprint_hex(assertion)
    if not wanted:
        return None
    for cert in certificates:
        if wanted in (cert.thumbprint_sha1, cert.thumbprint_sha256):
            return cert
    return None


def verify_signature(assertion: ParsedAssertion, certificate: IssuedCertificate) -> None:
    """Check the signature with the certificate's public key (RS256 or PS256)."""
    key = certificate.certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidAssertion("signature", "certificate credentials must have RSA keys")
    alg = assertion.header.get("alg")
    scheme: padding.AsymmetricPadding
    if alg == "RS256":
        scheme = padding.PKCS1v15()
    elif alg == "PS256":
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        raise InvalidAssertion("algorithm", f"unsupported assertion algorithm {alg!r}")
    try:
        key.verify(assertion.signature, assertion.signing_input, scheme, hashes.SHA256())
    except InvalidSignature as err:
        raise InvalidAssertion(
            "signature", "The provided signature value did not match the expected signature value."
        ) from err
