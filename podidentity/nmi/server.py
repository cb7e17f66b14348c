"""Serving a :class:`~podidentity.nmi.TokenProxy`: :class:`TokenProxyServer` (uvicorn).

Two listeners: the token endpoint (default ``127.0.0.1:2579``, where the node's DNAT rule sends
pods' IMDS traffic) and the probe port (``/healthz``, ``/readyz``, ``/metrics``; default
``127.0.0.1:8085``), so a scrape or a probe never queues behind token requests and the probe
port can be exposed without exposing tokens.

uvicorn's proxy-header support is turned off: the caller is the TCP peer, and a
``X-Forwarded-For`` or ``Forwarded`` header must never change who that is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from podidentity.nmi.app import TokenProxy

__all__ = ["DEFAULT_PORT", "DEFAULT_PROBE_PORT", "TokenProxyServer"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 2579
"""aad-pod-identity NMI's port, where the iptables DNAT rule points."""
DEFAULT_PROBE_PORT = 8085
"""Probes and metrics."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Without TCP_NODELAY a response written as headers + body waits for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _server(app: Callable[..., Any], sock_timeout_keep_alive: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        lifespan="off",
        interface="asgi3",  # a bound method would be taken for ASGI 2 by auto-detection
        proxy_headers=False,  # the caller is the TCP peer, never a header
        server_header=False,
        date_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=sock_timeout_keep_alive,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


class TokenProxyServer:
    """Serves one :class:`~podidentity.nmi.TokenProxy` and its probes with uvicorn.

    Use :meth:`start` / :meth:`stop` (or ``async with``), or :meth:`serve` to run until
    cancelled. Ports ``0`` pick free ports; :attr:`port` and :attr:`probe_port` say which.

    Args:
        proxy: the proxy to serve (started and stopped with the server).
        host: the token endpoint's address.
        port: the token endpoint's port.
        probe_host: the probe port's address.
        probe_port: the probe port.
    """

    def __init__(
        self,
        proxy: TokenProxy,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        probe_host: str = "127.0.0.1",
        probe_port: int = DEFAULT_PROBE_PORT,
    ) -> None:
        self.proxy = proxy
        self.host = host
        self.probe_host = probe_host
        self._requested = (port, probe_port)
        self.port = port
        self.probe_port = probe_port
        self._servers: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return (
            f"TokenProxyServer(node={self.proxy.node_name!r}, {self.host}:{self.port}, "
            f"probes {self.probe_host}:{self.probe_port})"
        )

    @property
    def url(self) -> str:
        """``http://host:port`` of the token endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def probe_url(self) -> str:
        """``http://host:port`` of the probe port."""
        return f"http://{self.probe_host}:{self.probe_port}"

    async def start(self) -> None:
        """Bind both ports, start the proxy's watches and begin serving; returns when listening."""
        if self._servers:
            return
        main = _listen(self.host, self._requested[0])
        try:
            probes = _listen(self.probe_host, self._requested[1])
        except OSError:
            main.close()
            raise
        self.port = main.getsockname()[1]
        self.probe_port = probes.getsockname()[1]
        await self.proxy.start()
        for app, sock in ((self.proxy, main), (self.proxy.probes, probes)):
            server = _server(app, 30)
            self._servers.append(server)
            self._tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
        while not all(s.started for s in self._servers):
            for task in self._tasks:
                if task.done():
                    task.result()  # a server that failed to start raises here
            await asyncio.sleep(0.005)
        logger.info("token proxy for node %s listening on %s", self.proxy.node_name, self.url)

    async def stop(self) -> None:
        """Stop serving, then stop the proxy."""
        for server in self._servers:
            server.should_exit = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in self._tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._servers.clear()
        self._tasks.clear()
        await self.proxy.stop()

    async def serve(self) -> None:
        """Serve until cancelled."""
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def __aenter__(self) -> TokenProxyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
