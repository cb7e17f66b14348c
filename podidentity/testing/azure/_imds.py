"""IMDS, the Instance Metadata Service of one emulated VM or scale-set instance.

Each node of the emulated world gets its own plain-HTTP endpoint, so a test "runs on node X" by
pointing ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` at that node's URL. The token endpoint answers
only for identities that ARM state says are on the node's VM or scale set, the way the real
IMDS does, including the window right after an assignment in which IMDS does not know the
identity yet (:attr:`ImdsService.identity_delay`).

Wire shapes follow IMDS: ``GET /metadata/identity/oauth2/token?api-version=&resource=`` plus at
most one of ``client_id``, ``object_id``, ``msi_res_id`` (what MSAL sends), ``mi_res_id`` or
``resource_id`` (what azure-identity's aio client sends); header ``Metadata: true``; the answer's
numbers are strings.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import attrs

from podidentity.testing.azure._http import (
    ASGIApp,
    Receive,
    Request,
    Scope,
    Send,
    read_request,
    send_json,
)
from podidentity.testing.azure._tokens import IMDS_TOKEN_LIFETIME, TokenIssuer
from podidentity.testing.azure._world import (
    AzureWorld,
    ComputeKind,
    ComputeResource,
    Principal,
)

__all__ = ["IDENTITY_PARAMETERS", "ImdsNode", "ImdsService", "imds_error_body"]

logger = logging.getLogger(__name__)

#: Query parameters that select a user-assigned identity; IMDS accepts one at most.
IDENTITY_PARAMETERS = ("client_id", "object_id", "msi_res_id", "mi_res_id", "resource_id")
_TOKEN_PATH = re.compile(r"^/metadata/identity/oauth2/token/?$", re.IGNORECASE)
_INSTANCE_PATH = re.compile(r"^/metadata/instance(/.*)?$", re.IGNORECASE)


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
    body = {"error": error.get(status, "unknown_error"), "error_description": message}
    return json.dumps(body).encode(), "application/json; charset=utf-8"


class _ImdsError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.payload = {"error": error, "error_description": description}


class ImdsService:
    """What every node's IMDS shares: the world, the token issuer, the propagation delay.

    Attributes:
        identity_delay: seconds (world clock) after an identity is assigned to a VM or scale
            set during which IMDS still answers "Identity not found", as right after a real
            scale-set update. 0 by default.
    """

    def __init__(self, world: AzureWorld, issuer: TokenIssuer) -> None:
        self.world = world
        self.issuer = issuer
        self.identity_delay = 0.0

    def __repr__(self) -> str:
        return f"ImdsService(identity_delay={self.identity_delay})"

    def app(self, node: ImdsNode) -> ASGIApp:
        """The ASGI app of one node's IMDS."""

        async def imds(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            request = await read_request(scope, receive)
            try:
                status, payload = self._dispatch(node, request)
            except _ImdsError as err:
                status, payload = err.status, err.payload
            await send_json(send, status, payload)

        return imds

    def _dispatch(self, node: ImdsNode, request: Request) -> tuple[int, Any]:
        if _TOKEN_PATH.match(request.path):
            self._check_common(request)
            return 200, self._token(node, request)
        if _INSTANCE_PATH.match(request.path):
            self._check_common(request)
            return 200, self._instance(node)
        return 404, {"error": "Not found"}

    @staticmethod
    def _check_common(request: Request) -> None:
        if request.method != "GET":
            raise _ImdsError(405, "invalid_request", "Only GET is supported")
        if request.headers.get("metadata", "").lower() != "true":
            raise _ImdsError(400, "invalid_request", "Required metadata header not specified")
        if not request.query.get("api-version"):
            raise _ImdsError(
                400,
                "invalid_request",
                "Bad request. api-version was not specified in the request. For more"
                " information refer to aka.ms/azureimds",
            )

    def _token(self, node: ImdsNode, request: Request) -> dict[str, str]:
        resource = request.query.get("resource", "")
        if not resource:
            raise _ImdsError(
                400, "invalid_request", "Required query variable 'resource' is missing"
            )
        principal = self._select_identity(node, request)
        if not self.world.knows_resource(resource):
            raise _ImdsError(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {resource} was not found in the"
                f" tenant named {self.world.tenant_id}.",
            )
        token = self.issuer.issue(principal, resource, lifetime=IMDS_TOKEN_LIFETIME)
        logger.info(
            "IMDS %s issued a token for %s (client %s) to %s",
            node.machine_name,
            principal.display_name,
            principal.client_id,
            resource,
        )
        return {
            "access_token": token.access_token,
            "refresh_token": "",
            "expires_in": str(token.expires_in),
            "expires_on": str(token.expires_on),
            "ext_expires_in": str(token.expires_in),
            "not_before": str(token.not_before),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        }

    def _select_identity(self, node: ImdsNode, request: Request) -> Principal:
        given = {p: request.query[p] for p in IDENTITY_PARAMETERS if request.query.get(p)}
        if len(given) > 1:
            raise _ImdsError(
                400,
                "invalid_request",
                "Only one of client_id, object_id, msi_res_id may be specified",
            )
        compute = self.world.lookup_compute(
            node.kind, node.subscription_id, node.resource_group, node.name
        )
        if compute is None:
            raise _ImdsError(400, "invalid_request", "Identity not found")
        system, user = self._visible_identities(compute)
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

    def _visible_identities(
        self, compute: ComputeResource
    ) -> tuple[Principal | None, list[Principal]]:
        now = self.world.clock()
        user = [
            identity.principal
            for key, identity in compute.user_assigned.items()
            if now >= compute.assigned_at.get(key, 0.0) + self.identity_delay
        ]
        system = None
        if compute.system_identity is not None:
            system = Principal(
                client_id=compute.system_identity.client_id,
                object_id=compute.system_identity.principal_id,
                kind="ManagedIdentity",
                display_name=compute.name,
                resource_id=compute.resource_id,
            )
        return system, user

    def _instance(self, node: ImdsNode) -> dict[str, Any]:
        compute = self.world.lookup_compute(
            node.kind, node.subscription_id, node.resource_group, node.name
        )
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
