"""Pure conversions from what Key Vault returns to the bytes delivered: no I/O.

Every error here is a :class:`~podidentity.errors.ValidationError` naming the object and what
is wrong with its content, never the content itself (parsers' messages that quote their input,
such as YAML's, are replaced by a position).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from podidentity.errors import ValidationError
from podidentity.keyvault._spec import VaultObject, check_output_name

__all__ = [
    "PEM_CONTENT_TYPE",
    "PKCS12_CONTENT_TYPE",
    "certificate_outputs",
    "decode_secret",
    "order_chain",
    "public_key_pem",
    "split_values",
]

PKCS12_CONTENT_TYPE = "application/x-pkcs12"
PEM_CONTENT_TYPE = "application/x-pem-file"


def decode_secret(obj: VaultObject, value: str) -> bytes:
    """The bytes a secret's value stands for, by the object's ``encoding``."""
    if obj.encoding == "utf-8":
        return value.encode("utf-8")
    try:
        if obj.encoding == "base64":
            return base64.b64decode(value.strip(), validate=True)
        return bytes.fromhex(value.strip())
    except (binascii.Error, ValueError):
        raise ValidationError(
            "encoding", f"the secret's value is not valid {obj.encoding}", obj=obj.label
        ) from None


def split_values(obj: VaultObject, value: str) -> dict[str, bytes]:
    """A multi-value secret's entries: ``{key: value}`` from a JSON or YAML mapping.

    Values may be strings, numbers or booleans (numbers and booleans as their JSON text).
    """
    document: Any
    if obj.split == "json":
        try:
            document = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValidationError(
                "split",
                f"the secret is not valid JSON (line {err.lineno}, column {err.colno})",
                obj=obj.label,
            ) from None
    else:
        try:
            document = yaml.safe_load(value)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ValidationError(
                "split", f"the secret is not valid YAML{at}", obj=obj.label
            ) from None
    if not isinstance(document, Mapping) or not document:
        raise ValidationError(
            "split", f"the secret must be a non-empty {obj.split} mapping", obj=obj.label
        )
    values: dict[str, bytes] = {}
    for key, item in document.items():
        if not isinstance(key, str):
            raise ValidationError("split", "every key must be a string", obj=obj.label)
        check_output_name(key, obj=obj.label, path=f"split[{key!r}]")
        if isinstance(item, str):
            values[key] = item.encode("utf-8")
        elif isinstance(item, (bool, int, float)):
            values[key] = json.dumps(item).encode("ascii")
        else:
            raise ValidationError(
                f"split[{key!r}]",
                "values must be strings, numbers or booleans, not nested structures",
                obj=obj.label,
            )
    return values


# -- certificates ------------------------------------------------------------------------------

PrivateKey = Any  # cryptography's private key union; each loader returns one of its members


def _load_certificate(
    obj: VaultObject, value: str, content_type: str | None
) -> tuple[PrivateKey, list[x509.Certificate]]:
    if content_type == PKCS12_CONTENT_TYPE:
        try:
            blob = base64.b64decode(value, validate=True)
            key, cert, extra = pkcs12.load_key_and_certificates(blob, None)
        except (binascii.Error, ValueError):
            raise ValidationError(
                "type",
                "the certificate's backing secret is not a valid PFX (PKCS#12) without a password",
                obj=obj.label,
            ) from None
        certs = ([cert] if cert is not None else []) + list(extra)
    elif content_type == PEM_CONTENT_TYPE:
        data = value.encode("ascii", "replace")
        try:
            certs = x509.load_pem_x509_certificates(data)
            key = serialization.load_pem_private_key(_pem_key_block(data), None)
        except ValueError:
            raise ValidationError(
                "type",
                "the certificate's backing secret is not a valid PEM key and certificate",
                obj=obj.label,
            ) from None
    else:
        raise ValidationError(
            "type",
            f"{obj.name!r} is not a certificate's backing secret (content type "
            f"{content_type!r}, expected {PKCS12_CONTENT_TYPE} or {PEM_CONTENT_TYPE}); "
            "use type: secret for plain secrets",
            obj=obj.label,
        )
    if key is None or not certs:
        raise ValidationError(
            "type",
            "the certificate's backing secret has no private key or no certificate",
            obj=obj.label,
        )
    return key, certs


def _pem_key_block(data: bytes) -> bytes:
    start = data.find(b"-----BEGIN ")
    while start != -1:
        header_end = data.find(b"-----", start + 11)
        label = data[start + 11 : header_end]
        end_marker = b"-----END " + label + b"-----"
        end = data.find(end_marker, header_end)
        if end == -1:
            break
        if label.endswith(b"PRIVATE KEY"):
            return data[start : end + len(end_marker)]
        start = data.find(b"-----BEGIN ", end)
    raise ValueError("no private key block")


def order_chain(key: PrivateKey, certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Order certificates server first, then each issuer in turn up to the root.

    The server certificate is the one whose public key matches ``key``; certificates that do
    not belong to its chain follow at the end in their original order.
    """
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    remaining = list(certs)
    leaf = next(
        (
            c
            for c in remaining
            if c.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public
        ),
        remaining[0],
    )
    chain = [leaf]
    remaining.remove(leaf)
    current = leaf
    while current.issuer != current.subject:
        issuer = next((c for c in remaining if c.subject == current.issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        remaining.remove(issuer)
        current = issuer
    return chain + remaining


def certificate_outputs(obj: VaultObject, value: str, content_type: str | None) -> dict[str, bytes]:
    """The outputs of a certificate object from its backing secret."""
    key, certs = _load_certificate(obj, value, content_type)
    chain = order_chain(key, certs)
    if obj.format == "pfx":
        blob = pkcs12.serialize_key_and_certificates(
            obj.name.encode("utf-8"),
            key,
            chain[0],
            chain[1:] or None,
            serialization.NoEncryption(),
        )
        return {obj.output_name: blob}
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    if obj.key_alias is not None:
        return {obj.output_name: chain_pem, obj.key_alias: key_pem}
    return {obj.output_name: key_pem + chain_pem}


# -- keys --------------------------------------------------------------------------------------

_CURVES: Mapping[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}


def public_key_pem(obj: VaultObject, jwk: Mapping[str, Any]) -> bytes:
    """The public key of a Key Vault JSON web key, as a PEM ``PUBLIC KEY``.

    ``jwk`` holds ``kty`` and, as bytes, ``n`` and ``e`` (RSA) or ``crv``, ``x`` and ``y`` (EC),
    as the SDK's ``JsonWebKey`` does.
    """
    kty = str(jwk.get("kty") or "")
    try:
        if kty.startswith("RSA"):
            public: Any = rsa.RSAPublicNumbers(
                int.from_bytes(jwk["e"], "big"), int.from_bytes(jwk["n"], "big")
            ).public_key()
        elif kty.startswith("EC"):
            curve = _CURVES[str(jwk["crv"])]
            public = ec.EllipticCurvePublicNumbers(
                int.from_bytes(jwk["x"], "big"), int.from_bytes(jwk["y"], "big"), curve
            ).public_key()
        else:
            raise KeyError(kty)
    except (KeyError, TypeError, ValueError):
        raise ValidationError(
            "type",
            f"cannot deliver a key of type {kty or 'unknown'!r} (RSA and EC are supported)",
            obj=obj.label,
        ) from None
    return bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
