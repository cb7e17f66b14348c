"""IMDS caches tokens per node like Azure's: the same token until it nears expiry.

Most tests speak httpx to the node's IMDS, since azure-identity's own per-credential cache would
hide IMDS's; the SDK tests use a new credential per request for the same reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure import (
    AzureEmulator,
    ComputeResource,
    ManualClock,
    TokenCachePolicy,
)

VAULT = "https://vault.azure.net"
ARM = "https://management.azure.com/"
TOKEN_PATH = "/metadata/identity/oauth2/token"
DAY = 86399


def _token(url: str, resource: str = VAULT, **selector: str) -> dict[str, Any]:
    response = httpx.get(
        url + TOKEN_PATH,
        params={"api-version": "2018-02-01", "resource": resource, **selector},
        headers={"Metadata": "true"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refused(url: str, resource: str = VAULT, **selector: str) -> str:
    response = httpx.get(
        url + TOKEN_PATH,
        params={"api-version": "2018-02-01", "resource": resource, **selector},
        headers={"Metadata": "true"},
    )
    assert response.status_code == 400, response.text
    description: str = response.json()["error_description"]
    return description


def _node_with_an_identity(azure: AzureEmulator) -> tuple[ComputeResource, str]:
    """A VM with one user-assigned identity, and its IMDS URL."""
    vm = azure.world.add_vm("node-0", identities=[azure.world.add_managed_identity("app")])
    return vm, azure.imds_url(vm=vm)


def test_the_same_token_with_a_shrinking_expires_in(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    azure = azure_with_clock
    vm, url = _node_with_an_identity(azure)
    first = _token(url)
    clock.advance(600)
    second = _token(url)
    assert second["access_token"] == first["access_token"]
    assert int(first["expires_in"]) == DAY
    assert int(second["expires_in"]) == DAY - 600
    assert second["ext_expires_in"] == second["expires_in"]
    assert second["expires_on"] == first["expires_on"]
    assert second["not_before"] == first["not_before"]
    # The cache is IMDS's, not the client's: every request reaches the endpoint and is logged.
    assert [r.path for r in azure.imds(vm=vm).log.records] == [TOKEN_PATH, TOKEN_PATH]


def test_a_new_token_from_the_refresh_point(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    azure = azure_with_clock
    _vm, url = _node_with_an_identity(azure)
    first = _token(url)
    margin = azure.imds_service.token_policy.refresh_margin
    assert margin == 300
    clock.advance(DAY - margin - 1)
    last_reuse = _token(url)
    assert last_reuse["access_token"] == first["access_token"]
    assert int(last_reuse["expires_in"]) == margin + 1
    clock.advance(1)
    renewed = _token(url)
    assert renewed["access_token"] != first["access_token"]
    assert int(renewed["expires_in"]) == DAY
    assert int(renewed["expires_on"]) == int(first["expires_on"]) + DAY - margin
    assert _token(url)["access_token"] == renewed["access_token"]


def test_the_lifetime_and_margin_are_configurable(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    azure = azure_with_clock
    azure.imds_service.token_policy = TokenCachePolicy(lifetime=3600, refresh_margin=600)
    _vm, url = _node_with_an_identity(azure)
    first = _token(url)
    assert int(first["expires_in"]) == 3600
    claims = unverified_claims(first["access_token"])
    assert claims["exp"] - claims["iat"] == 3600
    clock.advance(2999)
    assert _token(url)["access_token"] == first["access_token"]
    clock.advance(1)
    assert _token(url)["access_token"] != first["access_token"]


@pytest.mark.parametrize(
    ("lifetime", "margin", "rule"),
    [(0, 300, "lifetime"), (-1, 300, "lifetime"), (3600, -1, "margin")],
    ids=["zero", "negative", "margin"],
)
def test_a_policy_refuses_impossible_values(lifetime: int, margin: int, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        TokenCachePolicy(lifetime=lifetime, refresh_margin=margin)


def test_a_clock_set_back_gets_a_new_token(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    # A token "issued in the future" would report more life than it was issued with.
    azure = azure_with_clock
    _vm, url = _node_with_an_identity(azure)
    clock.advance(120)
    first = _token(url)
    clock.set(clock() - 60)  # still after the assignment, before the issue
    again = _token(url)
    assert again["access_token"] != first["access_token"]
    assert int(again["expires_in"]) == DAY


def test_one_entry_per_resource_compared_as_azure_ad_does(azure: AzureEmulator) -> None:
    _vm, url = _node_with_an_identity(azure)
    vault = _token(url, VAULT)
    arm = _token(url, ARM)
    assert arm["access_token"] != vault["access_token"]
    assert unverified_claims(arm["access_token"])["aud"] == ARM
    # Case and a trailing slash do not make another resource; the answer echoes the request.
    spelled_otherwise = _token(url, "HTTPS://Vault.Azure.Net/")
    assert spelled_otherwise["access_token"] == vault["access_token"]
    assert spelled_otherwise["resource"] == "HTTPS://Vault.Azure.Net/"
    assert _token(url, ARM)["access_token"] == arm["access_token"]


def test_one_entry_per_identity(azure: AzureEmulator) -> None:
    first = azure.world.add_managed_identity("first")
    second = azure.world.add_managed_identity("second")
    vm = azure.world.add_vm("node-0", identities=[first, second])
    url = azure.imds_url(vm=vm)
    for_first = _token(url, client_id=first.client_id)
    for_second = _token(url, client_id=second.client_id)
    assert for_first["access_token"] != for_second["access_token"]
    assert unverified_claims(for_second["access_token"])["oid"] == second.principal_id
    # However the identity is named, it is the same entry.
    by_resource_id = _token(url, msi_res_id=first.resource_id)
    by_object_id = _token(url, object_id=second.principal_id)
    assert by_resource_id["access_token"] == for_first["access_token"]
    assert by_object_id["access_token"] == for_second["access_token"]


def test_one_cache_per_node(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool", capacity=2, identities=[identity])
    vm = azure.world.add_vm("node-0", identities=[identity])
    urls = [azure.imds_url(vmss=vmss, instance=0), azure.imds_url(vmss=vmss, instance=1)]
    urls.append(azure.imds_url(vm=vm))
    tokens = [_token(url)["access_token"] for url in urls]
    assert len(set(tokens)) == 3
    assert [_token(url)["access_token"] for url in urls] == tokens


@pytest.mark.parametrize("how", ["unassign_identities", "update_identity"])
def test_an_unassigned_identity_loses_its_cached_token(azure: AzureEmulator, how: str) -> None:
    # Security rule: a token is never served for an identity no longer on the VM, and assigning
    # it again does not bring the old token back.
    azure.imds_service.identity_delay = 0  # the rule under test, not the propagation window
    identity = azure.world.add_managed_identity("app")
    other = azure.world.add_managed_identity("other")
    vmss = azure.world.add_vmss("pool", capacity=1, identities=[identity, other])
    url = azure.imds_url(vmss=vmss)
    cached = _token(url, client_id=identity.client_id)["access_token"]
    kept = _token(url, client_id=other.client_id)["access_token"]
    if how == "unassign_identities":
        azure.world.unassign_identities(vmss, [identity])
    else:  # what an ARM PATCH with {identity: null} does
        azure.world.update_identity(
            vmss, system_assigned=False, user_assigned={other.resource_id: other}
        )
    assert _refused(url, client_id=identity.client_id) == "Identity not found"
    assert _token(url, client_id=other.client_id)["access_token"] == kept
    azure.world.assign_identities(vmss, [identity])
    again = _token(url, client_id=identity.client_id)["access_token"]
    assert again != cached


def test_unassigned_and_reassigned_between_requests_gets_a_new_token(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    # No request sees the gap, yet the assignment is a new one: the old token must not return.
    azure = azure_with_clock
    azure.imds_service.identity_delay = 0
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm)
    cached = _token(url)["access_token"]
    azure.world.unassign_identities(vm, [identity])
    clock.advance(1)
    azure.world.assign_identities(vm, [identity])
    assert _token(url)["access_token"] != cached


def test_a_deleted_identity_loses_its_cached_token(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm)
    _token(url, client_id=identity.client_id)
    azure.world.delete_managed_identity(identity)
    assert _refused(url, client_id=identity.client_id) == "Identity not found"
    assert _refused(url) == "Identity not found"


def test_a_new_system_assigned_identity_does_not_get_the_old_token(azure: AzureEmulator) -> None:
    vm = azure.world.add_vm("node-0", system_assigned=True)
    url = azure.imds_url(vm=vm)
    old = _token(url)
    azure.world.set_system_assigned(vm, False)
    assert _refused(url) == "Identity not found"
    azure.world.set_system_assigned(vm, True)
    new = _token(url)
    assert new["access_token"] != old["access_token"]
    assert new["client_id"] != old["client_id"]


def test_a_scale_set_instance_that_comes_back_starts_empty(azure: AzureEmulator) -> None:
    vmss = azure.world.add_vmss(
        "pool", capacity=2, identities=[azure.world.add_managed_identity("app")]
    )
    url = azure.imds_url(vmss=vmss, instance=1)
    cached = _token(url)["access_token"]
    azure.world.scale_vmss(vmss, 1)
    assert _refused(url) == "Identity not found"
    azure.world.scale_vmss(vmss, 2)
    assert _token(url)["access_token"] != cached


def test_the_cache_can_be_turned_off(azure_with_clock: AzureEmulator, clock: ManualClock) -> None:
    azure = azure_with_clock
    azure.imds_service.cache_tokens = False
    _vm, url = _node_with_an_identity(azure)
    first = _token(url)
    clock.advance(10)
    second = _token(url)
    assert second["access_token"] != first["access_token"]
    assert int(second["expires_in"]) == DAY
    assert int(second["expires_on"]) == int(first["expires_on"]) + 10


def test_new_sdk_credentials_get_the_cached_token_sync(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("node-0", identities=[identity])
    with azure.patched_environ(vm=vm):
        first = ManagedIdentityCredential(client_id=identity.client_id).get_token(VAULT)
        second = ManagedIdentityCredential(client_id=identity.client_id).get_token(VAULT)
    assert second.token == first.token
    assert second.expires_on == first.expires_on
    assert len(azure.imds(vm=vm).log.records) == 2


async def test_new_sdk_credentials_get_the_cached_token_aio(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool", capacity=1, identities=[identity])
    tokens = []
    with azure.patched_environ(vmss=vmss):
        for _ in range(2):
            async with AsyncManagedIdentityCredential(client_id=identity.client_id) as credential:
                tokens.append(await credential.get_token(VAULT))
    assert tokens[1].token == tokens[0].token
    assert tokens[1].expires_on == tokens[0].expires_on
    assert len(azure.imds(vmss=vmss).log.records) == 2


def test_a_removed_identity_keeps_its_token_for_the_propagation_window(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    # IMDS lags a removal as it lags an assignment: the cached token is still served for the
    # window (a token proxy must not rely on removal being instant), never after it.
    azure = azure_with_clock
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm)
    cached = _token(url)["access_token"]
    azure.world.unassign_identities(vm, [identity])
    clock.advance(azure.imds_service.identity_delay - 1)
    assert _token(url)["access_token"] == cached
    clock.advance(1)
    assert _refused(url) == "Identity not found"
