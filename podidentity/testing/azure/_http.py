"""The little HTTP the Azure emulators need on top of raw ASGI: a parsed request, JSON answers.

The emulators are raw ASGI apps (no framework routing): each service matches its few paths with
regular expressions, which keeps the real services' odd path rules (ARM's case-insensitivity,
IMDS's query parameters) explicit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import attrs

from podidentity.testing._asgi import ASGIApp, Receive, Scope, Send, read_body, send_body

__all__ = [
    "JSON_CONTENT_TYPE",
    "ASGIApp",
    "Receive",
    "Request",
    "Scope",
    "Send",
    "read_body",
    "read_request",
    "send_body",
    "send_json",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


@attrs.frozen(repr=False)
class Request:
    """One decoded request; ``repr`` leaves out headers and body (they carry credentials)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"

    @property
    def host(self) -> str:
        """The ``Host`` header, with the port if the client sent one."""
        return self.headers.get("host", "")

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` (last value wins)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not."""
        return json.loads(self.body or b"null")

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Collect an ASGI HTTP request into a :class:`Request`."""
    body = await read_body(receive)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return Request(
        method=scope["method"],
        path=scope["path"],
        query={k: v[-1] for k, v in query.items()},
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=body,
    )


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with a JSON body and optional extra headers."""
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    body = json.dumps(payload).encode()
    await send_body(send, status, body, extra, content_type=JSON_CONTENT_TYPE)


def new_request_id() -> str:
    """An ID for ``x-ms-request-id`` style headers and error trace IDs."""
    return str(uuid.uuid4())
