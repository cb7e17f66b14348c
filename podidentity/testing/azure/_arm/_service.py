"""Azure Resource Manager for VMs and scale sets: the ``identity`` block that MIC reads and writes.

Routes (paths compare case-insensitively, as in ARM; ``api-version`` is required and checked
against the versions the resource type supports):

- ``GET|PATCH|PUT /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/
  virtualMachines/{vm}`` and ``.../virtualMachineScaleSets/{vmss}``;
- ``GET .../virtualMachineScaleSets/{vmss}/virtualMachines/{instance}``;
- ``GET .../providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}``;
- ``GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/operations/{id}``: the
  status of a write (``Azure-AsyncOperation``; with ``monitor=true``, the ``Location`` flavour).

Every request needs a bearer token of the tenant for the management audience, and a role
assignment in the world (:meth:`AzureWorld.grant_role`) that allows the action on the requested
resource: without one ARM answers ``403 AuthorizationFailed``, before telling whether the resource
group or the resource exists. A write that adds an identity also needs
``Microsoft.ManagedIdentity/userAssignedIdentities/assign/action`` on that identity (``Managed
Identity Operator``), else ``403 LinkedAuthorizationFailed`` naming it.

**Writes are long-running operations**, as in Compute: a valid PATCH or PUT answers ``200`` at
once with the requested model and ``provisioningState: Updating``, plus ``Azure-AsyncOperation``,
``Location`` and ``Retry-After`` headers; the change reaches the world (and so IMDS) only when
the operation completes, :attr:`ArmService.operation_duration` seconds of the world clock later.
A write on a machine whose previous write is still in progress fails ``409 Conflict`` (or, with
``overlap = "preempt"``, cancels the older one, which ends ``OperationPreempted``).

Identity semantics follow ARM: ``userAssignedIdentities`` maps resource IDs to ``{}`` to add or
``null`` to remove; ``type`` combines ``SystemAssigned`` and ``UserAssigned``; at most 150
identities per request; ``MissingIdentityIds``, ``InvalidIdentityValues``, ``InvalidParameter``
and ``LocationRequired`` as ARM answers them. Identity resource IDs in answers and error
messages spell the resource-group segment ``resourcegroups``, as Azure often does.

Errors are ARM's ``{"error": {"code", "message"}}``, including ``LinkedAuthorizationFailed`` and
``FailedIdentityOperation``, which tests can inject for chosen identities
(:meth:`ArmService.fail_identity`); every answer carries ``x-ms-request-id`` and the
``x-ms-ratelimit-remaining-*`` headers of the limits in :mod:`._throttle`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from podidentity.testing._http import (
    HTTPError,
    Request,
    Response,
    error_boundary,
    read_request,
)
from podidentity.testing._jwt import InvalidToken, unverified_claims
from podidentity.testing.azure._arm._throttle import ArmLimits, ArmThrottle
from podidentity.testing.azure._http import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    json_response,
    new_request_id,
    read_body,
    send_json,
)
from podidentity.testing.azure._operations import IdentityOperation, OperationInFlight
from podidentity.testing.azure._roles import ASSIGN_IDENTITY_ACTION
from podidentity.testing.azure._tokens import TokenIssuer
from podidentity.testing.azure._world import (
    ARM_AUDIENCES,
    AzureWorld,
    ComputeKind,
    ComputeResource,
    ManagedIdentity,
)

__all__ = [
    "COMPUTE_API_VERSIONS",
    "DEFAULT_OPERATION_DURATION",
    "IDENTITY_API_VERSIONS",
    "IDENTITY_ERROR_CODES",
    "MAX_IDENTITIES_PER_REQUEST",
    "ArmError",
    "ArmService",
    "arm_error_body",
    "arm_error_json",
    "arm_resource_id",
    "with_arm_headers",
]

logger = logging.getLogger(__name__)

#: ARM refuses a request that names more user-assigned identities than this.
MAX_IDENTITIES_PER_REQUEST = 150
#: The identity errors tests can inject for a chosen identity, with their HTTP status.
IDENTITY_ERROR_CODES = {"LinkedAuthorizationFailed": 403, "FailedIdentityOperation": 400}
_ALLOWED_AUDIENCES = (*ARM_AUDIENCES, *(a.rstrip("/") for a in ARM_AUDIENCES))
_COMPUTE_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
    r"/(?P<kind>virtualMachines|virtualMachineScaleSets)/(?P<name>[^/]+)"
    r"(?:/virtualMachines/(?P<instance>[^/]+))?/?$",
    re.IGNORECASE,
)
_IDENTITY_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers"
    r"/Microsoft\.ManagedIdentity/userAssignedIdentities/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_STATUS_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
#: Seconds (world clock) an identity write on a VM or scale set takes by default.
DEFAULT_OPERATION_DURATION = 2.0
#: The api-versions Microsoft.Compute serves virtualMachines and virtualMachineScaleSets with.
COMPUTE_API_VERSIONS = (
    "2015-05-01-preview",
    "2015-06-15",
    "2016-03-30",
    "2016-04-30-preview",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
)
#: The api-versions Microsoft.ManagedIdentity serves userAssignedIdentities with.
IDENTITY_API_VERSIONS = (
    "2015-08-31-preview",
    "2018-11-30",
    "2021-09-30-preview",
    "2022-01-31-preview",
    "2023-01-31",
    "2023-07-31-preview",
    "2024-11-30",
    "2025-01-31-preview",
)
_API_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<location>[^/]+)"
    r"/operations/(?P<id>[^/]+)/?$",
    re.IGNORECASE,
)
_RESOURCE_GROUPS = re.compile(r"/resourceGroups/", re.IGNORECASE)
_CONFLICT_MESSAGE = (
    "The request failed due to conflict with a concurrent request. To resolve it, please refer"
    " to https://aka.ms/activitylog to get more details on the conflicting requests."
)


class ArmError(HTTPError):
    """An ARM error answer: ``{"error": {"code", "message", "details"?}}``."""

    log_level = logging.INFO

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(status, f"{code}: {message}")
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details

    def response(self) -> Response:
        """ARM's error body with the error's headers (``Retry-After``)."""
        return json_response(self.status, self.document(), self.headers)

    def document(self) -> dict[str, Any]:
        """``{"error": {"code", "message", "details"?}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _raw(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def arm_error_json(code: str, message: str) -> bytes:
    """ARM's error body, for :meth:`FaultInjector.fail_next(body=...)` with a specific code."""
    return json.dumps(ArmError(0, code, message).document()).encode()


def arm_error_body(status: int, message: str) -> tuple[bytes, str]:
    """ARM's error shape for an injected fault, with the code ARM uses for that status."""
    if status == 429:
        message = (
            "The request is being throttled as the limit has been reached for operation type -"
            f" Write_ObservationWindow_00:03:00. {message}"
        )
    return arm_error_json(_STATUS_CODES.get(status, "BadRequest"), message), "application/json"


def arm_resource_id(resource_id: str) -> str:
    """A resource ID spelled as Azure often writes it in answers: ``/resourcegroups/``.

    Clients must compare resource IDs case-insensitively; the emulator answers in this
    spelling so a client that compares exact strings fails here as it would in Azure.
    """
    return _RESOURCE_GROUPS.sub("/resourcegroups/", resource_id)


def _check_api_version(version: str, supported: tuple[str, ...], kind: str, location: str) -> None:
    listed = ", ".join(reversed(supported))
    if not _API_VERSION_SHAPE.match(version):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{listed}'.",
        )
    if version not in supported:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{location}' and API version"
            f" '{version}' for type '{kind}'. The supported api-versions are '{listed}'. The"
            f" supported locations are '{location}'.",
        )


