"""The API error type and the ``Status`` bodies the real API server sends with it.

Every refusal in the emulator — from the REST layer, from validation, from an admission hook a
teammate installs — is an :class:`APIError`; one function turns it into the ``Status`` object
(``kind: Status``) that the official clients decode into their own exceptions, and the shared
error boundary around the REST app sends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from podidentity.testing._http import HTTPError, Response

__all__ = ["APIError", "Cause", "status_body"]

# Compact, like every other body the server sends.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

#: One field-level cause: ``{"reason": "FieldValueInvalid", "message": ..., "field": ...}``.
Cause = Mapping[str, str]

_REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class APIError(HTTPError):
    """A refusal that the API server answers with a ``Status`` object.

    Raise it from admission hooks, subresource and route handlers; the server turns it into the
    HTTP status ``code`` and the body built by :func:`status_body`.

    Args:
        code: HTTP status code (404, 409, 422, ...).
        reason: the ``Status.reason`` (``NotFound``, ``AlreadyExists``, ``Conflict``,
            ``Invalid``, ...); defaults to the usual reason for ``code``.
        message: the human-readable ``Status.message``.
        details: the ``Status.details`` mapping (``name``, ``group``, ``kind``, ``causes``,
            ``retryAfterSeconds``).
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.reason = reason or _REASON_BY_CODE.get(code, "Unknown")
        self.message = message or self.reason
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(code, self.message)

    def __repr__(self) -> str:
        return f"APIError({self.code}, {self.reason!r}, {self.message!r})"

    def response(self) -> Response:
        """The ``Status`` answer."""
        return Response(self.code, _ENCODER.encode(status_body(self)).encode(), "application/json")

    @classmethod
    def _about(
        cls,
        code: int,
        reason: str,
        group: str,
        plural: str,
        name: str,
        *,
        before: str = "",
        after: str = "",
    ) -> APIError:
        # The real server names the object as `plural.group "name"` and repeats it in details.
        resource = f"{plural}.{group}" if group else plural
        return cls(
            code,
            reason,
            f'{before}{resource} "{name}"{after}',
            {"name": name, "group": group, "kind": plural},
        )

    @classmethod
    def not_found(cls, group: str, plural: str, name: str) -> APIError:
        """404 for a missing object, worded like the real server."""
        return cls._about(404, "NotFound", group, plural, name, after=" not found")

    @classmethod
    def already_exists(cls, group: str, plural: str, name: str) -> APIError:
        """409 AlreadyExists for a create whose name is taken."""
        return cls._about(409, "AlreadyExists", group, plural, name, after=" already exists")

    @classmethod
    def generate_name_conflict(cls, group: str, plural: str, generate_name: str) -> APIError:
        """409 AlreadyExists when every name tried for ``generateName`` was taken."""
        error = cls._about(
            409,
            "AlreadyExists",
            group,
            plural,
            generate_name,
            after=" already exists, the server was not able to generate a unique name for the "
            "object",
        )
        error.details["retryAfterSeconds"] = 1
        return error

    @classmethod
    def conflict(cls, group: str, plural: str, name: str, why: str) -> APIError:
        """409 Conflict for a write based on a stale ``resourceVersion``."""
        return cls._about(
            409,
            "Conflict",
            group,
            plural,
            name,
            before="Operation cannot be fulfilled on ",
            after=f": {why}",
        )

    @classmethod
    def method_not_allowed(cls) -> APIError:
        """405 for a verb the resource does not serve."""
        return cls(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    @classmethod
    def invalid(cls, kind: str, group: str, name: str, causes: Sequence[Cause]) -> APIError:
        """422 Invalid naming each offending field, like the real server's message."""
        qualified = f"{kind}.{group}" if group else kind
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        if len(causes) > 1:
            summary = f"[{summary}]"
        return cls(
            422,
            "Invalid",
            f'{qualified} "{name}" is invalid: {summary}',
            {"name": name, "group": group, "kind": kind, "causes": [dict(c) for c in causes]},
        )

    @classmethod
    def bad_request(cls, message: str) -> APIError:
        """400 BadRequest."""
        return cls(400, "BadRequest", message)

    @classmethod
    def gone(cls, message: str) -> APIError:
        """410 Expired: the resourceVersion or continue token is older than the window."""
        return cls(410, "Expired", message)


def status_body(error: APIError) -> dict[str, Any]:
    """The ``Status`` object for an error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    if error.details:
        body["details"] = error.details
    return body
