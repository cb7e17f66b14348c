"""IMDS, the Instance Metadata Service of one emulated VM or scale-set instance.

Each node of the emulated world gets its own plain-HTTP endpoint, so a test "runs on node X" by
pointing ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` at that node's URL. The token endpoint answers
only for identities that ARM state says are on the node's VM or scale set, the way the real
IMDS does, including the window right after an assignment in which IMDS does not know the
identity yet (:attr:`ImdsService.identity_delay`).

Wire shapes follow IMDS: ``GET /metadata/identity/oauth2/token?api-version=&resource=`` plus at
most one of ``client_id``, ``object_id``, ``msi_res_id`` (what MSAL, so sync azure-identity,
sends) or ``mi_res_id``; header ``Metadata: true``; the answer's numbers are strings. Like the
real IMDS, it ignores parameters it does not document, ``resource_id`` included (what
azure-identity's aio client sends for ``identity_config={"resource_id": ...}``): such a request
gets the node's default identity, or "Multiple user assigned identities exist" when there is
none. The token endpoint accepts api-versions from ``2018-02-01`` on.

A token proxy on the node (NMI) stands between pods and this endpoint, so the emulator also
does what real IMDS does to the requests a proxy can get wrong: it refuses any request with an
``X-Forwarded-For`` header (IMDS must not be put behind a proxy that says whom it forwards
for), matches its paths the way IIS does (case-insensitive, a backslash read as ``/``: a proxy
that intercepts only the exact lower-case path lets the others through to the node's
identities), refuses unknown ``api-version`` values, enforces its per-VM limits
(:class:`~podidentity.testing.azure._imds._throttle.ImdsLimits`, on by default) and goes away for
a while as when it restarts (:meth:`ImdsService.restart`).

Like the platform behind real IMDS, each node caches the tokens it issues
(:mod:`~podidentity.testing.azure._imds._cache`): the same token, with a shrinking
``expires_in``, until it nears expiry or its identity leaves the node.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Hashable, Mapping
from typing import Any

import attrs

from podidentity.testing._http import (
    HTTPError,
    Request,
    Response,
    error_boundary,
    read_request,
)
from podidentity.testing.azure._http import (
    JSON_CONTENT_TYPE,
    ASGIApp,
    Receive,
    Scope,
    Send,
    json_response,
    send_json,
)
from podidentity.testing.azure._imds._cache import ImdsTokenCache, TokenCachePolicy
from podidentity.testing.azure._imds._gate import RequestGate
from podidentity.testing.azure._imds._throttle import ImdsLimits, NodeThrottle
from podidentity.testing.azure._tokens import IssuedToken, TokenIssuer
from podidentity.testing.azure._world import (
    AzureWorld,
    ComputeKind,
    ComputeResource,
    Principal,
)

__all__ = [
    "API_VERSIONS",
    "DEFAULT_PROPAGATION_DELAY",
    "IDENTITY_PARAMETERS",
    "TOKEN_API_VERSIONS",
    "ImdsNode",
    "ImdsService",
    "imds_error_body",
]

logger = logging.getLogger(__name__)

#: Query parameters that select a user-assigned identity; IMDS accepts one at most. Others
#: (``resource_id``, ``principal_id``) are ignored, as IMDS ignores unknown parameters.
IDENTITY_PARAMETERS = ("client_id", "object_id", "msi_res_id", "mi_res_id")
#: Seconds (world clock) IMDS takes to start serving an identity assigned to its machine, and to
#: stop serving one removed from it, after the ARM operation completed.
DEFAULT_PROPAGATION_DELAY = 5.0
#: The ``api-version`` values IMDS documents; anything else is refused. Every SDK asks the token
#: endpoint with 2018-02-01.
API_VERSIONS = (
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
)
#: The token endpoint's api-versions: managed identity tokens start with 2018-02-01.
TOKEN_API_VERSIONS = tuple(v for v in API_VERSIONS if v >= "2018-02-01")
_API_VERSION_ERROR = (
    "Bad request. api-version is invalid or was not specified in the request. For more"
    " information refer to aka.ms/azureimds"
)
# IMDS runs on IIS: paths match case-insensitively and a backslash reads as a slash
# (GHSA-p82q-rxpm-hjpc: NMI missed `/metadata/identity\oauth2\token/`, IMDS answered it).
_TOKEN_PATH = re.compile(r"^/metadata/identity/oauth2/token/?$", re.IGNORECASE)
_INSTANCE_PATH = re.compile(r"^/metadata/instance(/.*)?$", re.IGNORECASE)
#: What IMDS answers a request carrying X-Forwarded-For (observed on Azure; XML, not JSON).
_FORWARDED_REFUSAL = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<Error xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    b' xmlns:xsd="http://www.w3.org/2001/XMLSchema">\n'
    b"    <Code>InvalidHeaderValue</Code>\n"
    b"    <Message>The value provided for one of the HTTP headers was not in the correct"
    b" format.</Message>\n"
    b"    <Details>Header contains 'X-Forwarded-For' are not supported.</Details>\n"
    b"</Error>"
)
_XML_CONTENT_TYPE = "application/xml; charset=utf-8"


@attrs.frozen
class _Visible:
    """The identities IMDS can use on a node now, and the grant each holds it under."""

    system: Principal | None
    user: list[Principal]
    grants: dict[str, Hashable]


@attrs.frozen
class ImdsNode:
    """Which machine an IMDS endpoint belongs to: a VM, or instance ``instance`` of a scale set."""

    kind: ComputeKind
    subscription_id: str
    resource_group: str
    name: str
    instance: int | None = None

    @property
    def machine_name(self) -> str:
        """The VM name, or ``<scaleset>_<instance>`` for a scale-set instance."""
        return self.name if self.instance is None else f"{self.name}_{self.instance}"

    @property
    def computer_name(self) -> str:
        """The host name (AKS style ``<scaleset>000003`` for instances)."""
        return self.name if self.instance is None else f"{self.name}{self.instance:06d}"


def imds_error_body(status: int, message: str) -> tuple[bytes, str]:
    """IMDS's error shape for an injected fault."""
    error = {400: "invalid_request", 404: "not_found", 410: "gone", 429: "too_many_requests"}
    response = _ImdsError(status, error.get(status, "unknown_error"), message).response()
    return response.body, response.content_type


