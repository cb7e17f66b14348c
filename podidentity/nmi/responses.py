"""Every answer the token proxy gives: the IMDS token shape, and errors to HTTP in ONE place.

:func:`error_answer` is the only place that decides which status code a failure gets:

==========================================  ======  ==========================================
failure                                     status  body ``error`` (and headers)
==========================================  ======  ==========================================
BadTokenRequestError (header, parameters)   400     ``invalid_request`` (IMDS's text)
MethodNotAllowedError                       405     ``invalid_request``
PathNotFoundError                           404     ``not_found``
CallerNotIdentifiedError                    403     ``forbidden``
IdentityNotPermittedError                   403     ``forbidden`` (names the pod's client IDs)
InstanceMetadataBlockedError                403     ``forbidden``
AssignmentPendingError                      404     ``identity_not_ready``, ``Retry-After``
AzureThrottledError                         429     ``too_many_requests``, ``Retry-After``
AzureAuthenticationError, AzureForbidden    403     ``unauthorized_client``
IdentityNotAssignedError (IMDS lags)        404     ``identity_not_ready``, ``Retry-After``
AzureUnavailableError, KubeUnavailable      503     ``service_unavailable``, ``Retry-After``
KubeNotFoundError, KubeForbiddenError       403     ``unauthorized_client``
other AzureError with a 4xx from upstream   400     ``invalid_request`` (upstream's meaning)
anything else                               500     ``internal_error`` (no details)
==========================================  ======  ==========================================

404 with ``Retry-After`` is what the SDKs retry (they retry 404, 410, 429 and 5xx, not 400):
"not yet" is an answer worth asking again. Bodies never carry a token or a secret: messages
come from our own errors, which are built without them.
"""

from __future__ import annotations

import json
import math
import time

import attrs

from podidentity.azure.tokens import AccessToken
from podidentity.errors import (
    AssignmentPendingError,
    AzureAuthenticationError,
    AzureError,
    AzureForbiddenError,
    AzureThrottledError,
    AzureUnavailableError,
    BadTokenRequestError,
    CallerNotIdentifiedError,
    IdentityNotAssignedError,
    IdentityNotPermittedError,
    KubeForbiddenError,
    KubeNotFoundError,
    KubeUnavailableError,
)
from podidentity.nmi.requests import (
    InstanceMetadataBlockedError,
    MethodNotAllowedError,
    PathNotFoundError,
)

__all__ = ["Answer", "error_answer", "host_token_body", "token_answer", "token_body"]

JSON = "application/json; charset=utf-8"
_UNAVAILABLE_RETRY_AFTER = 1


@attrs.frozen
class Answer:
    """An HTTP answer: status, JSON body bytes, extra headers, and a short reason for metrics."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    reason: str = "ok"


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _error(
    status: int, code: str, description: str, reason: str, retry_after: float | None = None
) -> Answer:
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        headers = (("Retry-After", str(max(1, math.ceil(retry_after)))),)
    body = _json({"error": code, "error_description": description})
    return Answer(status, body, headers, reason)


def error_answer(err: Exception, *, pending_retry_after: float = 5) -> Answer:
    """The HTTP answer for a failure (see the module doc's table)."""
    text = str(err)
    if isinstance(err, MethodNotAllowedError):
        return _error(405, "invalid_request", text, "bad_request")
    if isinstance(err, BadTokenRequestError):
        return _error(400, "invalid_request", text, "bad_request")
    if isinstance(err, PathNotFoundError):
        return _error(404, "not_found", text, "not_found")
    if isinstance(
        err, (CallerNotIdentifiedError, IdentityNotPermittedError, InstanceMetadataBlockedError)
    ):
        return _error(403, "forbidden", text, "forbidden")
    if isinstance(err, AssignmentPendingError):
        return _error(404, "identity_not_ready", text, "pending", err.retry_after)
    if isinstance(err, AzureThrottledError):
        return _error(429, "too_many_requests", text, "throttled", err.retry_after)
    if isinstance(err, IdentityNotAssignedError):
        return _error(404, "identity_not_ready", text, "pending", pending_retry_after)
    if isinstance(err, (AzureAuthenticationError, AzureForbiddenError)):
        return _error(403, "unauthorized_client", text, "auth_failed")
    if isinstance(err, (AzureUnavailableError, KubeUnavailableError)):
        return _error(503, "service_unavailable", text, "unavailable", _UNAVAILABLE_RETRY_AFTER)
    if isinstance(err, (KubeNotFoundError, KubeForbiddenError)):
        return _error(403, "unauthorized_client", text, "auth_failed")
    if isinstance(err, AzureError) and 400 <= err.status_code < 500:
        return _error(400, "invalid_request", text, "upstream_refused")
    return _error(500, "internal_error", "the token proxy failed; see its log", "internal")


def token_body(token: AccessToken, *, now: float | None = None) -> dict[str, str]:
    """IMDS's token answer, numbers as strings (what both azure-identity clients parse)."""
    current = int(time.time() if now is None else now)
    expires_in = max(0, token.expires_on - current)
    ext = token.ext_expires_on - current if token.ext_expires_on else expires_in
    return {
        "access_token": token.token,
        "client_id": token.client_id,
        "expires_in": str(expires_in),
        "expires_on": str(token.expires_on),
        "ext_expires_in": str(max(0, ext)),
        "not_before": str(token.not_before or current),
        "resource": token.resource,
        "token_type": "Bearer",
    }


def token_answer(token: AccessToken, *, now: float | None = None) -> Answer:
    """A 200 answer with :func:`token_body`."""
    return Answer(200, _json(token_body(token, now=now)))


def host_token_body(token: AccessToken, *, now: float | None = None) -> bytes:
    """The ``/host/token`` answer: ``{"token": {...}, "clientid": "..."}`` as upstream."""
    return _json({"token": token_body(token, now=now), "clientid": token.client_id})
