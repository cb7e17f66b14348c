"""Running a controller as a program does: :class:`ControllerRunner`.

One place wires a :class:`~podidentity.reconciler.Controller` for real use: its ARM client
reports to the controller's metrics, and its probes and metrics (:func:`probe_app`) are served
over HTTP with uvicorn. ``podidentity mic`` and :meth:`podidentity.testing.Sandbox.start_controller`
both run controllers through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import uvicorn

from podidentity.azure import ArmClient, AsyncTokenCredential, cloud_named
from podidentity.reconciler.controller import Controller
from podidentity.reconciler.health import probe_app
from podidentity.reconciler.metrics import ControllerMetrics
from podidentity.reconciler.settings import ControllerSettings

__all__ = ["ControllerRunner"]

_log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the library installs none (the program decides)."""

    def install_signal_handlers(self) -> None:  # uvicorn before 0.29
        """Install nothing."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn 0.29 and later
        """Capture nothing."""
        yield


class ControllerRunner:
    """A :class:`Controller` with its ARM client, probe server and metrics, run as one unit.

    Build it anywhere (no event loop needed), then ``await runner.run()`` until
    :meth:`stop`. It closes what it created (the ARM client, the probe server); the Kubernetes
    client, the credential and ``http_client`` stay the caller's.

    Args:
        api_client: a ``kubernetes.aio`` ``ApiClient``
            (:func:`~podidentity.kube.load_api_client`).
        credential: an azure-core ``AsyncTokenCredential`` for ARM; ``None`` only with
            ``mode="managed"``.
        settings: the controller's settings (defaults when ``None``).
        http_client: an ``httpx.AsyncClient`` for ARM (a proxy, a CA bundle); by default the
            ARM client makes one that follows ``HTTPS_PROXY`` and ``SSL_CERT_FILE``.
        arm_endpoint: send ARM requests here instead of the cloud's Resource Manager endpoint
            (Azure Stack, a test double); tokens are still asked for the cloud's audience.
        probe_host: the address to serve ``/healthz``, ``/readyz`` and ``/metrics`` on.
        probe_port: their port; ``None`` serves nothing, ``0`` picks a free port
            (:attr:`probe_url` says which once running).
    """

    def __init__(
        self,
        api_client: Any,
        credential: AsyncTokenCredential | None,
        settings: ControllerSettings | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        arm_endpoint: str | None = None,
        probe_host: str = "127.0.0.1",
        probe_port: int | None = None,
    ) -> None:
        chosen = settings or ControllerSettings()
        self.metrics = ControllerMetrics()
        self._arm: ArmClient | None = None
        if chosen.mode == "standard" and credential is not None:
            cloud = cloud_named(chosen.cloud)
            if arm_endpoint:
                cloud = attrs.evolve(cloud, resource_manager=arm_endpoint.rstrip("/"))
            self._arm = ArmClient(
                credential, cloud=cloud, http_client=http_client, observer=self.metrics.observe_arm
            )
        self.controller = Controller(
            api_client, credential, chosen, arm=self._arm, metrics=self.metrics
        )
        self.probe_host = probe_host
        self._probe_port = probe_port
        self._probes: uvicorn.Server | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self.probe_url: str | None = None
        """``http://host:port`` of the probes once they are served, else ``None``."""

    def __repr__(self) -> str:
        return f"ControllerRunner({self.controller.holder_identity!r}, probes={self.probe_url})"

    def stop(self) -> None:
        """Ask the controller to stop (from any thread; idempotent); :meth:`run` then returns."""
        self.controller.stop()

    async def run(self) -> None:
        """Serve the probes, run the controller until :meth:`stop`, then clean up.

        Raises:
            OSError: the probe port cannot be bound.
        """
        try:
            if self._probe_port is not None:
                await self._serve_probes(self._probe_port)
            await self.controller.run()
        finally:
            # Stopped: /healthz already answers 503; now close the port and ARM's connections.
            await self._stop_probes()
            if self._arm is not None:
                await self._arm.aclose()

    async def _serve_probes(self, port: int) -> None:
        # Bound here, not by uvicorn: its bind failure is a sys.exit(), ours an OSError.
        family = socket.AF_INET6 if ":" in self.probe_host else socket.AF_INET
        sock = socket.create_server((self.probe_host, port), family=family)
        sock.setblocking(False)
        config = uvicorn.Config(
            probe_app(self.controller),
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=2,
        )
        server = _Server(config)
        self._probes = server
        self._probe_task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if self._probe_task.done():
                sock.close()
                raise OSError(f"the probe server on {self.probe_host}:{port} did not start")
            await asyncio.sleep(0.005)
        bound = sock.getsockname()
        host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.probe_url = f"http://{host}:{bound[1]}"
        _log.info("probes and metrics on %s (/healthz, /readyz, /metrics)", self.probe_url)

    async def _stop_probes(self) -> None:
        server, task = self._probes, self._probe_task
        self._probes = self._probe_task = None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
