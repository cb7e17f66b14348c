"""An HTTPS CONNECT proxy that sends Azure host names to emulators on 127.0.0.1.

The Azure SDKs insist on https and on the real host names (Key Vault refuses a challenge whose
resource does not match ``*.vault.azure.net``), so the emulators cannot simply be given a
``https://127.0.0.1:port`` URL. Instead the client keeps the real URL and is pointed at this
proxy with ``HTTPS_PROXY``: for ``CONNECT myvault.vault.azure.net:443`` the proxy opens a TCP
connection to the emulator's loopback port and pipes bytes both ways. TLS stays end to end
between the client and the emulator, so the client still checks the real host name against the
emulator's certificate, exactly as it would against Azure.

The proxy never connects anywhere but 127.0.0.1: a host without a route is refused with
``403 Forbidden`` and a body naming the host and the known routes, so a test that forgot a route
fails loudly instead of reaching the internet. Plain-HTTP proxying (``GET http://...``) is refused
with ``405``. Every CONNECT is recorded in :attr:`HostRoutingProxy.log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping

import attrs

from podidentity.testing._faults import RecordLog
from podidentity.testing._server import RunningServer, ServerThread

__all__ = ["ConnectLog", "ConnectRecord", "HostRoutingProxy", "Route"]

_log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_HEAD_LIMIT = 64 * 1024
# A client that opens a connection and says nothing must not hold a handler forever.
_HEAD_TIMEOUT = 30.0
_CHUNK = 64 * 1024


@attrs.frozen
class Route:
    """Where connections for a host pattern go.

    Attributes:
        pattern: an exact host name (``login.microsoftonline.com``) or a wildcard
            (``*.vault.azure.net``, matching any name that ends in ``.vault.azure.net``,
            at any depth); matched case-insensitively.
        port: the 127.0.0.1 port of the emulator that serves it.
        only_if: optional check of the full host name; when it returns false the proxy answers
            ``502`` as a proxy does when a name does not resolve (e.g. a vault that does not
            exist in the emulated world).
    """

    pattern: str
    port: int
    only_if: Callable[[str], bool] | None = attrs.field(default=None, eq=False)

    def matches(self, host: str) -> bool:
        """Whether ``host`` (lower-case, no port) falls under this route's pattern."""
        if self.pattern.startswith("*."):
            return host.endswith(self.pattern[1:]) and len(host) > len(self.pattern) - 1
        return host == self.pattern


@attrs.frozen
class ConnectRecord:
    """One CONNECT the proxy answered.

    Attributes:
        host: the requested host name, lower-case.
        port: the requested port.
        allowed: whether a tunnel was opened.
        target_port: the loopback port the tunnel went to (``None`` when refused).
        status: the status line's code the proxy answered with.
    """

    host: str
    port: int
    allowed: bool
    target_port: int | None
    status: int


class ConnectLog(RecordLog[ConnectRecord]):
    """Every CONNECT the proxy answered, in order; thread-safe."""

    def hosts(self, *, allowed: bool | None = None) -> list[str]:
        """The requested hosts, optionally only those allowed (or refused)."""
        return [r.host for r in self.records if allowed is None or r.allowed == allowed]


