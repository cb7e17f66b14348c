"""The running sandbox's control endpoint: other processes ask it for a pod's environment.

A process acts as a pod when its IMDS requests reach the pod's node's token proxy *from the
pod's IP*. Only a socket bound to that address can do that, and no Azure SDK binds its source
address, so the sandbox process keeps a :class:`~podidentity.testing._token_proxies.PodRelay`
per pod (what :meth:`Sandbox.as_pod <podidentity.testing.Sandbox.as_pod>` uses): the SDK
connects to the relay on 127.0.0.1, the relay connects onward from the pod's IP.
``podidentity sandbox env POD`` asks this endpoint for that relay and the rest of the
environment, over plain HTTP on 127.0.0.1.

The endpoint has no authentication, on purpose: any local process can already bind a pod IP
(127.10.0.0/16 is loopback) and call a token proxy directly, so a secret here would protect
nothing. The sandbox is a local development tool; it must never listen beyond 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the emulators load only when a sandbox runs, not with every command
    from podidentity.testing import Sandbox

__all__ = ["ControlServer", "PodNotReady"]

logger = logging.getLogger(__name__)

_ROUTE = re.compile(r"^/v1/namespaces/(?P<namespace>[a-z0-9.-]+)/pods/(?P<name>[a-z0-9.-]+)/env$")


class PodNotReady(Exception):
    """The pod cannot be acted as: missing, not running, or not on a node with a token proxy.

    Attributes:
        status: the HTTP status the control endpoint answers with (404 or 409).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    """Serves ``POST /v1/namespaces/<ns>/pods/<name>/env`` on 127.0.0.1 for a sandbox.

    The answer is ``{"environment": {...}, "pod": {"name", "namespace", "ip", "node"}}``;
    errors are ``{"error": "<message>"}`` with 404 (no such pod) or 409 (not running).

    Args:
        sandbox: a started sandbox whose token proxies run.
        environment: the variables every pod shares (emulated Azure, CA bundle); the pod's
            ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` is added per request.
    """

    def __init__(self, sandbox: Sandbox, environment: Mapping[str, str]) -> None:
        self._sandbox = sandbox
        self._environment = dict(environment)
        self._lock = threading.Lock()
        # (namespace, name) -> (uid, ip, relay): a pod recreated under the same name gets a
        # new IP, so its old relay is closed rather than reused.
        self._relays: dict[tuple[str, str], tuple[str, str, Any]] = {}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._httpd is None:
            raise RuntimeError("the control server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ControlServer:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = _ROUTE.match(self.path)
                if match is None:
                    self._answer(404, {"error": f"no route {self.path}"})
                    return
                try:
                    answer = server.pod_environment(match["name"], match["namespace"])
                except PodNotReady as err:
                    self._answer(err.status, {"error": str(err)})
                    return
                except Exception as err:
                    logger.exception("control request %s failed", self.path)
                    self._answer(500, {"error": f"the sandbox failed: {err}"})
                    return
                self._answer(200, answer)

            def _answer(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("control: " + format, *args)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="podidentity-sandbox-control", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every relay."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            relays, self._relays = list(self._relays.values()), {}
        for _, _, relay in relays:
            relay.close()

    def pod_environment(self, name: str, namespace: str) -> dict[str, Any]:
        """The environment acting as pod ``namespace/name``, with a relay kept for it.

        Raises:
            PodNotReady: the pod does not exist (404) or is not running (409).
        """
        pod = self._running_pod(name, namespace)
        uid, ip, node = pod["metadata"]["uid"], pod["status"]["podIP"], pod["spec"]["nodeName"]
        with self._lock:
            known = self._relays.get((namespace, name))
            if known is not None and known[:2] == (uid, ip):
                relay = known[2]
            else:
                if known is not None:
                    known[2].close()
                relay = self._sandbox.pod_relay(name, namespace, timeout=0)
                self._relays[(namespace, name)] = (uid, ip, relay)
        logger.info("acting as pod %s/%s (IP %s on node %s)", namespace, name, ip, node)
        return {
            "environment": {
                **self._environment,
                "AZURE_POD_IDENTITY_AUTHORITY_HOST": relay.url,
            },
            "pod": {"name": name, "namespace": namespace, "ip": ip, "node": node},
        }

    def _running_pod(self, name: str, namespace: str) -> dict[str, Any]:
        from podidentity.testing.kube import APIError

        try:
            pod = self._sandbox.kube.get("pods", name, namespace=namespace)
        except APIError as err:
            if err.code == 404:
                raise PodNotReady(
                    404,
                    f"pod {namespace}/{name} does not exist "
                    f"(list them: kubectl get pods -n {namespace})",
                ) from err
            raise
        status = pod.get("status", {})
        phase = status.get("phase")
        if pod["metadata"].get("deletionTimestamp"):
            raise PodNotReady(409, f"pod {namespace}/{name} is being deleted")
        if phase != "Running" or not status.get("podIP") or not pod["spec"].get("nodeName"):
            raise PodNotReady(
                409,
                f"pod {namespace}/{name} is {phase or 'not started'}, not Running; wait for it "
                f"(kubectl wait --for=condition=Ready pod/{name} -n {namespace})",
            )
        if pod["spec"].get("hostNetwork"):
            # A host-network pod shares the node's address; there is no pod IP to act from.
            raise PodNotReady(
                409, f"pod {namespace}/{name} uses the host network: it has no pod identity"
            )
        return dict(pod)