def _action(method: str, compute: re.Match[str] | None, identity: re.Match[str] | None) -> str:
    """The RBAC action a request needs (``Microsoft.Compute/virtualMachines/write``, ...)."""
    verb = "read" if method == "GET" else "write"
    if identity is not None:
        return f"Microsoft.ManagedIdentity/userAssignedIdentities/{verb}"
    assert compute is not None  # one of the two matched
    if compute["instance"] is not None:
        return f"Microsoft.Compute/virtualMachineScaleSets/virtualMachines/{verb}"
    return f"Microsoft.Compute/{_kind_name(compute['kind'])}/{verb}"


def _kind_name(kind: str) -> ComputeKind:
    return "virtualMachines" if kind.lower() == "virtualmachines" else "virtualMachineScaleSets"


Overlap = Literal["conflict", "preempt"]


class ArmService:
    """ARM over the world's VMs, scale sets and managed identities.

    Attributes:
        operation_duration: seconds (world clock) an identity write takes to complete
            (:data:`DEFAULT_OPERATION_DURATION`, 2 s, by default; 0 completes it before the
            answer is sent, the answer then saying ``Succeeded``).
        overlap: what a write on a machine with a write still in progress gets: ``"conflict"``
            (the default) ``409 Conflict``; ``"preempt"``: it is accepted and the older
            operation ends ``Canceled`` with ``OperationPreempted``.
        limits: ARM's and Compute's request limits (:class:`ArmLimits` by default); ``None``
            turns throttling off.
    """

    def __init__(self, world: AzureWorld, issuer: TokenIssuer) -> None:
        self.world = world
        self.issuer = issuer
        self.operation_duration = DEFAULT_OPERATION_DURATION
        self.overlap: Overlap = "conflict"
        self.limits: ArmLimits | None = ArmLimits()
        self._lock = threading.Lock()
        self._identity_failures: dict[str, str] = {}
        self._denied: set[str] = set()
        self._operation_failures: list[tuple[str, str]] = []
        self._throttle: ArmThrottle | None = None

    def __repr__(self) -> str:
        return (
            f"ArmService(tenant_id={self.world.tenant_id!r},"
            f" operation_duration={self.operation_duration}, overlap={self.overlap!r},"
            f" limits={'on' if self.limits else 'off'})"
        )

    def throttle(self) -> ArmThrottle | None:
        """The counters of the current :attr:`limits` (``None`` when throttling is off)."""
        limits = self.limits
        if limits is None:
            return None
        with self._lock:
            if self._throttle is None or self._throttle.limits is not limits:
                self._throttle = ArmThrottle(limits, self.world.clock)
            return self._throttle

    # -- test controls -----------------------------------------------------------------------

    def fail_next_operation(
        self,
        code: str = "InternalExecutionError",
        message: str = "An internal execution error occurred. Please retry later.",
    ) -> None:
        """Make the next accepted identity write end ``Failed`` with ``code`` when it is due.

        The request itself is accepted (``200``, ``Updating``); polling its operation gives
        ``InProgress``, then ``Failed`` with this error, and the change is not applied.
        """
        with self._lock:
            self._operation_failures.append((code, message))

    def fail_identity(
        self, identity: ManagedIdentity | str, code: str = "LinkedAuthorizationFailed"
    ) -> None:
        """Make every write that adds or removes ``identity`` fail with ``code``.

        ``code`` is ``LinkedAuthorizationFailed`` (403: the caller may not assign that identity)
        or ``FailedIdentityOperation`` (400). The message names the identity's resource ID,
        as the real errors do, so a client can drop it and retry the rest.
        """
        if code not in IDENTITY_ERROR_CODES:
            raise ValueError(f"code must be one of {sorted(IDENTITY_ERROR_CODES)}")
        key = identity if isinstance(identity, str) else identity.resource_id
        with self._lock:
            self._identity_failures[key.lower()] = code

    def clear_identity_failures(self) -> None:
        """Withdraw every :meth:`fail_identity` rule."""
        with self._lock:
            self._identity_failures.clear()

    def deny(self, principal_object_id: str) -> None:
        """Refuse every request of a principal (by object ID) with ``AuthorizationFailed``.

        Wins over any role the principal holds (like a deny assignment).
        """
        with self._lock:
            self._denied.add(principal_object_id.lower())

    # -- the ASGI app ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if scope["type"] != "http":
            return
        # Headers gathered while serving (rate-limit counters, operation URLs) go out with the
        # answer, a refusal's too.
        headers: dict[str, str] = {}

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            request = await read_request(scope, receive)
            status, payload = self._dispatch(request, headers)
            await send_json(send, status, payload)

        await error_boundary(serve, headers=lambda _: _raw(headers))(scope, receive, send)

    def _dispatch(self, request: Request, headers: dict[str, str]) -> tuple[int, Any]:
        if match := _OPERATION_PATH.match(request.path):
            return self._operation_status(request, match, headers)
        compute_match = _COMPUTE_PATH.match(request.path)
        identity_match = _IDENTITY_PATH.match(request.path)
        if compute_match is None and identity_match is None:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type could not be found for the path '{request.path}'.",
            )
        if not request.query.get("api-version"):
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        claims = self._authenticate(request)
        match = compute_match or identity_match
        assert match is not None  # one of the two matched above
        sub, group = match["sub"], match["rg"]
        if not self.world.has_subscription(sub):
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        if identity_match is not None:
            _check_api_version(
                request.query["api-version"],
                IDENTITY_API_VERSIONS,
                "userAssignedIdentities",
                "eastus",
            )
        else:
            assert compute_match is not None
            kind_name = _kind_name(compute_match["kind"])
            if compute_match["instance"] is not None:
                kind_name = "virtualMachineScaleSets/virtualMachines"  # type: ignore[assignment]
            _check_api_version(
                request.query["api-version"], COMPUTE_API_VERSIONS, kind_name, "eastus"
            )
        self._authorize(claims, _action(request.method, compute_match, identity_match), match)
        if not self.world.has_resource_group(sub, group):
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        if identity_match is not None:
            return 200, self._get_identity(request, sub, group, identity_match["name"])
        assert compute_match is not None
        kind = _kind_name(compute_match["kind"])
        compute = self.world.lookup_compute(kind, sub, group, compute_match["name"])
        if compute is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/{kind}/{compute_match['name']}' under resource"
                f" group '{group}' was not found. For more details please go to"
                " https://aka.ms/ARMResourceNotFoundFix",
            )
        write = request.method in ("PATCH", "PUT")
        self._count_compute(sub, kind if write else "get", headers)
        if compute_match["instance"] is not None:
            if request.method != "GET" or kind != "virtualMachineScaleSets":
                raise ArmError(405, "MethodNotAllowed", "Only GET is emulated for instances.")
            return 200, self._instance_document(compute, compute_match["instance"])
        if request.method == "GET":
            return 200, self._document(compute, self.world.pending_identity_operation(compute))
        if write:
            return self._write(request, compute, claims, headers, replace=request.method == "PUT")
        raise ArmError(405, "MethodNotAllowed", f"The method {request.method} is not emulated.")

    def _resource_after(self, operation: IdentityOperation) -> dict[str, Any] | None:
        parts = operation.resource_id.split("/")
        kind = _kind_name(parts[7])
        compute = self.world.lookup_compute(kind, parts[2], parts[4], parts[8])
        if compute is None:
            return None
        return self._document(compute, self.world.pending_identity_operation(compute))

    # -- throttling --------------------------------------------------------------------------

    def _count_compute(self, subscription: str, group: str, headers: dict[str, str]) -> None:
        """Count a request against Compute's operation groups; 429 when one is used up."""
        throttle = self.throttle()
        if throttle is None:
            return
        windows = throttle.compute_groups(subscription, group)
        for name, window in windows:
            wait = window.acquire()
            if wait is not None:
                details = json.dumps(
                    {
                        "operationGroup": name,
                        "startTime": _iso(self.world.clock() - window.limit.per_seconds),
                        "endTime": _iso(self.world.clock()),
                        "allowedRequestCount": window.limit.requests,
                        "measuredRequestCount": window.limit.requests + 1,
                    }
                )
                raise ArmError(
                    429,
                    "OperationNotAllowed",
                    "The server rejected the request because too many requests have been"
                    " received for this subscription.",
                    headers={"Retry-After": str(math.ceil(wait)), **_remaining(windows)},
                    details=[{"code": "TooManyRequests", "target": name, "message": details}],
                )
        headers.update(_remaining(windows))

    # -- long-running operations -------------------------------------------------------------

    def _operation_urls(self, operation: IdentityOperation, api_version: str) -> dict[str, str]:
        sub = operation.resource_id.split("/")[2]
        base = (
            f"https://management.azure.com/subscriptions/{sub}/providers/Microsoft.Compute"
            f"/locations/{operation.location}/operations/{operation.operation_id}"
            f"?p={uuid.uuid5(uuid.NAMESPACE_URL, operation.operation_id)}&api-version={api_version}"
        )
        return {"Azure-AsyncOperation": base, "Location": base + "&monitor=true"}

    def _retry_after(self, operation: IdentityOperation) -> str:
        left = operation.due - self.world.clock()
        return str(max(1, math.ceil(left)))

    def _operation_status(
        self, request: Request, match: re.Match[str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if request.method != "GET":
            raise ArmError(405, "MethodNotAllowed", "Operation status is read with GET.")
        if not request.query.get("api-version"):
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        # Any principal of the tenant may poll: ARM does not check RBAC on operation status.
        self._authenticate(request)
        operation = self.world.identity_operation(match["id"])
        if operation is None or not operation.resource_id.lower().startswith(
            f"/subscriptions/{match['sub'].lower()}/"
        ):
            raise ArmError(
                404,
                "NotFound",
                f"The operation '{match['id']}' could not be found.",
            )
        monitor = request.query.get("monitor", "").lower() == "true"
        if not operation.done:
            headers["Retry-After"] = self._retry_after(operation)
            if monitor:
                headers["Location"] = self._operation_urls(operation, request.query["api-version"])[
                    "Location"
                ]
                return 202, None
        if monitor:
            # Done: the monitor URL answers with the resource, as a final GET would.
            return 200, self._resource_after(operation)
        body: dict[str, Any] = {
            "startTime": _iso(operation.started),
            "status": operation.status,
            "name": operation.operation_id,
        }
        if operation.ended is not None:
            body["endTime"] = _iso(operation.ended)
        if operation.error is not None:
            code, message = operation.error
            body["error"] = {"code": code, "message": message}
        return 200, body

    # -- authentication and authorization ----------------------------------------------------

    def _authenticate(self, request: Request) -> dict[str, Any]:
        token = request.bearer_token()
        if token is None:
            raise _auth_error(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        try:
            return self.issuer.verify(token, _ALLOWED_AUDIENCES)
        except InvalidToken as err:
            raise self._token_error(token, err) from err

    def _token_error(self, token: str, err: InvalidToken) -> ArmError:
        try:
            claims = unverified_claims(token)
        except InvalidToken:
            claims = {}
        if err.reason == "expired":
            exp = claims.get("exp", 0)
            return _auth_error(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_utc(exp)}' is earlier than current UTC time"
                f" '{_utc(self.world.clock())}'.",
            )
        if err.reason == "audience":
            allowed = ",".join(f"'{a}'" for a in _ALLOWED_AUDIENCES)
            return _auth_error(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource"
                f" '{claims.get('aud')}'. It should exactly match with one of the allowed"
                f" audiences {allowed}.",
            )
        if err.reason == "issuer":
            return _auth_error(
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match"
                f" the tenant 'https://sts.windows.net/{self.world.tenant_id}/' associated with"
                " this subscription.",
            )
        return _auth_error("InvalidAuthenticationToken", "The access token is invalid.")

    def _authorize(self, claims: Mapping[str, Any], action: str, match: re.Match[str]) -> None:
        """Require a role allowing ``action`` on the requested resource; ``deny()`` wins."""
        oid = str(claims.get("oid", ""))
        scope = match.group(0).rstrip("/")
        with self._lock:
            denied = oid.lower() in self._denied
        if denied or not self.world.roles.allows(oid, action, scope):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{claims.get('appid')}' with object id '{oid}' does not have"
                f" authorization to perform action '{action}' over scope '{scope}' or the scope"
                " is invalid. If access was recently granted, please refresh your credentials.",
            )

    # -- writes ------------------------------------------------------------------------------

    def _write(
        self,
        request: Request,
        compute: ComputeResource,
        claims: Mapping[str, Any],
        headers: dict[str, str],
        *,
        replace: bool,
    ) -> tuple[int, Any]:
        try:
            body = request.json()
        except ValueError as err:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            ) from err
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be an object.")
        if replace and not body.get("location"):
            raise ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        identity = body.get("identity")
        if identity is not None and not isinstance(identity, dict):
            raise ArmError(400, "InvalidParameter", "The value of parameter 'identity' is invalid.")
        identity = identity or {}
        system, user_enabled = self._identity_type(identity.get("type"), compute)
        changes = identity.get("userAssignedIdentities")
        if changes is not None and not isinstance(changes, dict):
            raise ArmError(
                400,
                "InvalidParameter",
                "The value of parameter 'identity.userAssignedIdentities' is invalid.",
            )
        changes = changes or {}
        if changes and not user_enabled:
            raise ArmError(
                400,
                "InvalidParameter",
                f"Parameter 'identity.userAssignedIdentities' is not allowed when"
                f" 'identity.type' is '{identity.get('type')}'; set 'identity.type' to"
                " 'UserAssigned' or 'SystemAssigned, UserAssigned', or leave the identities out.",
            )
        if len(changes) > MAX_IDENTITIES_PER_REQUEST:
            raise _identity_operation_failed(
                compute,
                "BadRequest",
                f"User Assigned Identities Number '{len(changes)}' Assign exceed limit"
                f" '{MAX_IDENTITIES_PER_REQUEST}' in one request.",
            )
        self._check_linked_authorization(compute, claims, changes)
        self._check_injected_failures(compute, changes)
        added = self._identities_to_add(changes, compute=compute)
        removed = {str(resource_id).lower() for resource_id, v in changes.items() if v is None}
        # The merge reads the live model under the world's lock: a change made while this
        # request was validated (a test thread, another write) is kept, not overwritten.
        with self.world.atomically():
            live = self.world.lookup_compute(
                compute.kind, compute.subscription_id, compute.resource_group, compute.name
            )
            if live is None:
                raise ArmError(404, "ResourceNotFound", f"{compute.resource_id} was deleted.")
            pending = self.world.pending_identity_operation(live)
            if pending is not None and self.overlap == "conflict":
                raise ArmError(409, "Conflict", _CONFLICT_MESSAGE)
            # The model a write applies to: the goal of an operation still in progress.
            goal_system = pending.system_assigned if pending else live.system_identity is not None
            goal_user = dict(pending.user_assigned) if pending else dict(live.user_assigned)
            self._check_values(live, goal_user, changes)
            if identity.get("type") is None:
                system = goal_system
            if replace or not user_enabled:
                current: dict[str, ManagedIdentity] = {}
            else:
                current = goal_user
            for key in removed:
                current.pop(key, None)
            current.update(added)
            self._check_no_dangling_identities(live, current, added)
            if user_enabled and not current and "type" in identity:
                raise ArmError(
                    400,
                    "MissingIdentityIds",
                    "The identity ids must not be null or empty for 'UserAssigned' identity type.",
                )
            if len(current) > MAX_IDENTITIES_PER_REQUEST:
                raise _identity_operation_failed(
                    live,
                    "BadRequest",
                    f"User Assigned Identities Number '{len(current)}' Assign exceed limit"
                    f" '{MAX_IDENTITIES_PER_REQUEST}' in one request.",
                )
            with self._lock:
                fail_with = self._operation_failures.pop(0) if self._operation_failures else None
            try:
                operation = self.world.start_identity_operation(
                    live,
                    operation_id=str(uuid.uuid4()),
                    system_assigned=system,
                    user_assigned=current,
                    duration=self.operation_duration,
                    preempt=self.overlap == "preempt",
                    fail_with=fail_with,
                )
            except OperationInFlight as err:  # pragma: no cover - checked above under the lock
                raise ArmError(409, "Conflict", _CONFLICT_MESSAGE) from err
            settled = self.world.lookup_compute(
                live.kind, live.subscription_id, live.resource_group, live.name
            )
            assert settled is not None  # held under the world's lock
        logger.info(
            "ARM accepted a write of the identities of %s (operation %s, %d user-assigned, due"
            " in %.1f s)",
            live.resource_id,
            operation.operation_id,
            len(current),
            self.operation_duration,
        )
        headers.update(self._operation_urls(operation, request.query["api-version"]))
        if not operation.done:
            headers["Retry-After"] = self._retry_after(operation)
            return 200, self._document(settled, operation)
        return 200, self._document(settled, None)

    def _check_values(
        self,
        compute: ComputeResource,
        current: Mapping[str, ManagedIdentity],
        changes: Mapping[str, Any],
    ) -> None:
        """Values are ``{}``, ``null`` or the identity's current property echoed back."""
        invalid = []
        for resource_id, value in changes.items():
            if value is None or value == {}:
                continue
            held = current.get(str(resource_id).lower())
            echoed = held is not None and value == {
                "principalId": held.principal_id,
                "clientId": held.client_id,
            }
            if not echoed:
                invalid.append(arm_resource_id(str(resource_id)))
        if invalid:
            raise ArmError(
                400,
                "InvalidIdentityValues",
                f"Invalid value for the identities '{', '.join(invalid)}'. The"
                " 'UserAssignedIdentities' property keys should only be empty json objects, null"
                " or the resource existing property.",
            )

    def _identities_to_add(
        self, changes: Mapping[str, Any], *, compute: ComputeResource
    ) -> dict[str, ManagedIdentity]:
        """The identities a write adds, by lower-cased resource ID; each must exist."""
        added: dict[str, ManagedIdentity] = {}
        for resource_id, value in changes.items():
            if value is None:
                continue
            key = str(resource_id).lower()
            found = self.world.managed_identity(key)
            if found is None or found.resource_id.lower() != key:
                raise _identity_operation_failed(
                    compute,
                    "NotFound",
                    f"Resource '{arm_resource_id(str(resource_id))}' was not found.",
                )
            added[key] = found
        return added

    def _check_no_dangling_identities(
        self,
        compute: ComputeResource,
        kept: Mapping[str, ManagedIdentity],
        added: Mapping[str, ManagedIdentity],
    ) -> None:
        """A write that keeps a deleted identity fails, naming it, as in Azure.

        Deleting an assigned identity leaves a dangling reference on the VM or scale set; ARM
        then refuses every identity write that does not remove it (aad-pod-identity's MIC
        answers by dropping the identities the error names and retrying).
        """
        for key, identity in kept.items():
            if key not in added and self.world.managed_identity(key) is None:
                raise _identity_operation_failed(
                    compute,
                    "NotFound",
                    f"Resource '{arm_resource_id(identity.resource_id)}' was not found.",
                )

    @staticmethod
    def _identity_type(value: Any, compute: ComputeResource) -> tuple[bool, bool]:
        """(system-assigned wanted, user-assigned allowed) from ``identity.type``."""
        if value is None:
            return compute.system_identity is not None, True
        if not isinstance(value, str):
            raise ArmError(
                400, "InvalidParameter", "The value of parameter 'identity.type' is invalid."
            )
        parts = {p.strip().lower() for p in value.split(",")}
        if parts == {"none"}:
            return False, False
        if not parts or not parts <= {"systemassigned", "userassigned"}:
            raise ArmError(
                400,
                "InvalidParameter",
                f"The value '{value}' of parameter 'identity.type' is invalid. Allowed values are"
                " 'None', 'SystemAssigned', 'UserAssigned', 'SystemAssigned, UserAssigned'.",
            )
        return "systemassigned" in parts, "userassigned" in parts

    def _check_linked_authorization(
        self, compute: ComputeResource, claims: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None:
        """Every identity the write adds needs ``assign/action`` for the caller, as in ARM."""
        oid = str(claims.get("oid", ""))
        with self._lock:
            injected = {
                key
                for key, code in self._identity_failures.items()
                if code == "LinkedAuthorizationFailed"
            }
        refused = [
            str(resource_id)
            for resource_id, value in changes.items()
            if value is not None
            and (
                str(resource_id).lower() in injected
                or not self.world.roles.allows(oid, ASSIGN_IDENTITY_ACTION, str(resource_id))
            )
        ]
        if refused:
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{claims.get('appid')}' with object id '{oid}' has permission to"
                f" perform action 'Microsoft.Compute/{compute.kind}/write' on scope"
                f" '{compute.resource_id}'; however, it does not have permission to perform action"
                f" '{ASSIGN_IDENTITY_ACTION}' on the linked scope(s)"
                f" '{','.join(arm_resource_id(r) for r in refused)}' or the"
                " linked scope(s) are invalid.",
            )

    def _check_injected_failures(
        self, compute: ComputeResource, changes: Mapping[str, Any]
    ) -> None:
        with self._lock:
            failing = [
                str(resource_id)
                for resource_id in changes
                if self._identity_failures.get(str(resource_id).lower())
                == "FailedIdentityOperation"
            ]
        if failing:
            raise _identity_operation_failed(
                compute,
                "BadRequest",
                "Identity operation failed for identities"
                f" '{', '.join(arm_resource_id(r) for r in failing)}'.",
            )

    # -- documents ---------------------------------------------------------------------------

    def _identity_block(
        self, compute: ComputeResource, goal: IdentityOperation | None = None
    ) -> dict[str, Any] | None:
        system = compute.system_identity is not None if goal is None else goal.system_assigned
        user = compute.user_assigned if goal is None else goal.user_assigned
        if not system and not user:
            return None
        kinds = [k for k, on in (("SystemAssigned", system), ("UserAssigned", bool(user))) if on]
        block: dict[str, Any] = {"type": ", ".join(kinds)}
        if system and compute.system_identity is not None:
            block["principalId"] = compute.system_identity.principal_id
            block["tenantId"] = self.world.tenant_id
        if user:
            block["userAssignedIdentities"] = {
                arm_resource_id(identity.resource_id): {
                    "principalId": identity.principal_id,
                    "clientId": identity.client_id,
                }
                for identity in user.values()
            }
        return block

    def _document(
        self, compute: ComputeResource, goal: IdentityOperation | None = None
    ) -> dict[str, Any]:
        """The resource as ARM shows it: the goal model while a write is in progress."""
        state = "Succeeded" if goal is None else "Updating"
        doc: dict[str, Any] = {
            "name": compute.name,
            "id": compute.resource_id,
            "type": f"Microsoft.Compute/{compute.kind}",
            "location": compute.location,
            "tags": {},
        }
        identity = self._identity_block(compute, goal)
        if identity is not None:
            doc["identity"] = identity
        if compute.kind == "virtualMachines":
            doc["properties"] = {
                "vmId": compute.unique_id,
                "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                "osProfile": {"computerName": compute.name, "adminUsername": "azureuser"},
                "provisioningState": state,
            }
        else:
            doc["sku"] = {
                "name": "Standard_D2s_v3",
                "tier": "Standard",
                "capacity": compute.capacity,
            }
            doc["properties"] = {
                "uniqueId": compute.unique_id,
                "singlePlacementGroup": True,
                "upgradePolicy": {"mode": "Manual"},
                "provisioningState": state,
                "overprovision": False,
            }
        return doc

    def _instance_document(self, compute: ComputeResource, instance: str) -> dict[str, Any]:
        if not instance.isdigit() or int(instance) >= compute.capacity:
            raise ArmError(
                404,
                "NotFound",
                f"The entity was not found in this Azure location. Instance '{instance}' of"
                f" scale set '{compute.name}' does not exist.",
            )
        doc: dict[str, Any] = {
            "name": f"{compute.name}_{instance}",
            "id": f"{compute.resource_id}/virtualMachines/{instance}",
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": compute.location,
            "instanceId": instance,
            "properties": {
                "latestModelApplied": True,
                "vmId": f"{compute.unique_id[:-6]}{int(instance):06x}",
                "osProfile": {"computerName": f"{compute.name}{int(instance):06d}"},
                "provisioningState": "Succeeded",
            },
        }
        identity = self._identity_block(compute)
        if identity is not None:
            doc["identity"] = identity
        return doc

    def _get_identity(self, request: Request, sub: str, group: str, name: str) -> dict[str, Any]:
        if request.method != "GET":
            raise ArmError(405, "MethodNotAllowed", "Only GET is emulated for identities.")
        resource_id = (
            f"/subscriptions/{sub}/resourceGroups/{group}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
        identity = self.world.managed_identity(resource_id)
        if identity is None or identity.resource_id.lower() != resource_id.lower():
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{name}' under"
                f" resource group '{group}' was not found.",
            )
        return {
            "id": identity.resource_id,
            "name": identity.name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "location": identity.location,
            "tags": {},
            "properties": {
                "tenantId": identity.tenant_id,
                "principalId": identity.principal_id,
                "clientId": identity.client_id,
            },
        }


