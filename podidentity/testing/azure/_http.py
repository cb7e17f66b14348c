"""The little HTTP the Azure emulators add to the shared vocabulary: JSON answers, request IDs.

The emulators are raw ASGI apps (no framework routing): each service matches its few paths with
regular expressions, which keeps the real services' odd path rules (ARM's case-insensitivity,
IMDS's query parameters) explicit. Requests, errors and the error boundary come from the
emulators' shared :mod:`podidentity.testing._http`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from podidentity.testing._asgi import ASGIApp, Receive, Scope, Send, read_body, send_body
from podidentity.testing._http import Response, send_response

__all__ = [
    "JSON_CONTENT_TYPE",
    "ASGIApp",
    "Receive",
    "Scope",
    "Send",
    "json_response",
    "new_request_id",
    "read_body",
    "send_body",
    "send_json",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON :class:`Response` (what the Azure services' errors render to)."""
    return Response(
        status, json.dumps(payload).encode(), JSON_CONTENT_TYPE, tuple((headers or {}).items())
    )


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with a JSON body and optional extra headers."""
    await send_response(send, json_response(status, payload, headers))


def new_request_id() -> str:
    """An ID for ``x-ms-request-id`` style headers and error trace IDs."""
    return str(uuid.uuid4())
