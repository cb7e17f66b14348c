"""Azure Resource Manager for VMs and scale sets: the ``identity`` block that MIC reads and writes.

Routes (paths compare case-insensitively, as in ARM; ``api-version`` is required):

- ``GET|PATCH|PUT /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/
  virtualMachines/{vm}`` and ``.../virtualMachineScaleSets/{vmss}``;
- ``GET .../virtualMachineScaleSets/{vmss}/virtualMachines/{instance}``;
- ``GET .../providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}``.

Every request needs a bearer token of the tenant for the management audience, and a role
assignment in the world (:meth:`AzureWorld.grant_role`) that allows the action on the requested
resource: without one ARM answers ``403 AuthorizationFailed``, before telling whether the resource
group or the resource exists. A write that adds an identity also needs
``Microsoft.ManagedIdentity/userAssignedIdentities/assign/action`` on that identity (``Managed
Identity Operator``), else ``403 LinkedAuthorizationFailed`` naming it. A write changes
the :class:`~podidentity.testing.azure._world.AzureWorld`, so IMDS on the VM (or on every
instance of the scale set) issues tokens for the new identities. Identity semantics follow ARM:
``userAssignedIdentities`` maps resource IDs to ``{}`` to add or ``null`` to remove; ``type``
combines ``SystemAssigned`` and ``UserAssigned``; at most 150 identities per request.

Errors are ARM's ``{"error": {"code", "message"}}``, including ``LinkedAuthorizationFailed`` and
``FailedIdentityOperation``, which tests can inject for chosen identities
(:meth:`ArmService.fail_identity`); every answer carries ``x-ms-request-id`` and the
``x-ms-ratelimit-remaining-subscription-*`` headers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from podidentity.testing._jwt import InvalidToken, unverified_claims
from podidentity.testing.azure._http import (
    ASGIApp,
    Receive,
    Request,
    Scope,
    Send,
    new_request_id,
    read_request,
    send_json,
)
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
    "IDENTITY_ERROR_CODES",
    "MAX_IDENTITIES_PER_REQUEST",
    "ArmError",
    "ArmService",
    "arm_error_body",
    "arm_error_json",
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
_READS_PER_HOUR = 12000
_WRITES_PER_HOUR = 1200


class ArmError(Exception):
    """An ARM error answer."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def arm_error_json(code: str, message: str) -> bytes:
    """ARM's error body, for :meth:`FaultInjector.fail_next(body=...)` with a specific code."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def arm_error_body(status: int, message: str) -> tuple[bytes, str]:
    """ARM's error shape for an injected fault, with the code ARM uses for that status."""
    if status == 429:
        message = (
            "The request is being throttled as the limit has been reached for operation type -"
            f" Write_ObservationWindow_00:03:00. {message}"
        )
    return arm_error_json(_STATUS_CODES.get(status, "BadRequest"), message), "application/json"


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


