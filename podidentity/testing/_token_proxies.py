"""Token proxies for a sandbox: one per node, and relays that make a test process "be" a pod.

:class:`TokenProxyFleet` runs a :class:`~podidentity.nmi.TokenProxyServer` per node of a
:class:`~podidentity.testing.Sandbox` (each talking to its own node's IMDS, watching the
sandbox's cluster with the admin kubeconfig) on one background event loop.

:class:`PodRelay` plays the node's iptables DNAT rule: it accepts connections on 127.0.0.1 and
connects onward to the node's proxy **from the pod's IP** (``bind((pod_ip, 0))``; pod IPs are
in 127.10.0.0/16, which Linux routes to loopback), so the proxy learns who is calling from the
TCP source address alone, exactly as on a node. No header is added or read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podidentity.kube import load_api_client
from podidentity.nmi import TokenProxy, TokenProxyServer, TokenProxySettings
from podidentity.testing._server import ServerThread
from podidentity.testing.azure._proxy import HostRoutingProxy

__all__ = ["PodRelay", "TokenProxyFleet"]

logger = logging.getLogger(__name__)


class PodRelay:
    """Accepts on ``127.0.0.1:<port>`` and connects to ``target`` from ``source_ip``.

    Runs on ``thread``'s loop; :meth:`close` stops it and drops its connections.
    """

    def __init__(self, thread: ServerThread, source_ip: str, target: tuple[str, int]) -> None:
        self.source_ip = source_ip
        self.target = target
        self._thread = thread
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def __repr__(self) -> str:
        host, port = self.target
        return f"PodRelay(127.0.0.1:{self.port} -> {host}:{port} from {self.source_ip})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: what a pod's SDK is pointed at."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PodRelay:
        """Start listening."""

        async def start() -> asyncio.Server:
            return await asyncio.start_server(self._handle, host="127.0.0.1", port=0)

        self._server = self._thread.call(start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    *self.target, local_addr=(self.source_ip, 0)
                )
            except OSError as err:
                logger.warning("relay from %s to %s failed: %s", self.source_ip, self.target, err)
                return
            self._writers.add(up_writer)
            try:
                # The CONNECT proxy's tunnel: pipes both ways until both sides are done.
                await HostRoutingProxy._tunnel(reader, writer, up_reader, up_writer)
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def close(self) -> None:
        """Stop listening and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return

        async def close() -> None:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

        with contextlib.suppress(RuntimeError):
            self._thread.call(close())


class TokenProxyFleet:
    """One token proxy per node, on one background loop (see the module doc).

    Args:
        kubeconfig: the cluster's admin kubeconfig.
        imds_url: gives a node's IMDS URL from its name.
        settings: the proxies' settings.
        credential_options: azure-identity keyword arguments (CA bundle, routing proxy).
    """

    def __init__(
        self,
        *,
        kubeconfig: Path,
        imds_url: Callable[[str], str],
        settings: TokenProxySettings,
        credential_options: Mapping[str, Any],
    ) -> None:
        self.settings = settings
        self._kubeconfig = kubeconfig
        self._imds_url = imds_url
        self._credential_options = dict(credential_options)
        self._thread = ServerThread("podidentity-token-proxies")
        self._api: Any = None
        self._servers: dict[str, TokenProxyServer] = {}
        self._relays: list[PodRelay] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenProxyFleet(nodes={sorted(self._servers)})"

    @property
    def thread(self) -> ServerThread:
        """The loop the proxies and relays run on."""
        return self._thread

    def start(self) -> None:
        """Start the loop and the shared Kubernetes client."""
        self._thread.start()

        self._api = self._thread.call(load_api_client(self._kubeconfig))

    def add(self, node: str) -> TokenProxyServer:
        """Start the proxy of ``node`` (no-op if it runs); returns its server."""
        with self._lock:
            existing = self._servers.get(node)
            if existing is not None:
                return existing
            api = self._api
            if api is None:
                raise RuntimeError("the token proxies are not started")
            imds_url = self._imds_url(node)

            async def start() -> TokenProxyServer:
                proxy = TokenProxy.connect(
                    node,
                    api=api,
                    imds_url=imds_url,
                    settings=self.settings,
                    credential_options=self._credential_options,
                )
                server = TokenProxyServer(proxy, port=0, probe_port=0)
                await server.start()
                return server

            server = self._thread.call(start())
            self._servers[node] = server
            return server

    def server(self, node: str) -> TokenProxyServer | None:
        """The running proxy server of ``node``, if any."""
        with self._lock:
            return self._servers.get(node)

    @property
    def servers(self) -> dict[str, TokenProxyServer]:
        """Every running proxy server, by node name."""
        with self._lock:
            return dict(self._servers)

    def relay(self, node: str, source_ip: str) -> PodRelay:
        """A relay to ``node``'s proxy that connects from ``source_ip`` (close it when done)."""
        server = self.add(node)
        relay = PodRelay(self._thread, source_ip, (server.host, server.port)).start()
        with self._lock:
            self._relays.append(relay)
        return relay

    def stop(self) -> None:
        """Stop every relay and proxy, close the client, end the loop."""
        with self._lock:
            relays, self._relays = self._relays, []
            servers, self._servers = list(self._servers.values()), {}
            api, self._api = self._api, None
        for relay in relays:
            relay.close()
        try:
            for server in servers:
                with contextlib.suppress(Exception):
                    self._thread.call(server.stop())
            if api is not None:
                with contextlib.suppress(Exception):
                    self._thread.call(api.close())
        finally:
            self._thread.stop()
