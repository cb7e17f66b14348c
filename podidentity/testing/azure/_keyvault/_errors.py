"""Key Vault's error responses: the JSON shape, the codes and the messages clients match on.

Key Vault answers every failure with ``{"error": {"code", "message", "innererror"?}}``. The
messages below are the real service's where they are documented or widely quoted (the
``AKV100xx`` authentication codes, ``SecretNotFound``, ``SecretDisabled``, the access-policy
``Forbidden``); the few the emulator adds say so in their text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from podidentity.testing._http import HTTPError, Response

__all__ = [
    "FWLINK_ACCESS",
    "FWLINK_NOT_FOUND",
    "KeyVaultError",
    "error_body",
    "fault_error_body",
    "not_found",
    "throttled",
]

_CONTENT_TYPE = "application/json; charset=utf-8"

FWLINK_NOT_FOUND = "https://go.microsoft.com/fwlink/?linkid=2125182"
FWLINK_ACCESS = "https://go.microsoft.com/fwlink/?linkid=2125287"

# What an injected fault's status looks like as a Key Vault error code.
_CODES = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def error_body(code: str, message: str, inner_code: str | None = None) -> bytes:
    """The JSON body of a Key Vault error."""
    error: dict[str, object] = {"code": code, "message": message}
    if inner_code is not None:
        error["innererror"] = {"code": inner_code}
    return json.dumps({"error": error}).encode()


def fault_error_body(status: int, message: str) -> tuple[bytes, str]:
    """Error body for an injected fault (the ``error_body`` hook of ``with_faults``)."""
    code = _CODES.get(status, "InternalServerError" if status >= 500 else "BadParameter")
    if status == 429:
        message = _throttled_message(
            "VaultRequestTypeLimitReached" if message == "injected fault" else message
        )
    return error_body(code, message), _CONTENT_TYPE


def _throttled_message(reason: str) -> str:
    return f"Request was not processed because too many requests were received. Reason: {reason}"


class KeyVaultError(HTTPError):
    """A failure answered with Key Vault's error shape.

    Attributes:
        status: the HTTP status.
        code: ``error.code``.
        message: ``error.message``.
        inner_code: ``error.innererror.code``, when the service sends one.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(status, f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = tuple(headers)

    def body(self) -> bytes:
        """The JSON body."""
        return error_body(self.code, self.message, self.inner_code)

    def response(self) -> Response:
        """The error body with the error's headers."""
        return Response(self.status, self.body(), _CONTENT_TYPE, self.headers)


def throttled(reason: str, retry_after: float) -> KeyVaultError:
    """``429`` for a request over the vault's rate limit, as the service words it."""
    return KeyVaultError(
        429,
        _CODES[429],
        _throttled_message(reason),
        headers=(("Retry-After", str(int(retry_after))),),
    )


def not_found(kind: str, name: str, version: str | None = None) -> KeyVaultError:
    """``404 SecretNotFound`` / ``KeyNotFound`` / ``CertificateNotFound`` as the service words it.

    Args:
        kind: ``secret``, ``key`` or ``certificate``.
        name: the object name as requested.
        version: the requested version, if any.
    """
    article = "An" if kind[0] in "aeiou" else "A"
    ident = f"{name}/{version}" if version else name
    return KeyVaultError(
        404,
        f"{kind.capitalize()}NotFound",
        f"{article} {kind} with (name/id) {ident} was not found in this key vault. If you "
        f"recently deleted this {kind} you may be able to recover it using the correct recovery "
        f"command. For help resolving this issue, please see {FWLINK_NOT_FOUND}",
    )