class _ImdsError(HTTPError):
    """The token endpoint's OAuth-style error: ``{"error", "error_description"}``."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, description)
        self.payload: dict[str, Any] = {"error": error, "error_description": description}
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return json_response(self.status, self.payload, self.headers)


class _Refused(HTTPError):
    """An answer in another shape than the token endpoint's OAuth error (XML, metadata)."""

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, body.decode())
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return Response(self.status, self.body, self.content_type, tuple(self.headers.items()))


class ImdsService:
    """What every node's IMDS shares: the world, the token issuer, and the test's controls.

    Attributes:
        identity_delay: the propagation window, in seconds of the world clock: after an
            identity is assigned to a VM or scale set (when the ARM operation completes) IMDS
            still answers "Identity not found" for it, and after one is removed IMDS still
            serves it, for this long (:data:`DEFAULT_PROPAGATION_DELAY`, 5 s, by default; 0
            makes both immediate).
        limits: IMDS's per-node limits (``ImdsLimits()``, the default: 20 token requests per
            second and 5 concurrent, 5 per second to ``/metadata/instance``), answered with
            ``429`` and ``Retry-After`` beyond; ``None`` enforces none. Each node counts
            separately.
        token_policy: the lifetime of IMDS tokens (24 h) and how long before expiry a cached
            one is replaced (5 minutes).
        cache_tokens: whether each node hands out its cached token again (``True``, as
            Azure's IMDS does) or issues a new one per request.
    """

    def __init__(self, world: AzureWorld, issuer: TokenIssuer) -> None:
        self.world = world
        self.issuer = issuer
        self.identity_delay = DEFAULT_PROPAGATION_DELAY
        self.limits: ImdsLimits | None = ImdsLimits()
        self.token_policy = TokenCachePolicy()
        self.cache_tokens = True
        self._lock = threading.Lock()
        self._caches: dict[ImdsNode, ImdsTokenCache] = {}
        self._throttles: dict[ImdsNode, NodeThrottle] = {}
        self._outages: dict[ImdsNode, tuple[float, int]] = {}
        self._gate: RequestGate | None = None

    def __repr__(self) -> str:
        return (
            f"ImdsService(identity_delay={self.identity_delay}, limits={self.limits},"
            f" token_policy={self.token_policy}, cache_tokens={self.cache_tokens})"
        )

    def restart(self, node: ImdsNode, seconds: float = 70.0, *, status: int = 410) -> None:
        """Make a node's IMDS unavailable for ``seconds`` of the world clock, as it restarts.

        Every request meanwhile gets ``status``: 410 as IMDS answers while it is updated (back
        within about 70 s), or 500/503 for a failing one. azure-identity retries both.
        """
        if seconds <= 0:
            raise ValueError("a restart lasts a positive number of seconds")
        with self._lock:
            self._outages[node] = (self.world.clock() + seconds, status)

    def hold_tokens(self) -> RequestGate:
        """Hold every token request, after it is admitted by :attr:`limits`, until released.

        Returns the gate: :meth:`~RequestGate.wait_held` waits until requests are in flight,
        :meth:`~RequestGate.open` lets them (and every later one) through.
        """
        gate = RequestGate()
        with self._lock:
            self._gate = gate
        return gate

    def app(self, node: ImdsNode) -> ASGIApp:
        """The ASGI app of one node's IMDS."""

        async def imds(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            request = await read_request(scope, receive)
            status, payload = await self._dispatch(node, request)
            await send_json(send, status, payload)

        return error_boundary(imds)

    async def _dispatch(self, node: ImdsNode, request: Request) -> tuple[int, Any]:
        self._check_available(node)
        if "x-forwarded-for" in request.headers:
            # A proxy in front of IMDS must not say whom it forwards for.
            raise _Refused(400, _FORWARDED_REFUSAL, _XML_CONTENT_TYPE)
        path = request.path.replace("\\", "/")
        if _TOKEN_PATH.match(path):
            throttle = self._throttle(node)
            if throttle is None:
                return 200, await self._token_request(node, request)
            wait = throttle.admit()
            if wait is not None:
                raise _ImdsError(
                    429,
                    "too_many_requests",
                    "Too many requests. Retry after some time",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
            try:
                return 200, await self._token_request(node, request)
            finally:
                throttle.release()
        if _INSTANCE_PATH.match(path):
            throttle = self._throttle(node)
            wait = throttle.admit_metadata() if throttle is not None else None
            if wait is not None:
                raise _Refused(
                    429,
                    json.dumps({"error": "Too many requests"}).encode(),
                    JSON_CONTENT_TYPE,
                    headers={"Retry-After": str(math.ceil(wait))},
                )
            self._check_method_and_header(request)
            if request.query.get("api-version") not in API_VERSIONS:
                # The metadata endpoints' error shape, not the token endpoint's OAuth one.
                body = {"error": _API_VERSION_ERROR, "newest-versions": list(API_VERSIONS[-3:])}
                raise _Refused(400, json.dumps(body).encode(), JSON_CONTENT_TYPE)
            return 200, self._instance(node)
        return 404, {"error": "Not found"}

    async def _token_request(self, node: ImdsNode, request: Request) -> dict[str, str]:
        self._check_method_and_header(request)
        if request.query.get("api-version") not in TOKEN_API_VERSIONS:
            raise _ImdsError(400, "invalid_request", _API_VERSION_ERROR)
        with self._lock:
            gate = self._gate
        if gate is not None:
            await gate.passage()
        return self._token(node, request)

    def _check_available(self, node: ImdsNode) -> None:
        with self._lock:
            outage = self._outages.get(node)
            if outage is not None and self.world.clock() >= outage[0]:
                del self._outages[node]
                outage = None
        if outage is not None:
            until, status = outage
            raise _ImdsError(
                status,
                "gone" if status == 410 else "unknown_error",
                f"IMDS is restarting; try again within {math.ceil(until - self.world.clock())}"
                " seconds",
            )

    def _throttle(self, node: ImdsNode) -> NodeThrottle | None:
        limits = self.limits
        if limits is None:
            return None
        with self._lock:
            throttle = self._throttles.get(node)
            if throttle is None or throttle.limits != limits:
                throttle = NodeThrottle(limits, self.world.clock)
                self._throttles[node] = throttle
            return throttle

    @staticmethod
    def _check_method_and_header(request: Request) -> None:
        if request.method != "GET":
            raise _ImdsError(405, "invalid_request", "Only GET is supported")
        if request.headers.get("metadata", "").lower() != "true":
            raise _ImdsError(400, "invalid_request", "Required metadata header not specified")

    def _token(self, node: ImdsNode, request: Request) -> dict[str, str]:
        resource = request.query.get("resource", "")
        if not resource:
            raise _ImdsError(400, "invalid_request", "Required audience parameter not specified")
        visible = self._visible_on(node)
        principal = self._select_identity(visible, request)
        if not self.world.knows_resource(resource):
            raise _ImdsError(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {resource} was not found in the"
                f" tenant named {self.world.tenant_id}.",
            )
        token = self._cached_or_new(node, principal, resource, visible)
        # What is left of the token's life, as IMDS reports a cached token.
        expires_in = token.expires_on - int(self.world.clock())
        return {
            "access_token": token.access_token,
            "refresh_token": "",
            "expires_in": str(expires_in),
            "expires_on": str(token.expires_on),
            "ext_expires_in": str(expires_in),
            "not_before": str(token.not_before),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        }

    def _cached_or_new(
        self, node: ImdsNode, principal: Principal, resource: str, visible: _Visible
    ) -> IssuedToken:
        policy = self.token_policy
        cache = self._cache(node)
        if self.cache_tokens:
            cached = cache.lookup(
                principal.object_id,
                resource,
                grants=visible.grants,
                policy=policy,
                now=self.world.clock(),
            )
            if cached is not None:
                logger.debug(
                    "IMDS %s served its cached token for %s (client %s) to %s",
                    node.machine_name,
                    principal.display_name,
                    principal.client_id,
                    resource,
                )
                return cached
        token = self.issuer.issue(principal, resource, lifetime=policy.lifetime)
        if self.cache_tokens:
            cache.store(token, resource, grant=visible.grants[principal.object_id])
        logger.info(
            "IMDS %s issued a token for %s (client %s) to %s",
            node.machine_name,
            principal.display_name,
            principal.client_id,
            resource,
        )
        return token

    def _cache(self, node: ImdsNode) -> ImdsTokenCache:
        with self._lock:
            return self._caches.setdefault(node, ImdsTokenCache())

    def _visible_on(self, node: ImdsNode) -> _Visible:
        compute = self._machine(node)
        if compute is None:
            # The VM is gone or the instance scaled away: a machine that comes back under the
            # same name starts with an empty cache.
            self._cache(node).clear()
            raise _ImdsError(400, "invalid_request", "Identity not found")
        return self._visible_identities(compute)

    @staticmethod
    def _select_identity(visible: _Visible, request: Request) -> Principal:
        given = {p: request.query[p] for p in IDENTITY_PARAMETERS if request.query.get(p)}
        if len(given) > 1:
            raise _ImdsError(
                400,
                "invalid_request",
                "Only one of client_id, object_id, msi_res_id may be specified",
            )
        system, user = visible.system, visible.user
        if not given:
            if system is not None:
                return system
            if len(user) == 1:
                return user[0]
            if user:
                raise _ImdsError(
                    400,
                    "invalid_request",
                    "Multiple user assigned identities exist, please specify the clientId /"
                    " resourceId of the identity in the token request",
                )
            raise _ImdsError(400, "invalid_request", "Identity not found")
        ((parameter, value),) = given.items()
        wanted = value.lower()
        for principal in [*user, *([system] if system else [])]:
            if parameter == "client_id":
                candidate = principal.client_id
            elif parameter == "object_id":
                candidate = principal.object_id
            else:
                candidate = principal.resource_id or ""
            if candidate.lower() == wanted:
                return principal
        raise _ImdsError(400, "invalid_request", "Identity not found")

    def _machine(self, node: ImdsNode) -> ComputeResource | None:
        """The node's VM or scale set; ``None`` when gone, or the instance was scaled away."""
        compute = self.world.lookup_compute(
            node.kind, node.subscription_id, node.resource_group, node.name
        )
        if compute is None or (node.instance is not None and node.instance >= compute.capacity):
            return None
        return compute

    def _visible_identities(self, compute: ComputeResource) -> _Visible:
        now = self.world.clock()
        delay = self.identity_delay
        user: list[Principal] = []
        grants: dict[str, Hashable] = {}
        # Assigned and propagated, or removed but not yet forgotten (IMDS lags both ways).
        held = [
            (key, identity, compute.assigned_at.get(key, 0.0))
            for key, identity in compute.user_assigned.items()
            # Identities a machine was created with are there when it boots.
            if key in compute.booted_with or now >= compute.assigned_at.get(key, 0.0) + delay
        ] + [
            (key, departure.identity, departure.assigned_at)
            for key, departure in compute.departed.items()
            if now < departure.removed_at + delay
            and (departure.booted or now >= departure.assigned_at + delay)
        ]
        for key, identity, assigned_at in held:
            # A deleted identity stays on the VM as a dangling reference (ARM shows it), but
            # its service principal is gone: IMDS has nothing to issue tokens for.
            if self.world.managed_identity(key) is None:
                continue
            user.append(identity.principal)
            # The assignment time tells an unassign-and-assign-again from a lasting grant.
            grants[identity.principal_id] = (compute.unique_id, key, assigned_at)
        system = None
        if compute.system_identity is not None:
            system = Principal(
                client_id=compute.system_identity.client_id,
                object_id=compute.system_identity.principal_id,
                kind="ManagedIdentity",
                display_name=compute.name,
                resource_id=compute.resource_id,
            )
            grants[system.object_id] = (compute.unique_id, "system")
        return _Visible(system=system, user=user, grants=grants)

    def _instance(self, node: ImdsNode) -> dict[str, Any]:
        compute = self._machine(node)
        if compute is None:
            raise _ImdsError(404, "not_found", "The VM does not exist any more")
        index = node.instance or 0
        resource_id = compute.resource_id
        if node.instance is not None:
            resource_id += f"/virtualMachines/{node.instance}"
        return {
            "compute": {
                "azEnvironment": "AzurePublicCloud",
                "location": compute.location,
                "name": node.machine_name,
                "osProfile": {"computerName": node.computer_name, "adminUsername": "azureuser"},
                "osType": "Linux",
                "provider": "Microsoft.Compute",
                "resourceGroupName": compute.resource_group,
                "resourceId": resource_id,
                "subscriptionId": compute.subscription_id,
                "tags": "",
                "tagsList": [],
                "vmId": compute.unique_id
                if node.instance is None
                else _instance_vm_id(compute.unique_id, index),
                "vmScaleSetName": compute.name if node.instance is not None else "",
                "vmSize": "Standard_D2s_v3",
                "zone": "",
            },
            "network": {
                "interface": [
                    {
                        "ipv4": {
                            "ipAddress": [
                                {"privateIpAddress": f"10.240.0.{4 + index}", "publicIpAddress": ""}
                            ],
                            "subnet": [{"address": "10.240.0.0", "prefix": "16"}],
                        },
                        "ipv6": {"ipAddress": []},
                        "macAddress": f"000D3A{index:06X}",
                    }
                ]
            },
        }


def _instance_vm_id(unique_id: str, index: int) -> str:
    # Instances of one scale set get distinct, stable vmIds derived from the scale set's ID.
    return f"{unique_id[:-6]}{index:06x}"
