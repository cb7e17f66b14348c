"""The HTTP vocabulary every emulator shares: one request, one error base, one error boundary.

Modelled on Starlette's split between exceptions and middleware: a service raises a subclass
of :class:`HTTPError` that knows only its own error shape (Kubernetes' ``Status``, ARM's and
Key Vault's ``{"error": ...}``, Azure AD's OAuth errors, IMDS's), and :func:`error_boundary`,
which wraps every emulator app, is the one place that turns such an error into a response.
Headers a service puts on every answer (request IDs, ``Warning``) are given to the boundary,
so a refusal carries them as well.

One rule for repeated query parameters holds in every emulator: the first value wins, as the
Kubernetes API server and Go's ``url.Values.Get`` (and so the Azure front ends) read them.
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import attrs

from podidentity.testing._asgi import ASGIApp, Receive, Scope, Send, read_body, send_body

__all__ = [
    "HTTPError",
    "HeaderSource",
    "Request",
    "Response",
    "error_boundary",
    "first_values",
    "read_request",
    "send_response",
]

logger = logging.getLogger(__name__)

RawHeaders = Sequence[tuple[bytes, bytes]]
#: What :func:`error_boundary` adds to every answer: scope → raw header pairs.
HeaderSource = Callable[[Scope], Iterable[tuple[bytes, bytes]]]


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Name → value of ``pairs``, the first value of a repeated name winning."""
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values


@attrs.frozen(repr=False)
class Request:
    """One HTTP request, read whole; ``repr`` leaves out headers and body (they carry credentials).

    Attributes:
        method: ``GET``, ``POST``, ... as the client sent it.
        path: the decoded URL path.
        query: query parameters, the first value of a repeated one winning
            (:meth:`query_values` has them all).
        headers: header names lower-cased; a repeated header keeps its last value.
        raw_headers: the headers as the server received them.
        body: the body, read once.
        client: the client's ``(host, port)``, if the server knows it.
        query_string: the raw query string.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    raw_headers: RawHeaders
    body: bytes
    client: tuple[str, int] | None = None
    query_string: str = ""

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"

    @property
    def host(self) -> str:
        """The ``Host`` header, with the port if the client sent one."""
        return self.headers.get("host", "")

    def query_values(self, name: str) -> list[str]:
        """Every value of the query parameter ``name``, in order."""
        return [v for k, v in parse_qsl(self.query_string, keep_blank_values=True) if k == name]

    def json(self) -> Any:
        """The body as JSON (``None`` when empty); raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded``, first value winning like the query."""
        return first_values(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Read an ASGI HTTP request, body included, into a :class:`Request`."""
    query_string = scope.get("query_string", b"").decode("latin-1")
    raw_headers: RawHeaders = scope["headers"]
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=first_values(parse_qsl(query_string, keep_blank_values=True)) if query_string else {},
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers},
        raw_headers=raw_headers,
        body=await read_body(receive),
        client=(client[0], client[1]) if client else None,
        query_string=query_string,
    )


@attrs.frozen
class Response:
    """A whole answer: status, encoded body, its content type and extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: Sequence[tuple[str, str]] = ()


async def send_response(send: Send, response: Response) -> None:
    """Send a :class:`Response`."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send_body(send, response.status, response.body, extra, content_type=response.content_type)


class HTTPError(Exception, metaclass=abc.ABCMeta):
    """A refusal a service answers in its own error shape.

    Subclasses keep the service's fields and implement :meth:`response`; the
    :func:`error_boundary` around the app sends it.

    Args:
        status: the HTTP status.
        message: the text of the exception (what logs show).
    """

    #: The level the boundary logs the refusal at (a service whose refusals are news raises it).
    log_level: ClassVar[int] = logging.DEBUG

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @abc.abstractmethod
    def response(self) -> Response:
        """The answer in the service's error shape."""


def error_boundary(app: ASGIApp, *, headers: HeaderSource | None = None) -> ASGIApp:
    """Wrap an emulator app so an :class:`HTTPError` it raises is answered with its response.

    Args:
        app: the service's app.
        headers: raw header pairs every answer carries, a refusal's too (request IDs,
            ``Warning``, rate-limit counters); called with the scope when an answer starts, so
            it may return what the app gathered while serving.

    If the app has already started its answer (a watch stream), a second start would break
    the connection's framing: the boundary ends the body instead.
    """

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started, finished
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                if headers is not None and (extra := list(headers(scope))):
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif kind == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except HTTPError as err:
            logger.log(err.log_level, "%s %s refused: %s", scope["method"], scope["path"], err)
            if not started:
                await send_response(tracking_send, err.response())
            elif not finished:
                logger.warning("%s %s failed mid-answer: %s", scope["method"], scope["path"], err)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    return guarded
