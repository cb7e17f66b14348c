"""Faults on demand and a request log, shared by every emulator.

A :class:`FaultInjector` holds rules ("the next 3 GETs of /pods fail with 429, Retry-After 2");
:func:`with_faults` wraps an emulator's ASGI app so the rules apply before the app sees the
request, every request is recorded in a :class:`RequestLog`, and the same controls are reachable
over HTTP under ``/_emulator/`` for tests that drive an emulator from another process.

Rules are set from the test's thread and read on the serving loop, so the injector guards its
state with a lock; the rules themselves are plain data.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

import attrs

from podidentity.testing._asgi import ASGIApp, Receive, Scope, Send, read_body, send_body

__all__ = [
    "CONTROL_PREFIX",
    "Fault",
    "FaultInjector",
    "RecordLog",
    "RequestLog",
    "RequestRecord",
    "with_faults",
]

#: Builds the error body an emulator's real service would send: (status, message) -> (body, type).
ErrorBody = Callable[[int, str], tuple[bytes, str]]
#: An extra control endpoint: takes the decoded JSON body, returns a JSON-able answer.
Control = Callable[[Mapping[str, Any]], Any]

CONTROL_PREFIX = "/_emulator/"
_R = TypeVar("_R")
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-ms-client-secret"})


@attrs.frozen
class RequestRecord:
    """One request an emulator served (credentials masked)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    status: int
    duration: float
    client: str


class RecordLog(Generic[_R]):
    """Records in the order they happened; thread-safe (servers append, tests read).

    Emulators append from their serving thread while a test reads from its own, so every
    access takes the lock and readers get snapshots.
    """

    def __init__(self) -> None:
        self._records: list[_R] = []
        self._lock = threading.Lock()

    def append(self, record: _R) -> None:
        """Add one record."""
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[_R]:
        """A snapshot of all records."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class RequestLog(RecordLog[RequestRecord]):
    """Every request an emulator served, in order; thread-safe."""

    def find(self, *, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Records whose method equals ``method`` and whose path matches the regex ``path``."""
        pattern = re.compile(path) if path else None
        return [
            r
            for r in self.records
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
        ]


@attrs.define
class Fault:
    """One rule: which requests it applies to, what happens to them, and how many more times.

    ``kind`` is ``"status"`` (answer ``status`` with the service's error body),
    ``"reset"`` (start a response, then drop the connection), or ``"latency"`` (wait ``delay``
    seconds, then serve normally). ``remaining`` is ``None`` for a rule that never runs out.
    ``path`` and ``query`` are regular expressions searched in the request path and in the raw
    query string (``watch=true&limit=5``); an unset matcher matches everything.
    """

    kind: str
    method: str | None = None
    path: re.Pattern[str] | None = None
    host: str | None = None
    query: re.Pattern[str] | None = None
    remaining: int | None = 1
    status: int = 500
    message: str = "injected fault"
    retry_after: float | None = None
    delay: float = 0.0
    body: bytes | None = None
    content_type: str = "application/json"

    def applies_to(self, method: str, path: str, host: str, query: str = "") -> bool:
        """Whether this rule matches the request."""
        return (
            (self.method is None or self.method == method)
            and (self.path is None or self.path.search(path) is not None)
            and (self.host is None or self.host == host)
            and (self.query is None or self.query.search(query) is not None)
        )


class FaultInjector:
    """Rules for failing, delaying, dropping or holding requests; set from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._paused = False

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int,
        method: str | None = None,
        path: str | None = None,
        host: str | None = None,
        query: str | None = None,
        retry_after: float | None = None,
        message: str = "injected fault",
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (``count=0``: forever).

        ``path`` and ``query`` are regular expressions searched in the request path and the raw
        query string. ``body`` overrides the emulator's own error body (for a specific service
        error such as an ARM code).
        """
        return self._add(
            Fault(
                kind="status",
                method=method.upper() if method else None,
                path=re.compile(path) if path else None,
                host=host,
                query=re.compile(query) if query else None,
                remaining=count or None,
                status=status,
                retry_after=retry_after,
                message=message,
                body=body,
                content_type=content_type,
            )
        )

    def reset_next(
        self,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        host: str | None = None,
        query: str | None = None,
    ) -> Fault:
        """Drop the connection of the next ``count`` matching requests mid-response."""
        return self._add(
            Fault(
                kind="reset",
                method=method.upper() if method else None,
                path=re.compile(path) if path else None,
                host=host,
                query=re.compile(query) if query else None,
                remaining=count or None,
            )
        )

    def add_latency(
        self,
        seconds: float,
        *,
        method: str | None = None,
        path: str | None = None,
        host: str | None = None,
        query: str | None = None,
        count: int = 0,
    ) -> Fault:
        """Delay matching requests by ``seconds`` (``count=0``: every one until cleared)."""
        return self._add(
            Fault(
                kind="latency",
                method=method.upper() if method else None,
                path=re.compile(path) if path else None,
                host=host,
                query=re.compile(query) if query else None,
                remaining=count or None,
                delay=seconds,
            )
        )

    def remove(self, fault: Fault) -> None:
        """Withdraw one rule."""
        with self._lock:
            if fault in self._rules:
                self._rules.remove(fault)

    def clear(self) -> None:
        """Withdraw every rule and resume a paused emulator."""
        with self._lock:
            self._rules.clear()
            self._paused = False

    def pause(self) -> None:
        """Hold every request (except controls) until :meth:`resume`."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Release held requests."""
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        """Whether requests are being held."""
        with self._lock:
            return self._paused

    def take(
        self, method: str, path: str, host: str = "", query: str = ""
    ) -> tuple[float, Fault | None]:
        """Consume the rules matching a request: total latency, then the failing rule if any."""
        delay = 0.0
        failing: Fault | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.applies_to(method, path, host, query):
                    continue
                if rule.kind == "latency":
                    delay += rule.delay
                elif failing is None:
                    failing = rule
                else:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
        return delay, failing

    def configure(self, spec: Mapping[str, Any]) -> Fault:
        """Add a rule from a JSON spec (the HTTP control surface's format).

        ``{"action": "fail", "count": 2, "status": 429, "retry_after": 1, "method": "GET",
        "path": "/pods", "query": "watch=true"}``; actions are ``fail``, ``reset`` and
        ``latency`` (with ``seconds``).
        """
        action = spec.get("action")
        common = {
            k: spec[k] for k in ("method", "path", "host", "query") if spec.get(k) is not None
        }
        if action == "fail":
            return self.fail_next(
                int(spec.get("count", 1)),
                status=int(spec["status"]),
                retry_after=spec.get("retry_after"),
                message=str(spec.get("message", "injected fault")),
                **common,
            )
        if action == "reset":
            return self.reset_next(int(spec.get("count", 1)), **common)
        if action == "latency":
            return self.add_latency(
                float(spec["seconds"]), count=int(spec.get("count", 0)), **common
            )
        raise ValueError(f"unknown fault action {action!r}: use fail, reset or latency")


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await send_body(send, status, json.dumps(payload).encode(), content_type="application/json")


