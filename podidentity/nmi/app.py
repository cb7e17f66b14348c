"""The token proxy of one node, as an ASGI application: :class:`TokenProxy`.

It answers where IMDS would (traffic from pods to ``169.254.169.254:80`` is DNAT'd to it), works
out which pod is calling from the TCP peer address (never from a header) or, more strongly,
from the pod's projected service-account token, and hands out a token of one of the pod's own
identities, from its cache or from the right upstream. Decisions are the pure functions of
:mod:`podidentity.nmi.requests` and :mod:`podidentity.nmi.callers`; failures become HTTP
answers in :mod:`podidentity.nmi.responses` only.

Probes and metrics are a separate ASGI app, :attr:`TokenProxy.probes`, for a separate port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podidentity.azure.imds import ImdsClient
from podidentity.azure.tokens import (
    AccessToken,
    PropagationPacer,
    retry_within,
    token_object_id,
)
from podidentity.errors import (
    AssignmentPendingError,
    CallerNotIdentifiedError,
    IdentityNotPermittedError,
)
from podidentity.kube import KubeClient
from podidentity.kube.serviceaccounts import ReviewedToken, review_token
from podidentity.models import AzureIdentity, IdentityType
from podidentity.nmi.cache import CacheKey, TokenCache
from podidentity.nmi.callers import (
    NodeView,
    PodInfo,
    caller_for_address,
    identities_of,
    is_excepted,
    not_permitted,
    select_identities,
)
from podidentity.nmi.metrics import ProxyMetrics
from podidentity.nmi.requests import (
    InstanceMetadataBlockedError,
    PathNotFoundError,
    Route,
    TokenQuery,
    classify_path,
    parse_host_token_request,
    parse_token_query,
)
from podidentity.nmi.responses import (
    JSON,
    Answer,
    error_answer,
    host_token_body,
    token_answer,
)
from podidentity.nmi.settings import TokenProxySettings
from podidentity.nmi.sources import TokenSources, cache_key, node_cache_key
from podidentity.nmi.view import ClusterView

__all__ = ["TokenProxy", "TokenReviewer", "TokenSource"]

logger = logging.getLogger(__name__)

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

# Reviews of one service-account token are reused this long: the pod, its UID and its address
# are still checked against the watch on every request, so a deleted pod loses access at once.
_REVIEW_TTL = 30.0
_REVIEW_CACHE_SIZE = 1024
# How long a caller whose address the watch does not know yet may wait for it (a pod's IP
# arrives in an update, and it may call before the proxy sees that update).
_CALLER_GRACE = 2.0
_ANSWER_CACHE_SIZE = 1024


class TokenSource(Protocol):
    """Where tokens come from (:class:`~podidentity.nmi.sources.TokenSources` in production)."""

    async def token(self, identity: AzureIdentity, pod: PodInfo, resource: str) -> AccessToken:
        """A token of ``identity`` for ``resource`` as ``pod`` is entitled to."""
        ...

    async def node_token(self, parameter: tuple[str, str] | None, resource: str) -> AccessToken:
        """A token of one of the node's identities, straight from IMDS."""
        ...


TokenReviewer = Callable[[str, Sequence[str]], Awaitable[ReviewedToken | None]]
"""Verifies a service-account token for audiences (TokenReview in production)."""

Forwarder = Callable[[str, str, bytes, Mapping[str, str]], Awaitable[Any]]


class _ClientGone(Exception):
    """The caller disconnected while its request waited."""