class _Refused(Exception):
    """A CONNECT the proxy answers with an error status instead of a tunnel."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.reason = reason
        self.body = body


def _split_authority(target: str) -> tuple[str, int]:
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise _Refused(400, "Bad Request", f"CONNECT needs host:port, got {target!r}\n")
    return host.strip("[]").lower().rstrip("."), int(port_text)


async def _write_status(writer: asyncio.StreamWriter, status: int, reason: str, body: str) -> None:
    payload = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        + ("Allow: CONNECT\r\n" if status == 405 else "")
        + "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + payload)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on (TLS close_notify needs the other way open)."""
    while True:
        data = await reader.read(_CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


class HostRoutingProxy:
    """An HTTPS CONNECT proxy pinned to loopback, routing host names to emulator ports.

    Routes can change at any time, from any thread. Serve it with :meth:`serve` (or pass
    :meth:`handle` to :meth:`ServerThread.serve_tcp` yourself) and point clients at
    :attr:`url` with ``HTTPS_PROXY``.
    """

    def __init__(self, routes: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self.log = ConnectLog()
        self._server: RunningServer | None = None
        for pattern, port in (routes or {}).items():
            self.add_route(pattern, port)

    def __repr__(self) -> str:
        where = self._server.url if self._server else "not serving"
        return f"HostRoutingProxy({where}, routes={sorted(self.routes)})"

    def add_route(
        self, pattern: str, port: int, *, only_if: Callable[[str], bool] | None = None
    ) -> None:
        """Send CONNECTs for ``pattern`` (exact name or ``*.suffix``) to ``127.0.0.1:port``.

        Replaces an existing route with the same pattern.
        """
        normalized = pattern.strip().lower().rstrip(".")
        if not normalized or "*" in normalized.removeprefix("*."):
            raise ValueError(f"a route pattern is a host name or '*.suffix', got {pattern!r}")
        if not 0 < port < 65536:
            raise ValueError(f"a route needs a TCP port, got {port}")
        with self._lock:
            self._routes[normalized] = Route(normalized, port, only_if)

    def remove_route(self, pattern: str) -> None:
        """Stop routing ``pattern`` (no error if it was not routed)."""
        with self._lock:
            self._routes.pop(pattern.strip().lower().rstrip("."), None)

    @property
    def routes(self) -> dict[str, int]:
        """The current routes, pattern to loopback port."""
        with self._lock:
            return {pattern: route.port for pattern, route in self._routes.items()}

    def route_for(self, host: str) -> Route | None:
        """The route for ``host``: an exact match first, then the longest matching wildcard."""
        name = host.lower().rstrip(".")
        with self._lock:
            exact = self._routes.get(name)
            if exact is not None and "*" not in name:
                return exact
            wildcards = [r for r in self._routes.values() if r.pattern.startswith("*.")]
        matching = [r for r in wildcards if r.matches(name)]
        return max(matching, key=lambda r: len(r.pattern)) if matching else None

    def serve(self, server: ServerThread) -> RunningServer:
        """Start serving on a free 127.0.0.1 port of ``server``."""
        self._server = server.serve_tcp(self.handle)
        return self._server

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the value for ``HTTPS_PROXY``."""
        if self._server is None:
            raise RuntimeError("the proxy is not serving yet; call serve() first")
        return f"http://{self._server.host}:{self._server.port}"

    def _describe_routes(self) -> str:
        routes = self.routes
        if not routes:
            return "(none)"
        return ", ".join(f"{p} -> {_LOOPBACK}:{port}" for p, port in sorted(routes.items()))

    def _resolve(self, host: str, port: int) -> int:
        if port != 443:
            raise _Refused(
                403,
                "Forbidden",
                f"podidentity HostRoutingProxy refused CONNECT {host}:{port}: only port 443 is "
                "routed to the emulators\n",
            )
        route = self.route_for(host)
        if route is None:
            raise _Refused(
                403,
                "Forbidden",
                f"podidentity HostRoutingProxy refused CONNECT {host}:{port}: no route for "
                f"this host; nothing leaves the machine. Known routes: "
                f"{self._describe_routes()}\n",
            )
        if route.only_if is not None and not route.only_if(host):
            raise _Refused(
                502,
                "Bad Gateway",
                f"podidentity HostRoutingProxy: {host} does not resolve (route {route.pattern} "
                "exists, but the emulator does not know this name)\n",
            )
        return route.port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection (the stream handler given to ``serve_tcp``)."""
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            # The client went away or never finished its request: nothing to answer.
            pass
        finally:
            await _close(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            await _write_status(writer, 431, "Request Header Fields Too Large", "head too large\n")
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _write_status(writer, 400, "Bad Request", f"bad request line {request_line!r}\n")
            return
        method, target, _version = parts
        if method.upper() != "CONNECT":
            await _write_status(
                writer,
                405,
                "Method Not Allowed",
                f"podidentity HostRoutingProxy only tunnels HTTPS (CONNECT); refused "
                f"{method} {target}. Plain-HTTP proxying is not supported: emulators that speak "
                "http are reached directly on 127.0.0.1 (keep it in NO_PROXY)\n",
            )
            return
        try:
            host, port = _split_authority(target)
            target_port = self._resolve(host, port)
        except _Refused as refused:
            host_port = target.rpartition(":")
            self.log.append(
                ConnectRecord(
                    host=host_port[0].strip("[]").lower() or target,
                    port=int(host_port[2]) if host_port[2].isdigit() else 0,
                    allowed=False,
                    target_port=None,
                    status=refused.status,
                )
            )
            _log.warning("proxy refused CONNECT %s (%s)", target, refused.status)
            await _write_status(writer, refused.status, refused.reason, refused.body)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(_LOOPBACK, target_port)
        except OSError as err:
            self.log.append(ConnectRecord(host, port, False, target_port, 502))
            await _write_status(
                writer,
                502,
                "Bad Gateway",
                f"podidentity HostRoutingProxy: the emulator for {host} on "
                f"{_LOOPBACK}:{target_port} refused the connection ({err})\n",
            )
            return
        self.log.append(ConnectRecord(host, port, True, target_port, 200))
        try:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await self._tunnel(reader, writer, upstream_reader, upstream_writer)
        finally:
            await _close(upstream_writer)

    @staticmethod
    async def _tunnel(
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        """Pipe both ways until both sides have finished; an error on one side ends both."""
        tasks = [
            asyncio.ensure_future(_pipe(client_reader, upstream_writer)),
            asyncio.ensure_future(_pipe(upstream_reader, client_writer)),
        ]
        try:
            pending: set[asyncio.Future[None]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(not t.cancelled() and t.exception() is not None for t in done):
                    break
        finally:
            for task in tasks:
                task.cancel()
            # Collect every outcome so no "exception was never retrieved" warning escapes.
            await asyncio.gather(*tasks, return_exceptions=True)
