"""``KubeEmulator``: the API server on 127.0.0.1 over HTTP or HTTPS, with test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from podidentity.crds import load_crds
from podidentity.testing._clock import Clock, system_clock
from podidentity.testing._faults import Fault, FaultInjector, RequestLog, with_faults
from podidentity.testing._pki import CertificateAuthority
from podidentity.testing._server import RunningServer, ServerThread, TLSFiles

from . import _cluster, _tokens
from ._apiserver import APIServer
from ._errors import APIError
from ._identities import ServiceAccountIdentity, grant_rules
from ._kubeconfig import InClusterConfig, write_in_cluster, write_kubeconfig
from ._rbac import RBACAuthorizer
from ._rest import RestApp
from ._store import Watcher

__all__ = ["DEFAULT_POD_START_DELAY", "KubeEmulator"]

#: Default real seconds per step of a pod's start: small, but never "at once".
DEFAULT_POD_START_DELAY = 0.01

_T = TypeVar("_T")
#: A query string holding a true ``watch`` parameter, read as the API server reads booleans:
#: present and neither ``0`` nor ``false`` (any case); ``?watch`` alone is true.
_WATCH_QUERY = r"(?:^|&)watch(?:=(?!(?i:0|false)(?:&|$))[^&]*)?(?:&|$)"
#: verb -> (HTTP method, whether the path names an object, query regex or None).
_VERBS: dict[str, tuple[str, bool, str | None]] = {
    "get": ("GET", True, None),
    "list": ("GET", False, rf"^(?!.*{_WATCH_QUERY})"),
    "watch": ("GET", False, _WATCH_QUERY),
    "create": ("POST", False, None),
    "update": ("PUT", True, None),
    "patch": ("PATCH", True, None),
    "delete": ("DELETE", True, None),
    "deletecollection": ("DELETE", False, None),
}


def _resource_path(resource: str, group: str | None, named: bool | None) -> str:
    """A regex for the URL paths of ``resource``: collection, object, or both (``None``).

    Namespaces need care: ``/api/v1/namespaces/x/pods`` is a pod list, not a namespace, so a
    namespace's only subresources are ``status`` and ``finalize``.
    """
    if group is None:
        prefix = r"/(api/v1|apis/[^/]+/[^/]+)"
    elif group == "":
        prefix = r"/api/v1"
    else:
        prefix = rf"/apis/{re.escape(group)}/[^/]+"
    if resource == "namespaces":
        scope, subresource = "", r"(/(status|finalize))?"
    else:
        scope, subresource = r"(/namespaces/[^/]+)?", r"(/[^/]+)?"
    collection = rf"^{prefix}{scope}/{re.escape(resource)}"
    if named is None:
        return rf"{collection}(/[^/]+{subresource})?$"
    return rf"{collection}/[^/]+{subresource}$" if named else rf"{collection}$"


def _pod_is_running(pod: Mapping[str, Any] | None) -> bool:
    """Whether a pod has been started: phase ``Running``, a ``podIP`` and ``Ready=True``."""
    if pod is None:
        return False
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and bool(status.get("podIP")) and ready


def _error_body(status: int, message: str) -> tuple[bytes, str]:
    # An injected fault answers in the shape a real refusal with that status has.
    response = APIError(status, message=message).response()
    return response.body, response.content_type


class KubeEmulator:
    """An in-memory Kubernetes API server for tests, served on 127.0.0.1.

    Use it as a context manager, sync (``with KubeEmulator() as kube:``) or async
    (``async with KubeEmulator() as kube:``); the server always runs in its own thread.

    Args:
        tls: serve HTTPS with a generated CA (``ca_bundle``); in-cluster config needs it.
        auth: require a bearer token (default: on with ``tls``, off without). The admin
            ``token`` always works; other tokens go to the authenticator plug-in.
        history_size: events kept per resource for watch resumes (older: 410 Expired).
        watch_queue_size: events a watcher may lag before its watch is closed with 410.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        install_crds: create podidentity's CRDs (``podidentity.crds``) on start.
        plugins: run the cluster simulation (:attr:`cluster`: scheduler, kubelet,
            service-account controller) and serve service-account tokens
            (:attr:`service_accounts`: TokenRequest, TokenReview, OIDC discovery).
        clock: the server's time in epoch seconds (:class:`~podidentity.testing.Clock`), for
            token issuance and review, grace periods and ``deletionTimestamp``; a
            :class:`~podidentity.testing.ManualClock` moves time without sleeping. One clock
            object can drive the Azure emulator too.
        pod_start_delay: real seconds the scheduler and the kubelet take for each step of a
            pod's start (binding, then three status writes); ``0`` runs the steps back to
            back, still as separate writes. Also settable later (:attr:`pod_start_delay`).
        authorization: authorize every HTTP request by RBAC (403 ``Forbidden`` otherwise), as
            a real cluster does. The admin token is in ``system:masters`` and may do
            everything; service-account tokens get what their Roles and bindings grant.
            ``False`` allows every authenticated request. The Python-level helpers
            (:meth:`create`, :meth:`get` ...) always act as the admin.
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        auth: bool | None = None,
        history_size: int = 10_000,
        watch_queue_size: int = 50_000,
        bookmark_interval: float = 5.0,
        install_crds: bool = True,
        plugins: bool = True,
        clock: Clock = system_clock,
        pod_start_delay: float = DEFAULT_POD_START_DELAY,
        authorization: bool = True,
    ) -> None:
        if pod_start_delay < 0:
            raise ValueError(f"pod_start_delay must be 0 or more seconds, not {pod_start_delay}")
        self.tls = tls
        self.clock = clock
        self.auth = tls if auth is None else auth
        self.token = secrets.token_urlsafe(24)
        #: Real seconds per step of a pod's start (binding, then each kubelet status write).
        self.pod_start_delay = pod_start_delay
        self.apiserver = APIServer(
            history_size=history_size, watch_queue_size=watch_queue_size, clock=clock
        )
        self.authorization = authorization
        if authorization:
            self.apiserver.set_authorizer(RBACAuthorizer(self.apiserver.store))
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self._install_crds = install_crds
        self._plugins = plugins
        self._bookmark_interval = bookmark_interval
        self._thread = ServerThread("podidentity-kube")
        self._server: RunningServer | None = None
        self._workdir: Path | None = None
        self._ca: CertificateAuthority | None = None
        self.ca_bundle: Path | None = None
        self.kubeconfig_path: Path | None = None
        self.app: RestApp | None = None
        self._cluster: _cluster.Cluster | None = None
        self._service_accounts: _tokens.ServiceAccountTokens | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KubeEmulator:
        """Start serving (idempotent); returns ``self``."""
        if self._server is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="podidentity-kube-"))
        tls_files = None
        if self.tls:
            self._ca = CertificateAuthority("podidentity kube emulator CA")
            issued = self._ca.issue_server(["127.0.0.1", "localhost", "kubernetes.default.svc"])
            cert_file, key_file = issued.write(self._workdir, "apiserver")
            tls_files = TLSFiles(cert_file=cert_file, key_file=key_file)
            self.ca_bundle = self._workdir / "ca.crt"
            self.ca_bundle.write_bytes(self._ca.cert_pem)
        self.app = RestApp(
            self.apiserver,
            admin_token=self.token,
            require_auth=self.auth,
            bookmark_interval=self._bookmark_interval,
        )
        wrapped = with_faults(
            self.app,
            faults=self.faults,
            log=self.requests,
            error_body=_error_body,
            controls={
                "drop-watches": lambda _spec: self._on_loop_sync(self._drop_watches),
                "expire-watch-window": lambda _spec: self._on_loop_sync(self._expire),
                "bookmark": lambda _spec: self._on_loop_sync(self._bookmark),
            },
        )
        self._thread.start()
        self._server = self._thread.serve_asgi(wrapped, tls=tls_files)
        self.app.address = f"127.0.0.1:{self._server.port}"
        self.kubeconfig_path = write_kubeconfig(
            self._workdir / "kubeconfig",
            server=self.url,
            token=self.token,
            ca_path=self.ca_bundle,
        )
        if self._plugins:
            self._install_plugins()
        if self._install_crds:
            self._create_podidentity_crds()
        return self

    def _install_plugins(self) -> None:
        # Run once the server listens, so ``url`` is known (the OIDC issuer is derived from it).
        async def install() -> None:
            self._cluster = await _cluster.install(self)
            self._service_accounts = _tokens.install(self)

        self.call(install())

    @property
    def cluster(self) -> _cluster.Cluster:
        """The scheduler and kubelet simulation: ``add_node``, ``set_node_ready``, addresses."""
        if self._cluster is None:
            raise RuntimeError(
                "the cluster simulation is not running: start the emulator, and do not pass "
                "plugins=False"
            )
        return self._cluster

    @property
    def service_accounts(self) -> _tokens.ServiceAccountTokens:
        """Service-account tokens: ``issue_token``, the OIDC issuer and its JWKS."""
        if self._service_accounts is None:
            raise RuntimeError(
                "service-account tokens are not served: start the emulator, and do not pass "
                "plugins=False"
            )
        return self._service_accounts

    def _create_podidentity_crds(self) -> None:
        for crd in load_crds():
            self.create(crd)

    def stop(self) -> None:
        """Stop serving and remove the generated files."""
        if self._server is None:
            return
        self._thread.stop()
        self._server = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> KubeEmulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ addresses and files

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; use it as a context manager")
        return self._server.url

    @property
    def port(self) -> int:
        """The listening port."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.port

    @property
    def workdir(self) -> Path:
        """Directory holding the generated CA, kubeconfig and in-cluster files."""
        if self._workdir is None:
            raise RuntimeError("the emulator is not running")
        return self._workdir

    def in_cluster(
        self, *, token: str | None = None, namespace: str = "default"
    ) -> InClusterConfig:
        """Files and environment for ``load_incluster_config`` (HTTPS mode only).

        ``token`` defaults to the admin token (pass a service-account token to act as a pod).
        """
        if self._ca is None:
            raise RuntimeError("in-cluster config needs KubeEmulator(tls=True)")
        return write_in_cluster(
            self.workdir / f"in-cluster-{secrets.token_hex(4)}",
            host="127.0.0.1",
            port=self.port,
            token=token or self.token,
            ca_pem=self._ca.cert_pem,
            namespace=namespace,
        )

    def service_account(
        self,
        name: str,
        *,
        namespace: str = "default",
        rules: Sequence[Mapping[str, Any]] = (),
        cluster_rules: Sequence[Mapping[str, Any]] = (),
        expiration_seconds: int = 3600,
    ) -> ServiceAccountIdentity:
        """Act as a service account: create it if missing, grant rules, mint a token.

        ``rules`` (RBAC ``PolicyRule`` dicts) are granted in ``namespace`` through a Role and
        RoleBinding, ``cluster_rules`` everywhere through a ClusterRole and
        ClusterRoleBinding; both add to what the account already has. Needs the token
        plug-in (do not pass ``plugins=False``)::

            pods = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
            robot = kube.service_account("robot", rules=[pods])
            client = kubernetes.config.new_client_from_config(str(robot.kubeconfig_path))

        Raises:
            ValueError: a rule is not a mapping with ``verbs``.
            APIError: the namespace does not exist.
        """
        existing = self.list("serviceaccounts", namespace=namespace)
        if not any(sa["metadata"]["name"] == name for sa in existing):
            self.create(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": namespace},
                }
            )
        grant_rules(self, namespace, name, rules=rules, cluster_rules=cluster_rules)
        token = self.service_accounts.issue_token(
            namespace, name, expiration_seconds=expiration_seconds
        )
        path = write_kubeconfig(
            self.workdir / f"kubeconfig-{namespace}-{name}-{secrets.token_hex(4)}",
            server=self.url,
            token=token,
            ca_path=self.ca_bundle,
            namespace=namespace,
        )
        return ServiceAccountIdentity(namespace, name, token, path)

    def kubeconfig_for(
        self,
        service_account: str,
        *,
        namespace: str = "default",
        rules: Sequence[Mapping[str, Any]] = (),
        cluster_rules: Sequence[Mapping[str, Any]] = (),
    ) -> Path:
        """A kubeconfig acting as ``service_account`` (see :meth:`service_account`)."""
        return self.service_account(
            service_account, namespace=namespace, rules=rules, cluster_rules=cluster_rules
        ).kubeconfig_path

    # ------------------------------------------------------------------ running on the loop

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float | None = 30.0) -> _T:
        """Run a coroutine on the serving loop and return its result (from any thread)."""
        return self._thread.call(coro, timeout)

    def _on_loop_sync(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return run()

    # ------------------------------------------------------------------ object helpers

    def create(self, obj: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create an object from a manifest dict (its ``status`` is kept, for test setup)."""
        resource = self.apiserver.resource_for_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        return self.call(
            self.apiserver.create(resource, obj, namespace=namespace, keep_status=True)
        )

    def apply_yaml(self, text: str, *, namespace: str | None = None) -> list[dict[str, Any]]:
        """Create every document of a YAML manifest; returns the created objects."""
        return [self.create(doc, namespace=namespace) for doc in yaml.safe_load_all(text) if doc]

    def get(self, resource: str, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        """An object by resource (``pods``, ``azureidentities``, ``leases.coordination.k8s.io``)."""
        return self.call(self.apiserver.get(resource, name, namespace=namespace))

    def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Objects of a resource, optionally in one namespace and selected."""
        return self.call(
            self.apiserver.list(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
        )

    def update(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        """Replace an object (``status`` with ``subresource="status"``)."""
        resource = self.apiserver.resource_for_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        return self.call(self.apiserver.update(resource, obj, subresource=subresource))

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str = "kube-emulator",
    ) -> dict[str, Any]:
        """Patch an object (``patch_type``: ``merge``, ``json``, ``strategic``, ``apply``).

        ``field_manager`` names the applier of an ``apply`` (server-side apply).
        """
        return self.call(
            self.apiserver.patch(
                resource,
                name,
                patch,
                namespace=namespace,
                patch_type=patch_type,
                subresource=subresource,
                field_manager=field_manager,
            )
        )

    def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> dict[str, Any]:
        """Delete an object, as ``DELETE`` with these ``DeleteOptions`` does.

        It lingers with a ``deletionTimestamp`` while it has finalizers, and a pod bound to a
        node while its grace period runs (``grace_period_seconds=0`` deletes it at once).
        """
        return self.call(
            self.apiserver.delete(
                resource,
                name,
                namespace=namespace,
                grace_period_seconds=grace_period_seconds,
                propagation_policy=propagation_policy,
            )
        )

    def wait_for(
        self,
        resource: str,
        name: str,
        condition: Callable[[dict[str, Any] | None], bool],
        *,
        namespace: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any] | None:
        """Wait until ``condition(object)`` holds (``object`` is ``None`` while it does not exist).

        Woken by the object's own changes (no polling). Returns the object (or ``None``).

        Raises:
            TimeoutError: ``timeout`` real seconds passed first; the message shows the last state.
        """
        return self.call(
            self._wait_for(resource, name, condition, namespace, timeout), timeout=None
        )

    async def _wait_for(
        self,
        resource: str,
        name: str,
        condition: Callable[[dict[str, Any] | None], bool],
        namespace: str | None,
        timeout: float,
    ) -> dict[str, Any] | None:
        rtype = self.apiserver.resource(resource)
        store = self.apiserver.store.of(rtype)
        key = ((namespace or "") if rtype.namespaced else "", name)
        watcher = Watcher(namespace=None, predicate=None, max_queue=1 << 30)
        store.watchers.add(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                watcher.queue.clear()
                watcher.wakeup.clear()
                stored = store.objects.get(key)
                current = None if stored is None else stored.copy()
                if condition(current):
                    return current
                remaining = deadline - loop.time()
                if remaining <= 0:
                    state = "absent" if current is None else json.dumps(current.get("status"))
                    raise TimeoutError(
                        f"{rtype.plural} {key[0] + '/' if key[0] else ''}{name} did not reach the "
                        f"awaited state within {timeout} s; last status: {state}"
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(watcher.wakeup.wait(), timeout=remaining)
        finally:
            store.watchers.discard(watcher)

    def wait_for_pod_running(
        self, name: str, *, namespace: str = "default", timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the scheduler and the kubelet have started a pod; returns it.

        "Started" is what controllers look for: phase ``Running``, a ``podIP`` and
        ``Ready=True``.

        Raises:
            TimeoutError: not Running within ``timeout`` real seconds (a pod that cannot be
                scheduled says why in the message).
        """
        pod = self.wait_for("pods", name, _pod_is_running, namespace=namespace, timeout=timeout)
        assert pod is not None
        return pod

    async def wait_for_pod_running_async(
        self, name: str, *, namespace: str = "default", timeout: float = 30.0
    ) -> dict[str, Any]:
        """:meth:`wait_for_pod_running` for asyncio tests (does not block their loop)."""
        return await asyncio.to_thread(
            self.wait_for_pod_running, name, namespace=namespace, timeout=timeout
        )

    def wait_for_deletion(
        self, resource: str, name: str, *, namespace: str | None = None, timeout: float = 30.0
    ) -> None:
        """Wait until an object is gone (finalizers removed, grace period over)."""
        self.wait_for(resource, name, lambda obj: obj is None, namespace=namespace, timeout=timeout)

    def settle(self) -> None:
        """Wait until plug-in observers have handled every change so far.

        Also fires what the clock has made due (grace periods after ``clock.advance``) and
        lets the garbage collector finish; pods that can start are started.
        """

        async def settle() -> None:
            while True:
                await self.apiserver.settle()
                starting = self._cluster.starting() if self._cluster is not None else []
                if not starting:
                    return
                await asyncio.gather(*starting, return_exceptions=True)

        self.call(settle())

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        resource: str,
        verb: str | None = None,
        *,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        group: str | None = None,
        message: str = "injected fault",
    ) -> Fault:
        """Fail the next ``count`` requests for ``resource`` (plural) and ``verb``.

        Verbs are told apart like the API server does: ``get`` names an object, ``list`` and
        ``watch`` do not and differ by the ``watch`` query parameter; ``verb=None`` matches
        every request to the resource. ``group=None`` matches the resource in any group.
        A 429 carries ``details.retryAfterSeconds`` (``retry_after`` rounded up, else 1) as
        the real server's does; the ``Retry-After`` header is sent only with ``retry_after``.
        """
        method, query = None, None
        named: bool | None = None
        if verb is not None:
            if verb not in _VERBS:
                raise ValueError(f"unknown verb {verb!r}: use one of {', '.join(_VERBS)}")
            method, named, query = _VERBS[verb]
        body = None
        if status == 429:
            # A real 429 Status says how long to wait in details.retryAfterSeconds (and the
            # Retry-After header, which is only sent when retry_after is given).
            seconds = 1 if retry_after is None else math.ceil(retry_after)
            details = {"retryAfterSeconds": seconds} if seconds > 0 else {}  # omitempty
            body = APIError(429, message=message, details=details).response().body
        return self.faults.fail_next(
            count,
            status=status,
            method=method,
            path=_resource_path(resource, group, named),
            query=query,
            retry_after=retry_after,
            message=message,
            body=body,
        )

    def _drop_watches(self) -> dict[str, Any]:
        watchers = list(self.apiserver.store.watchers())
        for watcher in watchers:
            watcher.close()
        return {"dropped": len(watchers)}

    def _expire(self) -> dict[str, Any]:
        self.apiserver.store.expire_all()
        return {"resourceVersion": str(self.apiserver.store.rv)}

    def _bookmark(self) -> dict[str, Any]:
        watchers = list(self.apiserver.store.watchers())
        for watcher in watchers:
            watcher.bookmark_requested = True
            watcher.wakeup.set()
        return {"watchers": len(watchers)}

    def drop_watches(self) -> int:
        """End every open watch stream (clients see the stream close and re-watch)."""
        return int(self.call(self._on_loop_sync(self._drop_watches))["dropped"])

    def expire_watch_window(self) -> None:
        """Forget the event history: resuming a watch from before now gets 410 Expired."""
        self.call(self._on_loop_sync(self._expire))

    def send_bookmarks(self) -> None:
        """Send a BOOKMARK now on every watch that allows bookmarks."""
        self.call(self._on_loop_sync(self._bookmark))

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion."""
        return str(self.apiserver.store.rv)
