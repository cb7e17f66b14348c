"""Key Vault's JSON shapes: bundles, list items, deleted bundles, and paging.

Field names and formats follow the REST API the SDKs deserialize: camelCase (``contentType``,
``recoveryLevel``, ``nextLink``), times as integer epoch seconds, ``cer`` as standard base64 of
the DER certificate, ``x5t`` and JWK numbers as base64url. A list item never carries a secret
value, but does carry ``attributes.updated``, so a poller can tell what changed without
downloading values.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from podidentity.testing._jwt import b64url_decode, b64url_encode
from podidentity.testing.azure._keyvault._errors import KeyVaultError
from podidentity.testing.azure._keyvault._state import (
    RECOVERABLE_DAYS,
    CertificateVersion,
    DeletedSecret,
    KeyVersion,
    SecretVersion,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "certificate_bundle",
    "certificate_item",
    "deleted_secret_bundle",
    "deleted_secret_item",
    "key_bundle",
    "key_item",
    "page",
    "secret_bundle",
    "secret_item",
]

#: Key Vault returns at most 25 items per page, and 25 when ``maxresults`` is not given.
MAX_PAGE_SIZE = 25
RECOVERY_LEVEL = "Recoverable+Purgeable"
_T = TypeVar("_T")


def _attributes(
    *,
    enabled: bool,
    created: int,
    updated: int,
    not_before: int | None = None,
    expires: int | None = None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": enabled}
    if not_before is not None:
        attributes["nbf"] = not_before
    if expires is not None:
        attributes["exp"] = expires
    attributes.update(
        created=created,
        updated=updated,
        recoveryLevel=RECOVERY_LEVEL,
        recoverableDays=RECOVERABLE_DAYS,
    )
    return attributes


def _secret_common(secret: SecretVersion) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if secret.content_type is not None:
        body["contentType"] = secret.content_type
    body["attributes"] = _attributes(
        enabled=secret.enabled,
        created=secret.created,
        updated=secret.updated,
        not_before=secret.not_before,
        expires=secret.expires,
    )
    if secret.tags is not None:
        body["tags"] = dict(secret.tags)
    if secret.managed:
        body["managed"] = True
    return body


def secret_bundle(base_url: str, secret: SecretVersion) -> dict[str, Any]:
    """A ``SecretBundle``: the value, the versioned id, attributes, content type, tags."""
    body: dict[str, Any] = {
        "value": secret.value,
        "id": f"{base_url}/secrets/{secret.name}/{secret.version}",
        **_secret_common(secret),
    }
    if secret.managed:
        # A certificate's backing secret points at the key that shares its name and version.
        body["kid"] = f"{base_url}/keys/{secret.name}/{secret.version}"
    return body


def secret_item(base_url: str, secret: SecretVersion, *, versioned: bool) -> dict[str, Any]:
    """A ``SecretItem`` (no value); ``versioned`` for the versions list, else the bare name."""
    ident = f"{base_url}/secrets/{secret.name}"
    return {"id": f"{ident}/{secret.version}" if versioned else ident, **_secret_common(secret)}


def _deleted(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    return {
        "recoveryId": f"{base_url}/deletedsecrets/{deleted.latest.name}",
        "deletedDate": deleted.deleted_date,
        "scheduledPurgeDate": deleted.scheduled_purge_date,
    }


def deleted_secret_bundle(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    """A ``DeletedSecretBundle``: the latest version plus recovery id and dates."""
    return {**secret_bundle(base_url, deleted.latest), **_deleted(base_url, deleted)}


def deleted_secret_item(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    """A ``DeletedSecretItem`` (no value)."""
    return {
        **secret_item(base_url, deleted.latest, versioned=False),
        **_deleted(base_url, deleted),
    }


def _jwk_int(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def key_bundle(base_url: str, key: KeyVersion) -> dict[str, Any]:
    """A ``KeyBundle``: the public JWK (never the private half) and attributes."""
    numbers = key.private_key.public_key().public_numbers()
    body: dict[str, Any] = {
        "key": {
            "kid": f"{base_url}/keys/{key.name}/{key.version}",
            "kty": "RSA",
            "key_ops": list(key.key_ops),
            "n": _jwk_int(numbers.n),
            "e": _jwk_int(numbers.e),
        },
        "attributes": {
            **_attributes(enabled=key.enabled, created=key.created, updated=key.updated),
            "exportable": False,
        },
    }
    if key.tags is not None:
        body["tags"] = dict(key.tags)
    if key.managed:
        body["managed"] = True
    return body


def key_item(base_url: str, key: KeyVersion, *, versioned: bool) -> dict[str, Any]:
    """A ``KeyItem``."""
    kid = f"{base_url}/keys/{key.name}"
    item: dict[str, Any] = {
        "kid": f"{kid}/{key.version}" if versioned else kid,
        "attributes": _attributes(enabled=key.enabled, created=key.created, updated=key.updated),
    }
    if key.tags is not None:
        item["tags"] = dict(key.tags)
    if key.managed:
        item["managed"] = True
    return item


def _thumbprint(cert: CertificateVersion) -> str:
    return b64url_encode(bytes.fromhex(cert.certificate.thumbprint_sha1))


def _certificate_attributes(cert: CertificateVersion) -> dict[str, Any]:
    x509 = cert.certificate.certificate
    return _attributes(
        enabled=cert.enabled,
        created=cert.created,
        updated=cert.updated,
        not_before=int(x509.not_valid_before_utc.timestamp()),
        expires=int(x509.not_valid_after_utc.timestamp()),
    )


def certificate_bundle(base_url: str, cert: CertificateVersion) -> dict[str, Any]:
    """A ``CertificateBundle``: public ``cer``, ``kid``/``sid`` of its key and secret, policy."""
    x509 = cert.certificate.certificate
    body: dict[str, Any] = {
        "id": f"{base_url}/certificates/{cert.name}/{cert.version}",
        "kid": f"{base_url}/keys/{cert.name}/{cert.version}",
        "sid": f"{base_url}/secrets/{cert.name}/{cert.version}",
        "x5t": _thumbprint(cert),
        "cer": base64.b64encode(cert.certificate.cert_der).decode("ascii"),
        "attributes": _certificate_attributes(cert),
        "policy": {
            "id": f"{base_url}/certificates/{cert.name}/policy",
            "key_props": {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False},
            "secret_props": {"contentType": cert.content_type},
            "x509_props": {
                "subject": x509.subject.rfc4514_string(),
                "ekus": ["1.3.6.1.5.5.7.3.2"],
                "key_usage": ["digitalSignature", "keyEncipherment"],
                "validity_months": 1,
                "basic_constraints": {"ca": False},
            },
            "lifetime_actions": [
                {"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "EmailContacts"}}
            ],
            # Issued by the emulator's CA, not self-signed: an "Unknown" (external) issuer.
            "issuer": {"name": "Unknown"},
            "attributes": {"enabled": True, "created": cert.created, "updated": cert.updated},
        },
    }
    if cert.tags is not None:
        body["tags"] = dict(cert.tags)
    return body


def certificate_item(base_url: str, cert: CertificateVersion, *, versioned: bool) -> dict[str, Any]:
    """A ``CertificateItem``."""
    ident = f"{base_url}/certificates/{cert.name}"
    item: dict[str, Any] = {
        "id": f"{ident}/{cert.version}" if versioned else ident,
        "x5t": _thumbprint(cert),
        "attributes": _certificate_attributes(cert),
    }
    if cert.tags is not None:
        item["tags"] = dict(cert.tags)
    return item


def _encode_skiptoken(marker: str) -> str:
    return b64url_encode(json.dumps({"NextMarker": marker}, separators=(",", ":")).encode())


def _decode_skiptoken(token: str) -> str:
    try:
        marker = json.loads(b64url_decode(token))["NextMarker"]
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise KeyVaultError(400, "BadParameter", "The $skiptoken is not valid.") from err
    if not isinstance(marker, str):
        raise KeyVaultError(400, "BadParameter", "The $skiptoken is not valid.")
    return marker


def _page_size(maxresults: str | None) -> int:
    if maxresults is None:
        return MAX_PAGE_SIZE
    if not maxresults.isdigit() or not 1 <= int(maxresults) <= MAX_PAGE_SIZE:
        raise KeyVaultError(
            400,
            "BadParameter",
            f"The value of 'maxresults' must be between 1 and {MAX_PAGE_SIZE}, got {maxresults}.",
        )
    return int(maxresults)


def page(
    entries: Sequence[tuple[str, _T]],
    render: Callable[[_T], dict[str, Any]],
    *,
    collection_url: str,
    api_version: str,
    maxresults: str | None,
    skiptoken: str | None,
    short: bool = False,
) -> dict[str, Any]:
    """One page of a list: ``{"value": [...], "nextLink": ... or null}``.

    With ``short``, pages are as a real vault often serves them: the first one empty with a
    ``nextLink``, the others at most half of ``maxresults``, so a client that stops at an empty
    or short page misses objects.

    ``entries`` are ``(sort key, object)`` pairs. The skip token remembers the last key served,
    so objects created or deleted between pages neither repeat nor shift the rest. Like the
    service, the next link names the default port (``:443``) and repeats ``maxresults``.
    """
    size = _page_size(maxresults)
    ordered = sorted(entries, key=lambda entry: entry[0])
    if skiptoken:
        marker = _decode_skiptoken(skiptoken)
        ordered = [entry for entry in ordered if entry[0] > marker]
    if short and ordered and not skiptoken:
        # The service's first page is often empty, with a link to the rest.
        chunk, rest, marker = [], ordered, ""
    else:
        if short:
            size = max(1, size // 2)
        chunk, rest = ordered[:size], ordered[size:]
        marker = chunk[-1][0] if chunk else ""
    next_link = None
    if rest:
        scheme, _, remainder = collection_url.partition("://")
        host, _, path = remainder.partition("/")
        next_link = (
            f"{scheme}://{host}:443/{path}?api-version={quote(api_version)}"
            f"&$skiptoken={_encode_skiptoken(marker)}"
            + (f"&maxresults={_page_size(maxresults)}" if maxresults is not None else "")
        )
    return {"value": [render(obj) for _, obj in chunk], "nextLink": next_link}