def with_faults(
    app: ASGIApp,
    *,
    faults: FaultInjector,
    log: RequestLog,
    error_body: ErrorBody,
    controls: Mapping[str, Control] | None = None,
) -> ASGIApp:
    """Wrap an emulator app with fault rules, request recording and the HTTP control surface.

    Control endpoints (JSON): ``POST /_emulator/faults`` adds a rule (see
    :meth:`FaultInjector.configure`), ``DELETE /_emulator/faults`` clears rules,
    ``POST /_emulator/pause`` / ``POST /_emulator/resume``, ``GET /_emulator/requests`` lists
    the log. ``controls`` adds emulator-specific ``POST /_emulator/<name>`` endpoints.
    """
    extra = dict(controls or {})

    async def control(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(CONTROL_PREFIX) :]
        method = scope["method"]
        raw = await read_body(receive)
        try:
            spec = json.loads(raw) if raw else {}
            if name == "faults" and method == "POST":
                faults.configure(spec)
                answer: Any = {"ok": True}
            elif name == "faults" and method == "DELETE":
                faults.clear()
                answer = {"ok": True}
            elif name == "pause" and method == "POST":
                faults.pause()
                answer = {"ok": True}
            elif name == "resume" and method == "POST":
                faults.resume()
                answer = {"ok": True}
            elif name == "requests" and method == "GET":
                answer = [attrs.asdict(r) for r in log.records]
            elif name in extra and method == "POST":
                answer = extra[name](spec)
                if asyncio.iscoroutine(answer):
                    answer = await answer
            else:
                await _send_json(send, 404, {"error": f"no control {method} {scope['path']}"})
                return
        except (ValueError, KeyError, TypeError) as err:
            await _send_json(send, 400, {"error": str(err)})
            return
        await _send_json(send, 200, answer)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await control(scope, receive, send)
            return
        started = time.monotonic()
        method: str = scope["method"]
        query: str = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").rsplit(":", 1)[0]
        status_box = [0]
        recorded = [False]

        def record() -> None:
            if recorded[0]:
                return
            recorded[0] = True
            client = scope.get("client") or ("", 0)
            log.append(
                RequestRecord(
                    method=method,
                    path=path,
                    query=query,
                    headers={
                        k: ("****" if k in _SENSITIVE_HEADERS else v) for k, v in headers.items()
                    },
                    status=status_box[0],
                    duration=time.monotonic() - started,
                    client=str(client[0]),
                )
            )

        async def recording_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Record before the last byte leaves: a client that has its answer must be
                # able to find the request in the log straight away.
                record()
            await send(message)

        try:
            while faults.paused:
                await asyncio.sleep(0.01)
            delay, failing = faults.take(method, path, host, query)
            if delay:
                await asyncio.sleep(delay)
            if failing is None:
                await app(scope, receive, recording_send)
            elif failing.kind == "reset":
                status_box[0] = -1
                record()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                # Raising after the response has started makes uvicorn drop the connection,
                # which the client sees as a reset / incomplete read.
                raise ConnectionResetError("injected connection reset")
            else:
                body, content_type = (
                    (failing.body, failing.content_type)
                    if failing.body is not None
                    else error_body(failing.status, failing.message)
                )
                response_headers = [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ]
                if failing.retry_after is not None:
                    response_headers.append(
                        (b"retry-after", str(int(max(failing.retry_after, 0))).encode())
                    )
                await recording_send(
                    {
                        "type": "http.response.start",
                        "status": failing.status,
                        "headers": response_headers,
                    }
                )
                await recording_send({"type": "http.response.body", "body": body})
        finally:
            record()

    return wrapped
