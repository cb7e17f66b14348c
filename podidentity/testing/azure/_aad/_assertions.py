"""Client assertions: the JWTs applications sign with a certificate instead of sending a secret.

Azure AD finds the registered certificate by the thumbprint in the header (``x5t``: SHA-1,
``x5t#S256``: SHA-256, both base64url of the raw digest) and checks the signature with its public
key: RS256 (PKCS#1 v1.5) or PS256 (PSS), which MSAL and azure-identity use today. The signing
input is the token's first two segments exactly as sent, because azure-identity's aio client
keeps base64 padding there.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from podidentity.testing._jwt import DecodedJwt, InvalidToken, b64url_decode, decode
from podidentity.testing._pki import IssuedCertificate

__all__ = [
    "InvalidAssertion",
    "ParsedAssertion",
    "find_certificate",
    "parse",
    "verify_signature",
]


class InvalidAssertion(ValueError):
    """An assertion that cannot be parsed or verified; ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: A client assertion split into its parts (header, claims, signature, signing input).
ParsedAssertion = DecodedJwt


def parse(token: str) -> ParsedAssertion:
    """Split and decode a compact JWS without verifying anything."""
    try:
        return decode(token)
    except InvalidToken as err:
        raise InvalidAssertion(err.reason, str(err)) from err


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
