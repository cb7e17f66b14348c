"""ARM: VM and scale-set identities over real HTTPS, with tokens from the emulated Azure AD.

Writes are long-running operations on the world clock: these tests run the emulator on a
:class:`ManualClock` and move it past an operation (:func:`_complete`) instead of sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core import PipelineClient
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential, ManagedIdentityCredential

from podidentity.testing._jwt import b64url_encode, unverified_claims
from podidentity.testing.azure import (
    AzureEmulator,
    ComputeResource,
    ManagedIdentity,
    ManualClock,
    ServicePrincipal,
    arm_error_json,
)
from podidentity.testing.azure._arm import DEFAULT_OPERATION_DURATION, arm_resource_id

API = {"api-version": "2023-03-01"}
IDENTITY_API = {"api-version": "2023-01-31"}
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def azure(azure_with_clock: AzureEmulator) -> AzureEmulator:
    """The emulator on a manual clock: writes complete when the test moves time."""
    return azure_with_clock


def _complete(clock: ManualClock) -> None:
    """Move time past an identity write, as if waiting for its operation."""
    clock.advance(DEFAULT_OPERATION_DURATION)


@pytest.fixture
def arm(azure: AzureEmulator) -> Iterator[httpx.Client]:
    """An httpx client for https://management.azure.com, as MIC: a service principal with the
    roles aad-pod-identity documents, on the whole subscription."""
    app = azure.world.add_service_principal("mic")
    subscription = f"/subscriptions/{azure.world.default_subscription_id}"
    azure.world.grant_role(app, subscription, "Virtual Machine Contributor")
    azure.world.grant_role(app, subscription, "Managed Identity Operator")
    with azure.patched_environ():
        token = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret).get_token(
            ARM_SCOPE
        )
        with httpx.Client(
            base_url="https://management.azure.com",
            params=API,
            headers={"Authorization": f"Bearer {token.token}"},
        ) as client:
            yield client


def _patch(
    client: httpx.Client, target: ComputeResource, identity: dict[str, Any]
) -> httpx.Response:
    return client.patch(target.resource_id, json={"identity": identity})


def _get_vm(azure: AzureEmulator, vm: ComputeResource, token: str) -> httpx.Response:
    """GET ``vm`` from ARM with ``token`` as the bearer token, without an SDK in between."""
    with azure.patched_environ():
        return httpx.get(
            f"https://management.azure.com{vm.resource_id}",
            params=API,
            headers={"Authorization": f"Bearer {token}"},
        )


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_get_vm_and_scale_set(azure: AzureEmulator, arm: httpx.Client) -> None:
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("vm-0", system_assigned=True, identities=[identity])
    vmss = azure.world.add_vmss("pool", capacity=2)
    body = arm.get(vm.resource_id).json()
    assert body["id"] == vm.resource_id
    assert body["type"] == "Microsoft.Compute/virtualMachines"
    assert body["identity"]["type"] == "SystemAssigned, UserAssigned"
    assert body["identity"]["principalId"] == vm.system_identity.principal_id  # type: ignore[union-attr]
    # Azure spells the resource-group segment of identity keys in lower case: compare IDs
    # case-insensitively.
    assert body["identity"]["userAssignedIdentities"] == {
        arm_resource_id(identity.resource_id): {
            "principalId": identity.principal_id,
            "clientId": identity.client_id,
        }
    }
    assert "/resourcegroups/" in next(iter(body["identity"]["userAssignedIdentities"]))
    scale_set = arm.get(vmss.resource_id).json()
    assert scale_set["sku"]["capacity"] == 2
    assert "identity" not in scale_set
    instance = arm.get(vmss.resource_id + "/virtualMachines/1").json()
    assert instance["name"] == "pool_1"
    assert arm.get(vmss.resource_id + "/virtualMachines/2").status_code == 404
    # ARM compares paths case-insensitively.
    assert arm.get(vm.resource_id.lower()).status_code == 200


def _keys(response: httpx.Response) -> set[str]:
    return {k.lower() for k in response.json()["identity"].get("userAssignedIdentities", {})}


def test_patch_adds_and_removes_identities(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    one = azure.world.add_managed_identity("one")
    two = azure.world.add_managed_identity("two")
    vmss = azure.world.add_vmss("pool", system_assigned=True)
    added = _patch(
        arm,
        vmss,
        {
            "type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {one.resource_id: {}, two.resource_id: {}},
        },
    )
    assert added.status_code == 200
    assert _keys(added) == {one.resource_id.lower(), two.resource_id.lower()}
    _complete(clock)
    assert set(azure.world.vmss("pool").user_assigned) == {
        one.resource_id.lower(),
        two.resource_id.lower(),
    }
    removed = _patch(
        arm,
        vmss,
        {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {one.resource_id: None}},
    )
    assert _keys(removed) == {two.resource_id.lower()}
    _complete(clock)
    # Dropping UserAssigned from the type takes every user-assigned identity off and leaves
    # the system-assigned one alone.
    last = _patch(arm, vmss, {"type": "SystemAssigned"})
    assert last.json()["identity"]["type"] == "SystemAssigned"
    assert "userAssignedIdentities" not in last.json()["identity"]
    _complete(clock)
    none = _patch(arm, vmss, {"type": "None"})
    assert "identity" not in none.json()
    _complete(clock)
    assert azure.world.vmss("pool").identity_type == "None"


def test_put_replaces_the_identity_block(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    one = azure.world.add_managed_identity("one")
    two = azure.world.add_managed_identity("two")
    vm = azure.world.add_vm("vm-0", identities=[one])
    response = arm.put(
        vm.resource_id,
        json={
            "location": "eastus",
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {two.resource_id: {}}},
        },
    )
    assert _keys(response) == {two.resource_id.lower()}
    _complete(clock)
    assert set(azure.world.vm("vm-0").user_assigned) == {two.resource_id.lower()}


def test_assign_through_arm_then_imds_issues_the_token(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool", capacity=3)
    with azure.patched_environ(vmss=vmss, instance=2):
        before = ManagedIdentityCredential(client_id=identity.client_id, retry_total=0)
        with pytest.raises(Exception, match="Identity not found"):
            before.get_token("https://vault.azure.net")
        response = _patch(
            arm,
            vmss,
            {"type": "UserAssigned", "userAssignedIdentities": {identity.resource_id: {}}},
        )
        assert response.status_code == 200
        # IMDS knows the identity once the operation completed and the change propagated.
        _complete(clock)
        clock.advance(azure.imds_service.identity_delay)
        token = ManagedIdentityCredential(client_id=identity.client_id).get_token(
            "https://vault.azure.net"
        )
    claims = azure.verify_access_token(token.token, "https://vault.azure.net")
    assert claims["oid"] == identity.principal_id


def test_azure_core_pipeline_with_a_credential(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("mic")
    vm = azure.world.add_vm("vm-0")
    azure.world.grant_role(app, vm, "Reader")
    with azure.patched_environ():
        credential = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret)
        client: PipelineClient[HttpRequest, Any] = PipelineClient(
            "https://management.azure.com",
            policies=[
                BearerTokenCredentialPolicy(credential, ARM_SCOPE),
                RetryPolicy(retry_total=0),
            ],
        )
        with client:
            response = client.send_request(
                HttpRequest("GET", f"https://management.azure.com{vm.resource_id}", params=API)
            )
    assert response.status_code == 200
    assert response.json()["name"] == "vm-0"


def test_token_for_the_wrong_audience(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("mic")
    vm = azure.world.add_vm("vm-0")
    token = azure.issue_token(app, "https://vault.azure.net")
    response = _get_vm(azure, vm, token.access_token)
    status, code, message = _error(response)
    assert (status, code) == (401, "InvalidAuthenticationTokenAudience")
    assert "https://vault.azure.net" in message
    assert response.headers["www-authenticate"].startswith("Bearer authorization_uri=")


def test_expired_token(azure_with_clock: AzureEmulator, clock: ManualClock) -> None:
    azure = azure_with_clock
    app = azure.world.add_service_principal("mic")
    vm = azure.world.add_vm("vm-0")
    token = azure.issue_token(app, "https://management.azure.com/")
    clock.advance(3600 + 120)
    response = _get_vm(azure, vm, token.access_token)
    status, code, message = _error(response)
    assert (status, code) == (401, "ExpiredAuthenticationToken")
    assert "is earlier than current UTC time" in message


def test_missing_and_forged_tokens(azure: AzureEmulator) -> None:
    from podidentity.testing._jwt import JwtSigner

    vm = azure.world.add_vm("vm-0")
    forged = JwtSigner().sign(
        {
            "aud": "https://management.azure.com/",
            "iss": f"https://sts.windows.net/{azure.tenant_id}/",
            "exp": 2**31,
        }
    )
    with azure.patched_environ():
        missing = httpx.get(f"https://management.azure.com{vm.resource_id}", params=API)
    bad = _get_vm(azure, vm, forged)
    assert _error(missing)[:2] == (401, "AuthenticationFailed")
    assert _error(bad)[:2] == (401, "InvalidAuthenticationToken")


def test_api_version_is_required(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    with azure.patched_environ():
        response = httpx.get(
            f"https://management.azure.com{vm.resource_id}",
            headers={"Authorization": arm.headers["Authorization"]},
        )
    assert _error(response)[:2] == (400, "MissingApiVersionParameter")


def test_a_repeated_query_parameter_is_read_by_its_first_value(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    # One rule in every emulator, as Go's url.Values.Get: the first value wins.
    vm = azure.world.add_vm("vm-0")
    url = f"https://management.azure.com{vm.resource_id}"
    auth = {"Authorization": arm.headers["Authorization"]}
    with azure.patched_environ():
        first_valid = httpx.get(
            f"{url}?api-version=2023-03-01&api-version=1999-01-01", headers=auth
        )
        first_bogus = httpx.get(
            f"{url}?api-version=1999-01-01&api-version=2023-03-01", headers=auth
        )
    assert first_valid.status_code == 200
    assert first_valid.json()["id"] == vm.resource_id
    assert _error(first_bogus)[:2] == (400, "NoRegisteredProviderFound")


def test_not_found_errors(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    missing_vm = vm.resource_id.replace("/vm-0", "/vm-9")
    assert _error(arm.get(missing_vm))[:2] == (404, "ResourceNotFound")
    missing_group = vm.resource_id.replace("podidentity-nodes", "nosuch")
    assert _error(arm.get(missing_group))[:2] == (404, "ResourceGroupNotFound")
    missing_sub = vm.resource_id.replace(vm.subscription_id, "00000000-0000-0000-0000-000000000000")
    assert _error(arm.get(missing_sub))[:2] == (404, "SubscriptionNotFound")


def test_unknown_identity_is_refused(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    ghost = ManagedIdentity(
        name="ghost",
        subscription_id=vm.subscription_id,
        resource_group="podidentity",
        tenant_id=azure.tenant_id,
    )
    response = _patch(
        arm, vm, {"type": "UserAssigned", "userAssignedIdentities": {ghost.resource_id: {}}}
    )
    status, code, message = _error(response)
    assert (status, code) == (400, "FailedIdentityOperation")
    assert arm_resource_id(ghost.resource_id) in message
    assert "/resourcegroups/" in message


def test_more_than_150_identities_in_one_request(azure: AzureEmulator, arm: httpx.Client) -> None:
    vmss = azure.world.add_vmss("pool")
    identities = [azure.world.add_managed_identity(f"id-{i}") for i in range(151)]
    response = _patch(
        arm,
        vmss,
        {"type": "UserAssigned", "userAssignedIdentities": {i.resource_id: {} for i in identities}},
    )
    status, code, message = _error(response)
    assert (status, code) == (400, "FailedIdentityOperation")
    assert (
        "User Assigned Identities Number '151' Assign exceed limit '150' in one request." in message
    )
    assert azure.world.vmss("pool").user_assigned == {}


@pytest.mark.parametrize(
    ("code", "status"), [("LinkedAuthorizationFailed", 403), ("FailedIdentityOperation", 400)]
)
def test_injected_identity_errors(
    azure: AzureEmulator, arm: httpx.Client, code: str, status: int
) -> None:
    # Ids in error messages come back spelled /resourcegroups/: match case-insensitively.
    good = azure.world.add_managed_identity("good")
    bad = azure.world.add_managed_identity("bad")
    vmss = azure.world.add_vmss("pool")
    azure.arm.service.fail_identity(bad, code)
    both = {
        "type": "UserAssigned",
        "userAssignedIdentities": {good.resource_id: {}, bad.resource_id: {}},
    }
    got_status, got_code, message = _error(_patch(arm, vmss, both))
    assert (got_status, got_code) == (status, code)
    assert bad.resource_id.lower() in message.lower()
    assert good.resource_id.lower() not in message.lower()
    # Dropping the named identity and retrying works, as upstream MIC does.
    retry = _patch(
        arm, vmss, {"type": "UserAssigned", "userAssignedIdentities": {good.resource_id: {}}}
    )
    assert retry.status_code == 200


def test_denied_principal(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    # The fixture's client authenticates as a service principal; find it from its token.
    oid = azure.verify_access_token(
        arm.headers["Authorization"].split()[1], "https://management.azure.com/"
    )["oid"]
    azure.arm.service.deny(oid)
    assert _error(arm.get(vm.resource_id))[:2] == (403, "AuthorizationFailed")


def test_throttling_with_retry_after_and_ratelimit_headers(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    vm = azure.world.add_vm("vm-0")
    ok = arm.get(vm.resource_id)
    reads_left = int(ok.headers["x-ms-ratelimit-remaining-subscription-reads"])
    azure.arm.faults.fail_next(1, status=429, retry_after=17, method="PATCH")
    throttled = _patch(arm, vm, {"type": "None"})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "17"
    assert int(throttled.headers["x-ms-ratelimit-remaining-subscription-writes"]) >= 0
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    again = arm.get(vm.resource_id)
    assert int(again.headers["x-ms-ratelimit-remaining-subscription-reads"]) == reads_left - 1
    assert again.headers["x-ms-request-id"]


def test_server_error_and_connection_reset(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    azure.arm.faults.fail_next(1, status=500)
    assert _error(arm.get(vm.resource_id))[:2] == (500, "InternalServerError")
    azure.arm.faults.reset_next(1)
    with pytest.raises(httpx.HTTPError):
        arm.get(vm.resource_id)
    assert arm.get(vm.resource_id).status_code == 200


def test_a_specific_error_code_can_be_injected(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    azure.arm.faults.fail_next(
        1,
        status=409,
        method="PATCH",
        body=arm_error_json(
            "OperationNotAllowed",
            "Operation 'write' is not allowed on VM 'vm-0' since it is being deallocated.",
        ),
    )
    assert _error(_patch(arm, vm, {"type": "None"}))[:2] == (409, "OperationNotAllowed")


def test_identity_resource(azure: AzureEmulator, arm: httpx.Client) -> None:
    identity = azure.world.add_managed_identity("app")
    body = arm.get(identity.resource_id, params=IDENTITY_API).json()
    assert body["properties"] == {
        "tenantId": azure.tenant_id,
        "principalId": identity.principal_id,
        "clientId": identity.client_id,
    }


# -- role assignments ------------------------------------------------------------------------


def _client_for(azure: AzureEmulator, who: ServicePrincipal) -> httpx.Client:
    token = azure.issue_token(who, "https://management.azure.com/").access_token
    return httpx.Client(
        base_url="https://management.azure.com",
        params=API,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_principal_without_a_role_can_do_nothing(azure: AzureEmulator) -> None:
    stranger = azure.world.add_service_principal("stranger")
    vm = azure.world.add_vm("vm-0")
    identity = azure.world.add_managed_identity("app")
    missing_vm = vm.resource_id.replace("/vm-0", "/vm-9")
    with azure.patched_environ(), _client_for(azure, stranger) as client:
        read = client.get(vm.resource_id)
        write = _patch(client, vm, {"type": "SystemAssigned"})
        identity_read = client.get(identity.resource_id, params=IDENTITY_API)
        # A caller without access learns nothing, not even whether a resource exists.
        missing = client.get(missing_vm)
    status, code, message = _error(read)
    assert (status, code) == (403, "AuthorizationFailed")
    assert (
        f"The client '{stranger.client_id}' with object id '{stranger.object_id}' does not have"
        " authorization to perform action 'Microsoft.Compute/virtualMachines/read' over scope"
        f" '{vm.resource_id}' or the scope is invalid." in message
    )
    assert _error(write)[:2] == (403, "AuthorizationFailed")
    assert "'Microsoft.Compute/virtualMachines/write'" in _error(write)[2]
    assert _error(identity_read)[:2] == (403, "AuthorizationFailed")
    assert _error(missing)[:2] == (403, "AuthorizationFailed")
    assert azure.world.vm("vm-0").identity_type == "None"


def test_roles_cover_their_scope_and_what_is_below_only(azure: AzureEmulator) -> None:
    operator = azure.world.add_service_principal("operator")
    vm = azure.world.add_vm("vm-0")
    elsewhere = azure.world.add_vm("vm-1", resource_group="other-nodes")
    azure.world.grant_role(
        operator, f"/subscriptions/{vm.subscription_id}/resourceGroups/podidentity-nodes", "Reader"
    )
    with azure.patched_environ(), _client_for(azure, operator) as client:
        assert client.get(vm.resource_id).status_code == 200
        # Reader may not write, nor read another resource group.
        assert _error(_patch(client, vm, {"type": "SystemAssigned"}))[:2] == (
            403,
            "AuthorizationFailed",
        )
        assert _error(client.get(elsewhere.resource_id))[:2] == (403, "AuthorizationFailed")


def test_assigning_an_identity_needs_managed_identity_operator_on_it(
    azure: AzureEmulator, clock: ManualClock
) -> None:
    mic = azure.world.add_service_principal("mic")
    allowed = azure.world.add_managed_identity("allowed")
    forbidden = azure.world.add_managed_identity("forbidden")
    vmss = azure.world.add_vmss("pool", system_assigned=True, identities=[forbidden])
    azure.world.grant_role(mic, vmss, "Virtual Machine Contributor")
    azure.world.grant_role(mic, allowed, "Managed Identity Operator")
    with azure.patched_environ(), _client_for(azure, mic) as client:
        both = {
            "type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {allowed.resource_id: {}, forbidden.resource_id: {}},
        }
        refused = _patch(client, vmss, both)
        only_allowed = {
            "type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {allowed.resource_id: {}},
        }
        accepted = _patch(client, vmss, only_allowed)
        _complete(clock)
        # Taking an identity off needs no right on the identity itself.
        removal = {
            "type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {forbidden.resource_id: None},
        }
        removed = _patch(client, vmss, removal)
        _complete(clock)
    status, code, message = _error(refused)
    assert (status, code) == (403, "LinkedAuthorizationFailed")
    assert (
        f"The client '{mic.client_id}' with object id '{mic.object_id}' has permission to perform"
        f" action 'Microsoft.Compute/virtualMachineScaleSets/write' on scope '{vmss.resource_id}';"
        " however, it does not have permission to perform action"
        " 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s)"
        f" '{arm_resource_id(forbidden.resource_id)}' or the linked scope(s) are invalid."
        == message
    )
    assert accepted.status_code == 200
    assert removed.status_code == 200
    assert set(azure.world.vmss("pool").user_assigned) == {allowed.resource_id.lower()}


def test_deny_wins_over_roles(azure: AzureEmulator) -> None:
    owner = azure.world.add_service_principal("owner")
    vm = azure.world.add_vm("vm-0")
    azure.world.grant_role(owner, f"/subscriptions/{vm.subscription_id}", "Owner")
    azure.arm.service.deny(owner.object_id)
    with azure.patched_environ(), _client_for(azure, owner) as client:
        assert _error(client.get(vm.resource_id))[:2] == (403, "AuthorizationFailed")


def test_role_names_and_scopes_are_validated(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("app")
    with pytest.raises(ValueError, match="unknown role 'Virtual Machine Admin'"):
        azure.world.grant_role(
            app, f"/subscriptions/{azure.world.default_subscription_id}", "Virtual Machine Admin"
        )
    with pytest.raises(ValueError, match="under /subscriptions/"):
        azure.world.grant_role(app, "/resourceGroups/x", "Reader")


def _unsigned(claims: dict[str, Any]) -> str:
    header = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url_encode(json.dumps(claims).encode())}."


@pytest.mark.parametrize(
    ("forge", "code"),
    [
        # Signed with the emulator's own key, but for another tenant.
        ("other_tenant", "InvalidAuthenticationTokenTenant"),
        ("alg_none", "InvalidAuthenticationToken"),
        ("hs256_with_the_public_key", "InvalidAuthenticationToken"),
    ],
)
def test_tokens_arm_must_refuse(azure: AzureEmulator, forge: str, code: str) -> None:
    owner = azure.world.add_service_principal("owner")
    vm = azure.world.add_vm("vm-0")
    azure.world.grant_role(owner, vm, "Owner")
    good = azure.issue_token(owner, "https://management.azure.com/").access_token
    claims = unverified_claims(good)
    if forge == "other_tenant":
        other = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
        token = azure.issuer.signer.sign(
            {**claims, "tid": other, "iss": f"https://sts.windows.net/{other}/"}
        )
    elif forge == "alg_none":
        token = _unsigned(claims)
    else:
        header = b64url_encode(
            json.dumps({"alg": "HS256", "kid": azure.issuer.signer.kid}).encode()
        )
        token = f"{header}.{good.split('.')[1]}.{good.split('.')[2]}"
    with azure.patched_environ():
        response = httpx.get(
            f"https://management.azure.com{vm.resource_id}",
            params=API,
            headers={"Authorization": f"Bearer {token}"},
        )
    assert _error(response)[:2] == (401, code)
    assert token not in response.text


def test_a_write_keeping_a_deleted_identity_fails_until_it_is_removed(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    # Azure keeps a dangling reference when an assigned identity is deleted, and every later
    # write that keeps it fails with FailedIdentityOperation naming it (why MIC drops the
    # identities an error names and retries).
    gone = azure.world.add_managed_identity("gone")
    other = azure.world.add_managed_identity("other")
    vmss = azure.world.add_vmss("pool", identities=[gone])
    azure.world.delete_managed_identity(gone)
    assert gone.resource_id.lower() in _keys(arm.get(vmss.resource_id))
    keeping = _patch(
        arm, vmss, {"type": "UserAssigned", "userAssignedIdentities": {other.resource_id: {}}}
    )
    status, code, message = _error(keeping)
    assert (status, code) == (400, "FailedIdentityOperation")
    assert gone.resource_id.lower() in message.lower()
    assert other.resource_id.lower() not in azure.world.vmss("pool").user_assigned
    removing = _patch(
        arm,
        vmss,
        {
            "type": "UserAssigned",
            "userAssignedIdentities": {gone.resource_id: None, other.resource_id: {}},
        },
    )
    assert removing.status_code == 200, removing.json()
    assert _keys(removing) == {other.resource_id.lower()}
    _complete(clock)
    assert set(azure.world.vmss("pool").user_assigned) == {other.resource_id.lower()}


def test_a_write_does_not_lose_a_concurrent_world_change(
    azure: AzureEmulator, arm: httpx.Client, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    # ARM's PATCH is a read-modify-write of the identity block; a world change made (from the
    # test's thread) while it runs must not be overwritten by the PATCH's stale copy.
    first = azure.world.add_managed_identity("first")
    concurrent = azure.world.add_managed_identity("concurrent")
    vmss = azure.world.add_vmss("pool")
    lookup = azure.world.managed_identity
    changed: list[bool] = []

    def lookup_then_change(key: str) -> ManagedIdentity | None:
        # Runs in the middle of the PATCH, after ARM read the scale set.
        if not changed:
            changed.append(True)
            azure.world.assign_identities(vmss, [concurrent])
        return lookup(key)

    monkeypatch.setattr(azure.world, "managed_identity", lookup_then_change)
    response = _patch(
        arm, vmss, {"type": "UserAssigned", "userAssignedIdentities": {first.resource_id: {}}}
    )
    assert response.status_code == 200, response.json()
    assert changed
    _complete(clock)
    assert set(azure.world.vmss("pool").user_assigned) == {
        first.resource_id.lower(),
        concurrent.resource_id.lower(),
    }


def test_built_in_roles_carry_only_their_real_actions(azure: AzureEmulator) -> None:
    vm_contributor = azure.world.add_service_principal("vm-contributor")
    operator = azure.world.add_service_principal("operator")
    vm = azure.world.add_vm("vm-0")
    identity = azure.world.add_managed_identity("app")
    subscription = f"/subscriptions/{vm.subscription_id}"
    azure.world.grant_role(vm_contributor, subscription, "Virtual Machine Contributor")
    azure.world.grant_role(operator, subscription, "Managed Identity Operator")
    with azure.patched_environ():
        with _client_for(azure, vm_contributor) as client:
            assert client.get(vm.resource_id).status_code == 200
            # Virtual Machine Contributor has no read on identities (no */read).
            read = client.get(identity.resource_id, params=IDENTITY_API)
            assert _error(read)[:2] == (403, "AuthorizationFailed")
            assert "'Microsoft.ManagedIdentity/userAssignedIdentities/read'" in _error(read)[2]
        with _client_for(azure, operator) as client:
            # Managed Identity Operator reads identities (userAssignedIdentities/*/read) ...
            assert client.get(identity.resource_id, params=IDENTITY_API).status_code == 200
            # ... but not machines, nor may it write them.
            assert _error(client.get(vm.resource_id))[:2] == (403, "AuthorizationFailed")
            denied = _patch(client, vm, {"type": "None"})
            assert _error(denied)[:2] == (403, "AuthorizationFailed")