class TokenProxy:
    """The IMDS-compatible token proxy of one node (an ASGI app; see the module doc).

    Build it with :meth:`connect` for a real cluster, or pass the collaborators directly.
    Start its watches with :meth:`start` (or ASGI lifespan, or ``async with``); stop with
    :meth:`stop`.

    Args:
        node_name: the node it serves.
        view: the node's observed pods, assignments and exceptions.
        sources: where tokens come from.
        forward: forwards other ``/metadata`` requests to the node's IMDS
            (``ImdsClient.forward``); ``None`` answers them 404.
        reviewer: verifies service-account tokens (TokenReview); ``None`` refuses them.
        settings: see :class:`~podidentity.nmi.TokenProxySettings`.
        clock: epoch seconds (injected in tests).
        metrics: the Prometheus collectors (a fresh registry when ``None``).

    Attributes:
        cache: the token cache (one entry per identity, resource and caller class).
        propagation: the pace of asking IMDS again for identities it does not serve yet;
            shared by all of them, so together they stay within the node's IMDS budget.
    """

    def __init__(
        self,
        node_name: str,
        *,
        view: NodeView,
        sources: TokenSource,
        forward: Forwarder | None = None,
        reviewer: TokenReviewer | None = None,
        settings: TokenProxySettings | None = None,
        clock: Callable[[], float] = time.time,
        metrics: ProxyMetrics | None = None,
    ) -> None:
        self.node_name = node_name
        self.settings = settings or TokenProxySettings()
        if self.settings.cluster_wide_bindings:
            logger.warning(
                "cluster_wide_bindings is on: pods get identities bound in other namespaces"
                " (upstream's old behaviour; for migration only)"
            )
        self.view = view
        self.sources = sources
        self.metrics = metrics or ProxyMetrics()
        self._forward = forward
        self._reviewer = reviewer
        self._clock = clock
        self.cache = TokenCache(
            max_entries=self.settings.cache_size,
            refresh_ahead=self.settings.refresh_ahead,
            refresh_jitter=self.settings.refresh_jitter,
            clock=clock,
            on_hit=self.metrics.cache_hits.inc,
            on_miss=self.metrics.cache_misses.inc,
        )
        # One per node: identities waiting for IMDS to learn of their assignment share its budget.
        self.propagation = PropagationPacer()
        self._reviews: dict[str, tuple[float, ReviewedToken | None]] = {}
        self._answers: dict[tuple[str, str, str, int], Answer] = {}
        self._closers: list[Callable[[], Awaitable[object]]] = []
        self._starters: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        return f"TokenProxy(node={self.node_name!r}, {self.settings!r})"

    @classmethod
    def connect(
        cls,
        node_name: str,
        *,
        api: Any,
        imds_url: str,
        settings: TokenProxySettings | None = None,
        credential_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> TokenProxy:
        """A proxy for ``node_name`` of the cluster behind ``api``, using the IMDS at ``imds_url``.

        Call it on the event loop that will serve the proxy. ``api`` stays the caller's to close.

        Args:
            node_name: the node it serves.
            api: a ``kubernetes.aio`` ``ApiClient`` (``podidentity.kube.load_api_client``)
                allowed to watch pods, assignments and exceptions, read Secrets, create
                TokenReviews and TokenRequests.
            imds_url: the node's IMDS (``http://169.254.169.254`` on Azure).
            settings: see :class:`~podidentity.nmi.TokenProxySettings`.
            credential_options: extra keyword arguments for azure-identity credentials.
            clock: epoch seconds (injected in tests).
        """
        client = KubeClient(api)
        view = ClusterView(client, node_name)
        imds = ImdsClient(imds_url)
        sources = TokenSources(imds, client, credential_options=credential_options)

        async def reviewer(token: str, audiences: Sequence[str]) -> ReviewedToken | None:
            return await review_token(client, token, audiences)

        proxy = cls(
            node_name,
            view=view,
            sources=sources,
            forward=imds.forward,
            reviewer=reviewer,
            settings=settings,
            clock=clock,
        )
        proxy._starters.append(view.start)
        proxy._closers += [view.stop, imds.aclose]
        return proxy

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching the cluster (returns at once; :attr:`ready` says when synced)."""
        for start in self._starters:
            start()
        self._starters = []

    async def stop(self) -> None:
        """Stop the watches and close upstream connections."""
        closers, self._closers = self._closers, []
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        # Closed transports finish closing on the loop's next turns; let them, so a loop that
        # ends right after stop() leaves no socket half-closed.
        for _ in range(3):
            await asyncio.sleep(0)

    async def __aenter__(self) -> TokenProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        """Whether the watches have listed the node's state once."""
        return self.view.synced

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route_label = "unknown"
        raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
        try:
            route = classify_path(raw_path)
            route_label = route.value
            if route is Route.TOKEN:
                answer = await self._token_request(scope, receive)
            elif route is Route.HOST_TOKEN:
                answer = await self._host_token_request(scope, receive)
            elif route is Route.INSTANCE and self.settings.block_instance_metadata:
                raise InstanceMetadataBlockedError(
                    "instance metadata is blocked on this node (block_instance_metadata)"
                )
            else:
                answer = await self._forward_request(scope)
        except _ClientGone:
            self.metrics.refusals.labels("client_gone").inc()
            return
        except Exception as err:  # every failure gets its answer from the one mapping
            answer = error_answer(err, pending_retry_after=self.settings.pending_retry_after)
            if answer.status >= 500 and answer.reason == "internal":
                logger.exception("token proxy on %s failed", self.node_name)
            else:
                logger.info(
                    "refused %s %s from %s: %s %s",
                    scope.get("method"),
                    raw_path[:80].decode("latin-1"),
                    _peer(scope),
                    answer.status,
                    err,
                )
            self.metrics.refusals.labels(answer.reason).inc()
        await _send(send, answer)
        self.metrics.answered(route_label, answer.status, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routes ----------------------------------------------------------------------------

    async def _token_request(self, scope: Scope, receive: Receive) -> Answer:
        headers = _headers(scope)
        query = parse_token_query(
            scope["method"],
            scope.get("query_string", b""),
            headers,
            metadata_header_required=self.settings.metadata_header_required,
        )
        async with _Disconnect(receive) as gone:
            pod = await self._caller(_peer(scope), headers, gone)
            token = await self._token_for(pod, query, gone)
        return self._token_answer(token)

    def _token_answer(self, token: AccessToken) -> Answer:
        # The answer only changes with the token and the second (expires_in counts down), so
        # it is encoded once per second per token. Keyed by the token's own fields, never by
        # object identity: a key must not be able to match another identity's token.
        now = int(self._clock())
        key = (token.token, token.client_id, token.resource, now)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= _ANSWER_CACHE_SIZE:
                self._answers.clear()
            answer = token_answer(token, now=now)
            self._answers[key] = answer
        return answer

    async def _host_token_request(self, scope: Scope, receive: Receive) -> Answer:
        peer = _peer(scope)
        if peer not in self.settings.host_addresses:
            raise CallerNotIdentifiedError(
                f"/host/token only answers callers on the node itself, not {peer}"
            )
        request = parse_host_token_request(
            scope["method"], scope.get("query_string", b""), _headers(scope)
        )
        async with _Disconnect(receive) as gone:
            await self._synced(gone)
            pod = self.view.pod(request.pod_namespace, request.pod_name)
            if pod is None:
                raise CallerNotIdentifiedError(
                    f"no pod {request.pod_namespace}/{request.pod_name} on node {self.node_name}"
                )
            token = await self._token_for(pod, request.query, gone)
        return Answer(200, host_token_body(token, now=self._clock()))

    async def _forward_request(self, scope: Scope) -> Answer:
        if self._forward is None:
            return error_answer(_not_forwarded())
        result = await self._forward(
            scope["method"], scope["path"], scope.get("query_string", b""), _headers(scope)
        )
        return Answer(result.status, result.body, result.headers, reason="forwarded")

    # -- who is calling --------------------------------------------------------------------

    async def _synced(self, gone: _Disconnect) -> None:
        deadline = time.monotonic() + self.settings.request_deadline
        while not self.view.synced:
            if not await gone.wait(self.view.changed(), deadline - time.monotonic()):
                raise AssignmentPendingError(
                    f"the token proxy on {self.node_name} has not synced with the cluster yet",
                    retry_after=self.settings.pending_retry_after,
                )

    async def _caller(self, peer: str, headers: Mapping[str, str], gone: _Disconnect) -> PodInfo:
        await self._synced(gone)
        authorization = headers.get("authorization", "")
        if authorization:
            return await self._caller_from_token(peer, authorization)
        if self.settings.require_service_account_token:
            raise CallerNotIdentifiedError(
                "this token proxy requires the caller's projected service-account token "
                "(Authorization: Bearer <token>, audience "
                f"{self.settings.service_account_audience!r})"
            )
        deadline = time.monotonic() + min(_CALLER_GRACE, self.settings.pending_timeout)
        while True:
            try:
                return caller_for_address(self.view, peer)
            except CallerNotIdentifiedError:
                if self.view.pods_with_ip(peer) or not await gone.wait(
                    self.view.changed(), deadline - time.monotonic()
                ):
                    raise

    async def _caller_from_token(self, peer: str, authorization: str) -> PodInfo:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CallerNotIdentifiedError(
                "the Authorization header must be 'Bearer <projected service-account token>'"
            )
        reviewed = await self._review(token)
        if reviewed is None:
            raise CallerNotIdentifiedError(
                "the service-account token was not accepted: invalid, expired, not for audience "
                f"{self.settings.service_account_audience!r}, or its pod is gone"
            )
        if not reviewed.pod_name:
            raise CallerNotIdentifiedError(
                "the service-account token is not bound to a pod; use a projected token"
            )
        pod = self.view.pod(reviewed.namespace, reviewed.pod_name)
        if pod is None or (reviewed.pod_uid and pod.uid != reviewed.pod_uid):
            raise CallerNotIdentifiedError(
                f"the service-account token's pod {reviewed.namespace}/{reviewed.pod_name} is "
                f"not running on node {self.node_name}"
            )
        if pod.ip != peer or pod.host_network:
            raise CallerNotIdentifiedError(
                f"the service-account token belongs to pod {pod.key}, which does not call "
                f"from {peer}"
            )
        return pod

    async def _review(self, token: str) -> ReviewedToken | None:
        if self._reviewer is None:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._reviews.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        reviewed = await self._reviewer(token, [self.settings.service_account_audience])
        if len(self._reviews) >= _REVIEW_CACHE_SIZE:
            self._reviews = {k: v for k, v in self._reviews.items() if v[0] > now}
            if len(self._reviews) >= _REVIEW_CACHE_SIZE:
                self._reviews.clear()
        self._reviews[digest] = (now + _REVIEW_TTL, reviewed)
        return reviewed

    # -- which token -----------------------------------------------------------------------

    async def _token_for(self, pod: PodInfo, query: TokenQuery, gone: _Disconnect) -> AccessToken:
        view = self.view
        settings = self.settings
        if is_excepted(
            pod,
            view.exceptions(pod.namespace),
            controller_namespace=settings.controller_namespace,
            controller_labels=settings.controller_labels,
        ):
            parameter, resource = query.parameter, query.resource
            return await self._fetch(
                node_cache_key(parameter, resource),
                "node",
                lambda: self.sources.node_token(parameter, resource),
            )
        deadline = time.monotonic() + settings.pending_timeout
        while True:
            current = view.pod(pod.namespace, pod.name)
            if current is None or current.uid != pod.uid:
                raise CallerNotIdentifiedError(f"pod {pod.key} left node {self.node_name}")
            assigned, pending = identities_of(
                pod,
                view.assignments(pod.namespace, pod.name),
                self.node_name,
                cluster_wide_bindings=settings.cluster_wide_bindings,
            )
            selection = select_identities(pod, assigned, pending, query.parameter)
            if not selection.wait:
                break
            if not await gone.wait(view.changed(), deadline - time.monotonic()):
                what = f"{query.parameter[0]} {query.parameter[1]}" if query.parameter else "any"
                raise AssignmentPendingError(
                    f"pod {pod.key} has no assigned identity ({what}) on node {self.node_name} "
                    f"yet; waited {settings.pending_timeout:g}s",
                    retry_after=settings.pending_retry_after,
                )
        if query.parameter is not None and query.parameter[0] == "object_id":
            wanted = query.parameter[1].strip().lower()
            for identity in selection.candidates:
                token = await self._identity_token(identity, pod, query.resource)
                if token_object_id(token).lower() == wanted:
                    return token
            raise not_permitted(pod, assigned, query.parameter)
        return await self._identity_token(selection.candidates[0], pod, query.resource)

    async def _identity_token(
        self, identity: AzureIdentity, pod: PodInfo, resource: str
    ) -> AccessToken:
        token = await self._fetch(
            cache_key(identity, pod, resource),
            _SOURCE_LABELS[identity.type],
            lambda: self.sources.token(identity, pod, resource),
        )
        if identity.client_id and token.client_id.lower() != identity.client_id.lower():
            # Defence in depth: never hand out a token of a client the pod was not assigned.
            raise IdentityNotPermittedError(
                f"upstream returned a token of client {token.client_id} for identity "
                f"{identity.namespace}/{identity.name} ({identity.client_id}); refused"
            )
        return token

    async def _fetch(
        self, key: CacheKey, source: str, fetch: Callable[[], Awaitable[AccessToken]]
    ) -> AccessToken:
        async def upstream() -> AccessToken:
            started = time.perf_counter()
            try:
                token = await retry_within(
                    fetch,
                    deadline=time.monotonic() + self.settings.request_deadline,
                    pacer=self.propagation,
                )
            finally:
                self.metrics.upstream_seconds.labels(source).observe(time.perf_counter() - started)
            logger.info(
                "fetched a token of client %s for %s (%s) on node %s",
                token.client_id,
                key[1],
                source,
                self.node_name,
            )
            return token

        token = await self.cache.get(key, upstream)
        self.metrics.cache_entries.set(len(self.cache))
        return token

    # -- probes ----------------------------------------------------------------------------

    async def probes(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The probe port's ASGI app: ``/healthz``, ``/readyz``, ``/metrics``."""
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            answer = Answer(200, b"ok")
        elif path == "/readyz":
            answer = Answer(200, b"ok") if self.ready else Answer(503, b"not synced")
        elif path == "/metrics":
            answer = Answer(
                200,
                generate_latest(self.metrics.registry),
                (("content-type", CONTENT_TYPE_LATEST),),
            )
        else:
            answer = Answer(404, b"not found")
        await _send(send, answer, content_type="text/plain; charset=utf-8")


_SOURCE_LABELS = {
    IdentityType.USER_ASSIGNED_MSI: "msi",
    IdentityType.SERVICE_PRINCIPAL: "service_principal",
    IdentityType.SERVICE_PRINCIPAL_CERTIFICATE: "service_principal_certificate",
    IdentityType.FEDERATED_WORKLOAD_IDENTITY: "federated",
}


def _not_forwarded() -> Exception:
    return PathNotFoundError("this token proxy does not forward metadata requests")


class _Disconnect:
    """Watches an ASGI ``receive`` for ``http.disconnect`` while a request waits."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Disconnect:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _until_disconnect(self) -> None:
        while True:
            message = await self._receive()
            if message.get("type") == "http.disconnect":
                return

    async def wait(self, change: Awaitable[None], timeout: float) -> bool:
        """Wait for ``change`` up to ``timeout`` seconds: True if it came, False on timeout.

        Raises:
            _ClientGone: the client disconnected meanwhile.
        """
        waiter = asyncio.ensure_future(change)
        if timeout <= 0:
            waiter.cancel()
            return False
        if self._task is None:
            self._task = asyncio.ensure_future(self._until_disconnect())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
        if self._task in done:
            raise _ClientGone
        return waiter in done


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        # The first value counts; a repeated header cannot override it.
        headers.setdefault(key, value.decode("latin-1"))
    return headers


async def _send(send: Send, answer: Answer, *, content_type: str = JSON) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(answer.body)).encode()),
    ]
    for name, value in answer.headers:
        if name.lower() == "content-type":
            headers[0] = (b"content-type", value.encode("latin-1"))
        else:
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