class ArmService:
    """ARM over the world's VMs, scale sets and managed identities."""

    def __init__(self, world: AzureWorld, issuer: TokenIssuer) -> None:
        self.world = world
        self.issuer = issuer
        self._lock = threading.Lock()
        self._identity_failures: dict[str, str] = {}
        self._denied: set[str] = set()

    def __repr__(self) -> str:
        return f"ArmService(tenant_id={self.world.tenant_id!r})"

    # -- test controls -----------------------------------------------------------------------

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
        request = await read_request(scope, receive)
        try:
            status, payload = self._dispatch(request)
            headers: dict[str, str] = {}
        except ArmError as err:
            logger.info("ARM refused %s %s: %s", request.method, request.path, err.code)
            status = err.status
            payload = {"error": {"code": err.code, "message": err.message}}
            headers = err.headers
        await send_json(send, status, payload, headers=headers)

    def _dispatch(self, request: Request) -> tuple[int, Any]:
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
        if compute_match["instance"] is not None:
            if request.method != "GET" or kind != "virtualMachineScaleSets":
                raise ArmError(405, "MethodNotAllowed", "Only GET is emulated for instances.")
            return 200, self._instance_document(compute, compute_match["instance"])
        if request.method == "GET":
            return 200, self._document(compute)
        if request.method in ("PATCH", "PUT"):
            updated = self._write(request, compute, claims, replace=request.method == "PUT")
            return 200, self._document(updated)
        raise ArmError(405, "MethodNotAllowed", f"The method {request.method} is not emulated.")

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
        *,
        replace: bool,
    ) -> ComputeResource:
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
        identity = body.get("identity")
        if identity is None:
            return compute
        if not isinstance(identity, dict):
            raise ArmError(400, "InvalidParameter", "The value of parameter 'identity' is invalid.")
        system, user_enabled = self._identity_type(identity.get("type"), compute)
        changes = identity.get("userAssignedIdentities") or {}
        if not isinstance(changes, dict):
            raise ArmError(
                400,
                "InvalidParameter",
                "The value of parameter 'identity.userAssignedIdentities' is invalid.",
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
        removed = {str(resource_id).lower() for resource_id, v in changes.items() if v is None}
        added = self._identities_to_add(changes, user_enabled=user_enabled, compute=compute)
        # The merge reads the live identity block under the world's lock: a change made while
        # this request was validated (a test thread, another write) is kept, not overwritten by
        # the copy read at the start of the request.
        with self.world.atomically():
            live = self.world.lookup_compute(
                compute.kind, compute.subscription_id, compute.resource_group, compute.name
            )
            if live is None:
                raise ArmError(404, "ResourceNotFound", f"{compute.resource_id} was deleted.")
            if identity.get("type") is None:
                system = live.system_identity is not None
            current = {} if replace else dict(live.user_assigned) if user_enabled else {}
            for key in removed:
                current.pop(key, None)
            current.update(added)
            self._check_no_dangling_identities(live, current, added)
            if len(current) > MAX_IDENTITIES_PER_REQUEST:
                raise _identity_operation_failed(
                    live,
                    "BadRequest",
                    f"User Assigned Identities Number '{len(current)}' Assign exceed limit"
                    f" '{MAX_IDENTITIES_PER_REQUEST}' in one request.",
                )
            updated = self.world.update_identity(
                live, system_assigned=system, user_assigned=current
            )
        logger.info(
            "ARM set identities of %s to %s (%d user-assigned)",
            updated.resource_id,
            updated.identity_type,
            len(updated.user_assigned),
        )
        return updated

    def _identities_to_add(
        self, changes: Mapping[str, Any], *, user_enabled: bool, compute: ComputeResource
    ) -> dict[str, ManagedIdentity]:
        """The identities a write adds, by lower-cased resource ID; each must exist."""
        added: dict[str, ManagedIdentity] = {}
        for resource_id, value in changes.items():
            if value is None:
                continue
            if not user_enabled:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "userAssignedIdentities may only be given when identity.type includes"
                    " UserAssigned.",
                )
            key = str(resource_id).lower()
            found = self.world.managed_identity(key)
            if found is None or found.resource_id.lower() != key:
                raise _identity_operation_failed(
                    compute, "NotFound", f"Resource '{resource_id}' was not found."
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
                    compute, "NotFound", f"Resource '{identity.resource_id}' was not found."
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
                f" '{ASSIGN_IDENTITY_ACTION}' on the linked scope(s) '{','.join(refused)}' or the"
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
                f"Identity operation failed for identities '{', '.join(failing)}'.",
            )

    # -- documents ---------------------------------------------------------------------------

    def _identity_block(self, compute: ComputeResource) -> dict[str, Any] | None:
        if compute.identity_type == "None":
            return None
        block: dict[str, Any] = {"type": compute.identity_type}
        if compute.system_identity is not None:
            block["principalId"] = compute.system_identity.principal_id
            block["tenantId"] = self.world.tenant_id
        if compute.user_assigned:
            block["userAssignedIdentities"] = {
                identity.resource_id: {
                    "principalId": identity.principal_id,
                    "clientId": identity.client_id,
                }
                for identity in compute.user_assigned.values()
            }
        return block

    def _document(self, compute: ComputeResource) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": compute.name,
            "id": compute.resource_id,
            "type": f"Microsoft.Compute/{compute.kind}",
            "location": compute.location,
            "tags": {},
        }
        identity = self._identity_block(compute)
        if identity is not None:
            doc["identity"] = identity
        if compute.kind == "virtualMachines":
            doc["properties"] = {
                "vmId": compute.unique_id,
                "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                "osProfile": {"computerName": compute.name, "adminUsername": "azureuser"},
                "provisioningState": "Succeeded",
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
                "provisioningState": "Succeeded",
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
        f"Identity operation for resource '{compute.resource_id}' failed with error 'Failed to"
        f" perform resource identity operation. Status: '{status}'. Response: '{inner}'.'.",
    )


def _utc(epoch: Any) -> str:
    seconds = float(epoch) if isinstance(epoch, (int, float)) else 0.0
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


def with_arm_headers(app: ASGIApp) -> ASGIApp:
    """Add ARM's request IDs and rate-limit headers to every answer, injected faults included.

    The remaining-requests counters go down with each request (per hour, never reset within a
    test) and read 0 on a 429, which is what clients that honour them look at.
    """
    lock = threading.Lock()
    remaining = {"reads": _READS_PER_HOUR, "writes": _WRITES_PER_HOUR}

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        bucket = "reads" if scope["method"] in ("GET", "HEAD") else "writes"
        with lock:
            remaining[bucket] = max(remaining[bucket] - 1, 0)
            left = remaining[bucket]
        request_id = new_request_id()

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                value = 0 if message["status"] == 429 else left
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-ms-request-id", request_id.encode()),
                    (b"x-ms-correlation-request-id", request_id.encode()),
                    (
                        f"x-ms-ratelimit-remaining-subscription-{bucket}".encode(),
                        str(value).encode(),
                    ),
                ]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
