"""The data-plane HTTP API of one emulated vault, as a raw ASGI app.

Each request goes through the steps the service takes, in its order: the rate limit (if one is
set), authentication (no token: ``401`` with the challenge, before anything else is looked at,
so the SDK's bodiless first request is answered correctly), the ``api-version`` check, the
route, the caller's access-policy permission for that operation, and finally the operation on
the vault's state. Faults and the request log are added around this app by ``with_faults``.

Supported operations (everything else answers ``501`` naming what is missing):

- secrets: get (latest / version), set, update properties, delete, list, list versions;
  deleted secrets: get, list, purge, recover;
- certificates: get (latest / version), list, list versions;
- keys: get (latest / version), list, list versions.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from podidentity.testing._http import (
    Request,
    error_boundary,
    read_request,
)
from podidentity.testing._ratelimit import SlidingWindow
from podidentity.testing.azure._http import (
    JSON_CONTENT_TYPE,
    ASGIApp,
    Receive,
    Scope,
    Send,
    send_body,
)
from podidentity.testing.azure._keyvault._auth import TokenVerifier, authenticate, authorize
from podidentity.testing.azure._keyvault._errors import KeyVaultError, throttled
from podidentity.testing.azure._keyvault._state import (
    SecretVersion,
    Vault,
    new_version,
    validate_object_name,
)
from podidentity.testing.azure._keyvault._wire import (
    certificate_bundle,
    certificate_item,
    deleted_secret_bundle,
    deleted_secret_item,
    key_bundle,
    key_item,
    page,
    secret_bundle,
    secret_item,
)

__all__ = ["API_VERSIONS", "MAX_SECRET_VALUE_BYTES", "VaultSettings", "vault_app"]

#: The api-versions the installed SDKs know (secrets/certificates 4.12 default to 2026-04-01,
#: keys 4.11 to 2025-07-01); ``-preview`` variants of them are accepted too.
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
_PREVIEW = re.compile(r"^(?P<base>[0-9.-]+?)-preview(\.\d+)?$")


#: Key Vault refuses secret values longer than this many bytes (UTF-8), "25 KB".
MAX_SECRET_VALUE_BYTES = 25 * 1024


@attrs.define
class VaultSettings:
    """What every vault of one service shares: token check, resource, authority, clock.

    Mutable, so a change made on the service (``short_pages``) reaches every vault's app.
    """

    verify_token: TokenVerifier
    resource: str
    authority: str
    clock: Callable[[], float]
    short_pages: bool = True


@attrs.frozen
class _Call:
    """One request to one vault: the request and what the vault's handlers look up with it."""

    vault: Vault
    request: Request
    parts: tuple[str, ...]
    now: int
    short_pages: bool = False

    @property
    def base_url(self) -> str:
        return self.vault.url

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; anything else is refused in Key Vault's shape."""
        try:
            document = self.request.json()
        except ValueError as err:
            raise KeyVaultError(400, "BadParameter", "The request body is not valid JSON.") from err
        if not isinstance(document, dict):
            raise KeyVaultError(400, "BadParameter", "The request body must be a JSON object.")
        return document

    @property
    def name_and_version(self) -> tuple[str, str | None]:
        """The object name and, for ``/<kind>/<name>/<version>``, the version."""
        return self.parts[1], (self.parts[2] if len(self.parts) > 2 else None)

    def listing(self, collection: str) -> dict[str, Any]:
        query = self.request.query
        return {
            "collection_url": f"{self.base_url}/{collection}",
            "api_version": query.get("api-version", ""),
            "maxresults": query.get("maxresults"),
            "skiptoken": query.get("$skiptoken"),
            "short": self.short_pages,
        }


_Result = tuple[int, Any]
_Handler = Callable[[_Call], _Result]
#: Renders one list entry: ``(vault_url, object, versioned=...) -> item``.
_Item = Callable[..., dict[str, Any]]


def _list_latest(store: str, item: _Item) -> _Handler:
    """``GET /<store>``: the latest version of every object of one kind, paged."""

    def handler(call: _Call) -> _Result:
        objects: Mapping[str, list[Any]] = getattr(call.vault, store)
        return 200, page(
            [(key, versions[-1]) for key, versions in objects.items()],
            lambda o: item(call.base_url, o, versioned=False),
            **call.listing(store),
        )

    return handler


def _list_versions(store: str, item: _Item) -> _Handler:
    """``GET /<store>/<name>/versions``: every version of one object, paged."""

    def handler(call: _Call) -> _Result:
        name = call.parts[1]
        objects: Mapping[str, list[Any]] = getattr(call.vault, store)
        return 200, page(
            [(o.version, o) for o in objects.get(name.lower(), [])],
            lambda o: item(call.base_url, o, versioned=True),
            **call.listing(f"{store}/{name}/versions"),
        )

    return handler


# -- secrets -------------------------------------------------------------------------------


def _readable(secret: SecretVersion) -> SecretVersion:
    if not secret.enabled:
        raise KeyVaultError(
            403,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            inner_code="SecretDisabled",
        )
    return secret