def _auth_error(code: str, message: str) -> ArmError:
    challenge = (
        'Bearer authorization_uri="https://login.microsoftonline.com/common", '
        f'error="invalid_token", error_description="{message}"'
    )
    return ArmError(401, code, message, headers={"www-authenticate": challenge})


def _identity_operation_failed(compute: ComputeResource, status: str, message: str) -> ArmError:
    inner = json.dumps({"error": {"code": status, "message": message}})
    return ArmError(
        400,
        "FailedIdentityOperation",
        f"Identity operation for resource '{arm_resource_id(compute.resource_id)}' failed with"
        " error 'Failed to"
        f" perform resource identity operation. Status: '{status}'. Response: '{inner}'.'.",
    )


def _iso(epoch: float) -> str:
    """ARM's timestamps: ISO 8601 with seven fractional digits and a zone."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0+00:00"


def _remaining(windows: list[tuple[str, Any]]) -> dict[str, str]:
    """``x-ms-ratelimit-remaining-resource``: what is left of each Compute operation group."""
    value = ",".join(f"Microsoft.Compute/{name};{window.remaining}" for name, window in windows)
    return {"x-ms-ratelimit-remaining-resource": value} if value else {}


def _utc(epoch: Any) -> str:
    seconds = float(epoch) if isinstance(epoch, (int, float)) else 0.0
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)


def with_arm_headers(app: ASGIApp, service: ArmService | None = None) -> ASGIApp:
    """ARM's front door around a service: request IDs, subscription budgets, their headers.

    Every answer, injected faults included, carries ``x-ms-request-id`` and, for a request
    under a subscription, ``x-ms-ratelimit-remaining-subscription-reads`` (GET, HEAD) or
    ``-writes`` (the rest), counted by ``service``'s throttle. A request beyond the budget is
    answered here, before the service sees it: ``429 SubscriptionRequestsThrottled`` with
    ``Retry-After``.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = new_request_id()
        extra = [
            (b"x-ms-request-id", request_id.encode()),
            (b"x-ms-correlation-request-id", request_id.encode()),
        ]

        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            write = scope["method"] not in ("GET", "HEAD")
            throttle = service.throttle() if service is not None else None
            match = _SUBSCRIPTION.match(scope["path"])
            if throttle is not None and match is not None:
                bucket, window = throttle.subscription(match["sub"], write=write)
                wait = window.acquire()
                header = f"x-ms-ratelimit-remaining-subscription-{bucket}".encode()
                extra.append((header, str(window.remaining).encode()))
                if wait is not None:
                    await read_body(receive)
                    raise ArmError(
                        429,
                        "SubscriptionRequestsThrottled",
                        f"Number of '{'write' if write else 'read'}' requests for subscription"
                        f" '{match['sub']}' exceeded. Please try again after"
                        f" '{math.ceil(wait)}' seconds after additional tokens are available."
                        " Refer to https://aka.ms/arm-throttling",
                        headers={"Retry-After": str(math.ceil(wait))},
                    )
            await app(scope, receive, send)

        await error_boundary(admit, headers=lambda _: extra)(scope, receive, send)

    return wrapped
