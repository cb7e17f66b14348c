"""Health, readiness and metrics over HTTP: a plain ASGI app the CLI (or any server) can serve.

``GET /healthz`` answers 200 while the controller runs, ``GET /readyz`` 200 once its caches are
synced, ``GET /metrics`` the Prometheus text format of its registry. Anything else is 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podidentity.reconciler.controller import Controller

__all__ = ["probe_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def probe_app(controller: Controller) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app with ``/healthz``, ``/readyz`` and ``/metrics`` for ``controller``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        content_type = "text/plain; charset=utf-8"
        if path == "/healthz":
            ok = controller.healthy
            status, body = (200, b"ok\n") if ok else (503, b"stopped\n")
        elif path == "/readyz":
            ok = controller.ready
            status, body = (200, b"ok\n") if ok else (503, b"not synced\n")
        elif path == "/metrics":
            status, body = 200, generate_latest(controller.metrics.registry)
            content_type = CONTENT_TYPE_LATEST
        else:
            status, body = 404, b"not found\n"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