def _get_secret(call: _Call) -> _Result:
    name, version = call.name_and_version
    secret = _readable(call.vault.secret(name, version))
    return 200, secret_bundle(call.base_url, secret)


def _refuse_managed(call: _Call, operation: str) -> None:
    existing = call.vault.secrets.get(call.parts[1].lower())
    if existing and existing[-1].managed:
        # The backing secret of a certificate changes only with the certificate.
        raise KeyVaultError(
            403, "Forbidden", f"Operation {operation} is not allowed on a managed secret."
        )


def _epoch(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KeyVaultError(400, "BadParameter", f"attributes.{field} must be epoch seconds.")
    return int(value)


def _optional_str(document: Mapping[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is not None and not isinstance(value, str):
        raise KeyVaultError(400, "BadParameter", f"Property {field} must be a string.")
    return value


def _tags(document: Mapping[str, Any]) -> dict[str, str] | None:
    tags = document.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise KeyVaultError(400, "BadParameter", "Property tags must map strings to strings.")
    return {str(k): v for k, v in tags.items()}


def _set_secret(call: _Call) -> _Result:
    name = call.parts[1]
    validate_object_name(name)
    _refuse_managed(call, "set")
    document = call.json()
    value = document.get("value")
    if not isinstance(value, str):
        raise KeyVaultError(400, "BadParameter", "Property value is required and must be a string.")
    size = len(value.encode("utf-8"))
    if size > MAX_SECRET_VALUE_BYTES:
        # The size only: the value itself never reaches an error message or a log.
        raise KeyVaultError(
            400,
            "BadParameter",
            f"The secret value is {size} bytes; Key Vault accepts at most"
            f" {MAX_SECRET_VALUE_BYTES} bytes (25 KB).",
        )
    attributes = document.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise KeyVaultError(400, "BadParameter", "Property attributes must be an object.")
    enabled = attributes.get("enabled", True)
    secret = call.vault.add_secret(
        SecretVersion(
            name=name,
            version=new_version(),
            value=value,
            created=call.now,
            updated=call.now,
            content_type=_optional_str(document, "contentType"),
            tags=_tags(document),
            enabled=enabled is not False,
            not_before=_epoch(attributes.get("nbf"), "nbf"),
            expires=_epoch(attributes.get("exp"), "exp"),
        )
    )
    return 200, secret_bundle(call.base_url, secret)


def _update_secret(call: _Call) -> _Result:
    name, version = call.name_and_version
    secret = call.vault.secret(name, version)
    document = call.json()
    attributes = document.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise KeyVaultError(400, "BadParameter", "Property attributes must be an object.")
    if "contentType" in document:
        secret.content_type = _optional_str(document, "contentType")
    if "tags" in document:
        secret.tags = _tags(document)
    if "enabled" in attributes:
        secret.enabled = attributes["enabled"] is not False
    if "nbf" in attributes:
        secret.not_before = _epoch(attributes["nbf"], "nbf")
    if "exp" in attributes:
        secret.expires = _epoch(attributes["exp"], "exp")
    secret.updated = call.now
    # The update answer carries no value, like the service's.
    body = secret_bundle(call.base_url, secret)
    body.pop("value")
    return 200, body


def _delete_secret(call: _Call) -> _Result:
    _refuse_managed(call, "delete")
    deleted = call.vault.delete_secret(call.parts[1], call.now)
    return 200, deleted_secret_bundle(call.base_url, deleted)


def _get_deleted_secret(call: _Call) -> _Result:
    deleted = call.vault.deleted_secret(call.parts[1])
    return 200, deleted_secret_bundle(call.base_url, deleted)


def _list_deleted_secrets(call: _Call) -> _Result:
    return 200, page(
        list(call.vault.deleted_secrets.items()),
        lambda d: deleted_secret_item(call.base_url, d),
        **call.listing("deletedsecrets"),
    )


def _purge_deleted_secret(call: _Call) -> _Result:
    call.vault.purge_secret(call.parts[1])
    return 204, None


def _recover_deleted_secret(call: _Call) -> _Result:
    secret = call.vault.recover_secret(call.parts[1])
    return 200, secret_bundle(call.base_url, secret)


# -- certificates and keys ---------------------------------------------------------------


def _get_certificate(call: _Call) -> _Result:
    name, version = call.name_and_version
    return 200, certificate_bundle(call.base_url, call.vault.certificate(name, version))


def _get_key(call: _Call) -> _Result:
    name, version = call.name_and_version
    return 200, key_bundle(call.base_url, call.vault.key(name, version))


_list_secrets = _list_latest("secrets", secret_item)
_list_secret_versions = _list_versions("secrets", secret_item)
_list_certificates = _list_latest("certificates", certificate_item)
_list_certificate_versions = _list_versions("certificates", certificate_item)
_list_keys = _list_latest("keys", key_item)
_list_key_versions = _list_versions("keys", key_item)

# (method, path pattern, object kind, permission, handler); "*" is one path segment and
# literal segments come before "*" at the same position.
_ROUTES: tuple[tuple[str, tuple[str, ...], str, str, _Handler], ...] = (
    ("GET", ("secrets",), "secrets", "list", _list_secrets),
    ("GET", ("secrets", "*", "versions"), "secrets", "list", _list_secret_versions),
    ("GET", ("secrets", "*"), "secrets", "get", _get_secret),
    ("GET", ("secrets", "*", "*"), "secrets", "get", _get_secret),
    ("PUT", ("secrets", "*"), "secrets", "set", _set_secret),
    ("PATCH", ("secrets", "*"), "secrets", "set", _update_secret),
    ("PATCH", ("secrets", "*", "*"), "secrets", "set", _update_secret),
    ("DELETE", ("secrets", "*"), "secrets", "delete", _delete_secret),
    ("GET", ("deletedsecrets",), "secrets", "list", _list_deleted_secrets),
    ("GET", ("deletedsecrets", "*"), "secrets", "get", _get_deleted_secret),
    ("DELETE", ("deletedsecrets", "*"), "secrets", "purge", _purge_deleted_secret),
    ("POST", ("deletedsecrets", "*", "recover"), "secrets", "recover", _recover_deleted_secret),
    ("GET", ("certificates",), "certificates", "list", _list_certificates),
    ("GET", ("certificates", "*", "versions"), "certificates", "list", _list_certificate_versions),
    ("GET", ("certificates", "*"), "certificates", "get", _get_certificate),
    ("GET", ("certificates", "*", "*"), "certificates", "get", _get_certificate),
    ("GET", ("keys",), "keys", "list", _list_keys),
    ("GET", ("keys", "*", "versions"), "keys", "list", _list_key_versions),
    ("GET", ("keys", "*"), "keys", "get", _get_key),
    ("GET", ("keys", "*", "*"), "keys", "get", _get_key),
)


def _route(method: str, parts: tuple[str, ...]) -> tuple[str, str, _Handler]:
    for route_method, pattern, kind, permission, handler in _ROUTES:
        if route_method != method or len(pattern) != len(parts):
            continue
        if all(p == "*" or p == part.lower() for p, part in zip(pattern, parts, strict=True)):
            return kind, permission, handler
    raise KeyVaultError(
        501,
        "NotImplemented",
        f"The podidentity Key Vault emulator does not implement {method} /{'/'.join(parts)}.",
    )


def _check_api_version(api_version: str) -> None:
    if not api_version:
        raise KeyVaultError(400, "BadParameter", "The api-version query parameter is missing.")
    preview = _PREVIEW.match(api_version)
    base = preview.group("base") if preview else api_version
    if base not in API_VERSIONS:
        raise KeyVaultError(
            400,
            "BadParameter",
            f"The specified version ({api_version}) is not recognized. Consider using the latest "
            f"supported version ({max(v for v in API_VERSIONS if '-' in v)}).",
        )


def _vault_headers(
    vault: Vault, request_headers: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers every answer of a vault carries, a refusal's too."""
    headers = [
        (b"cache-control", b"no-cache"),
        (b"x-ms-keyvault-region", vault.location.encode()),
        (b"x-ms-request-id", str(uuid.uuid4()).encode()),
    ]
    # The client's request ID is echoed (the last one, if the client sent several).
    echoed = [v for k, v in request_headers if k.lower() == b"x-ms-client-request-id"]
    if echoed and echoed[-1]:
        headers.append((b"x-ms-client-request-id", echoed[-1]))
    return headers


def vault_app(
    vault: Vault,
    settings: VaultSettings,
    limiter: Callable[[], SlidingWindow | None] | None = None,
) -> ASGIApp:
    """The ASGI app serving one vault's data plane; ``limiter`` gives its rate window, if any."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        request = await read_request(scope, receive)
        window = limiter() if limiter is not None else None
        if window is not None:
            retry_after = window.acquire()
            if retry_after is not None:
                raise throttled("VaultRequestTypeLimitReached", retry_after)
        caller = authenticate(
            request.headers.get("authorization"),
            tenant_id=vault.tenant_id,
            verify_token=settings.verify_token,
            resource=settings.resource,
            authority=settings.authority,
        )
        _check_api_version(request.query.get("api-version", ""))
        path = request.path.strip("/")
        parts = tuple(path.split("/")) if path else ()
        kind, permission, handler = _route(request.method.upper(), parts)
        with vault.lock:
            authorize(
                vault.policies,
                caller,
                kind,
                permission,
                vault=vault.name,
                location=vault.location,
            )
        call = _Call(
            vault=vault,
            request=request,
            parts=parts,
            now=int(settings.clock()),
            short_pages=settings.short_pages,
        )
        with vault.lock:
            status, payload = handler(call)
            # Serialize under the lock: the handlers return live objects' views.
            body = b"" if payload is None else json.dumps(payload).encode()
        await send_body(send, status, body, content_type=JSON_CONTENT_TYPE)

    return error_boundary(serve, headers=lambda scope: _vault_headers(vault, scope["headers"]))
