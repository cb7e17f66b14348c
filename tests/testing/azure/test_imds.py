"""IMDS per node: ManagedIdentityCredential (sync and aio) against the node it runs on."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure import AzureEmulator, ManualClock

VAULT = "https://vault.azure.net"
TOKEN_PATH = "/metadata/identity/oauth2/token"


def test_token_for_the_single_user_assigned_identity(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", identities=[identity])
    with azure.patched_environ(vm=vm):
        token = ManagedIdentityCredential().get_token(VAULT + "/.default")
    claims = azure.verify_access_token(token.token, VAULT)
    assert claims["oid"] == identity.principal_id
    assert claims["appid"] == identity.client_id
    assert claims["xms_mirid"] == identity.resource_id
    (record,) = azure.imds(vm=vm).log.records
    assert record.path == TOKEN_PATH
    assert parse_qs(record.query)["resource"] == [VAULT]


@pytest.mark.parametrize("select", ["client_id", "resource_id", "object_id"])
def test_selecting_one_of_several_identities_sync(azure: AzureEmulator, select: str) -> None:
    first = azure.world.add_managed_identity("first")
    second = azure.world.add_managed_identity("second")
    vm = azure.world.add_vm("node-0", identities=[first, second])
    value = {
        "client_id": second.client_id,
        "resource_id": second.resource_id,
        "object_id": second.principal_id,
    }[select]
    kwargs = {"client_id": value} if select == "client_id" else {"identity_config": {select: value}}
    with azure.patched_environ(vm=vm):
        token = ManagedIdentityCredential(**kwargs).get_token(VAULT)  # type: ignore[arg-type]
    assert unverified_claims(token.token)["oid"] == second.principal_id
    sent = azure.imds(vm=vm).log.records[-1].query
    # MSAL (sync) spells the resource ID parameter msi_res_id.
    expected = {"client_id": "client_id=", "resource_id": "msi_res_id=", "object_id": "object_id="}
    assert expected[select] in sent


@pytest.mark.parametrize("select", ["client_id", "msi_res_id"])
async def test_selecting_one_of_several_identities_aio(azure: AzureEmulator, select: str) -> None:
    first = azure.world.add_managed_identity("first")
    second = azure.world.add_managed_identity("second")
    vmss = azure.world.add_vmss("pool", capacity=2, identities=[first, second])
    kwargs = (
        {"client_id": second.client_id}
        if select == "client_id"
        else {"identity_config": {"msi_res_id": second.resource_id}}
    )
    with azure.patched_environ(vmss=vmss, instance=1):
        async with AsyncManagedIdentityCredential(**kwargs) as credential:  # type: ignore[arg-type]
            token = await credential.get_token(VAULT)
    assert unverified_claims(token.token)["oid"] == second.principal_id
    sent = azure.imds(vmss=vmss, instance=1).log.records[-1].query
    assert f"{select}=" in sent


async def test_imds_ignores_the_resource_id_the_aio_sdk_sends(azure: AzureEmulator) -> None:
    # azure-identity's aio client sends identity_config={"resource_id": ...} verbatim as
    # resource_id=, which IMDS does not document: it answers as if no identity were named.
    first = azure.world.add_managed_identity("first")
    second = azure.world.add_managed_identity("second")
    vm = azure.world.add_vm("node-0", identities=[first, second])
    with azure.patched_environ(vm=vm):
        async with AsyncManagedIdentityCredential(
            identity_config={"resource_id": second.resource_id}, retry_total=0
        ) as credential:
            with pytest.raises(ClientAuthenticationError, match="Multiple user assigned"):
                await credential.get_token(VAULT)
    assert "resource_id=" in azure.imds(vm=vm).log.records[-1].query
    # With a single identity on the machine, the ignored parameter is silently harmless.
    lone = azure.world.add_vm("node-1", identities=[first])
    answer = _get(azure.imds_url(vm=lone), resource=VAULT, resource_id=second.resource_id)
    assert answer.status_code == 200
    assert unverified_claims(answer.json()["access_token"])["oid"] == first.principal_id


def test_token_api_versions_start_with_2018_02_01(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm) + TOKEN_PATH
    for version, status in (("2017-12-01", 400), ("2018-02-01", 200), ("2019-08-01", 200)):
        answer = httpx.get(
            url,
            params={"api-version": version, "resource": VAULT},
            headers={"Metadata": "true"},
        )
        assert answer.status_code == status, version


def test_system_assigned_identity_is_the_default(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", system_assigned=True, identities=[identity])
    assert vm.system_identity is not None
    with azure.patched_environ(vm=vm):
        token = ManagedIdentityCredential().get_token(VAULT)
    assert unverified_claims(token.token)["oid"] == vm.system_identity.principal_id


def _get(url: str, **params: str) -> httpx.Response:
    return httpx.get(
        url + TOKEN_PATH,
        params={"api-version": "2018-02-01", **params},
        headers={"Metadata": "true"},
    )


def test_wire_shape_of_a_token(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", identities=[identity])
    body = _get(azure.imds_url(vm=vm), resource=VAULT, client_id=identity.client_id).json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
        "client_id",
    }
    assert all(isinstance(v, str) for v in body.values())
    assert body["refresh_token"] == ""
    assert body["token_type"] == "Bearer"
    assert body["resource"] == VAULT
    assert int(body["expires_on"]) - int(body["not_before"]) == int(body["expires_in"])


def test_missing_metadata_header(azure: AzureEmulator) -> None:
    vm = azure.world.add_vm("node-0")
    response = httpx.get(
        azure.imds_url(vm=vm) + TOKEN_PATH, params={"api-version": "2018-02-01", "resource": VAULT}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }


def test_unassigned_identity_is_not_found(azure: AzureEmulator) -> None:
    mine = azure.world.add_managed_identity("mine")
    other = azure.world.add_managed_identity("other")
    vm = azure.world.add_vm("node-0", identities=[mine])
    azure.world.add_vm("node-1", identities=[other])
    response = _get(azure.imds_url(vm=vm), resource=VAULT, client_id=other.client_id)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Identity not found",
    }
    with (
        azure.patched_environ(vm=vm),
        pytest.raises(CredentialUnavailableError, match="Identity not found"),
    ):
        ManagedIdentityCredential(client_id=other.client_id, retry_total=0).get_token(VAULT)


async def test_unassigned_identity_aio(azure: AzureEmulator) -> None:
    other = azure.world.add_managed_identity("other")
    vm = azure.world.add_vm("node-0")
    with azure.patched_environ(vm=vm), pytest.raises(CredentialUnavailableError):
        async with AsyncManagedIdentityCredential(
            client_id=other.client_id, retry_total=0
        ) as credential:
            await credential.get_token(VAULT)


def test_ambiguous_and_absent_identities(azure: AzureEmulator) -> None:
    first = azure.world.add_managed_identity("first")
    second = azure.world.add_managed_identity("second")
    several = azure.world.add_vm("several", identities=[first, second])
    none = azure.world.add_vm("none")
    ambiguous = _get(azure.imds_url(vm=several), resource=VAULT)
    assert ambiguous.status_code == 400
    assert "Multiple user assigned identities exist" in ambiguous.json()["error_description"]
    absent = _get(azure.imds_url(vm=none), resource=VAULT)
    assert absent.json()["error_description"] == "Identity not found"


def test_unknown_resource_and_missing_parameters(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm)
    unknown = _get(url, resource="https://nosuch.example.com")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_resource"
    missing = _get(url)
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "Required audience parameter not specified",
    }
    two = _get(url, resource=VAULT, client_id=identity.client_id, msi_res_id=identity.resource_id)
    assert two.status_code == 400


def test_identity_not_yet_assigned_window(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    azure = azure_with_clock
    azure.imds_service.identity_delay = 30
    identity = azure.world.add_managed_identity("late")
    vmss = azure.world.add_vmss("pool")
    azure.world.assign_identities(vmss, [identity])
    url = azure.imds_url(vmss=vmss, instance=2)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 400
    clock.advance(29)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 400
    clock.advance(1)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 200
    # Removal propagates as slowly: IMDS serves the identity for the window, then refuses.
    azure.world.unassign_identities(vmss, [identity])
    clock.advance(29)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 200
    clock.advance(1)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 400


def test_the_propagation_window_is_on_by_default_and_can_be_zero(
    azure_with_clock: AzureEmulator, clock: ManualClock
) -> None:
    azure = azure_with_clock
    assert azure.imds_service.identity_delay > 0
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("node-0")
    url = azure.imds_url(vm=vm)
    azure.world.assign_identities(vm, [identity])
    assert _get(url, resource=VAULT).json()["error_description"] == "Identity not found"
    clock.advance(azure.imds_service.identity_delay)
    assert _get(url, resource=VAULT).status_code == 200
    azure.imds_service.identity_delay = 0
    azure.world.unassign_identities(vm, [identity])
    assert _get(url, resource=VAULT).status_code == 400


def test_nodes_have_their_own_endpoints(azure: AzureEmulator) -> None:
    vmss = azure.world.add_vmss("pool", capacity=2)
    vm = azure.world.add_vm("single")
    urls = {
        azure.imds_url(vmss=vmss, instance=0),
        azure.imds_url(vmss=vmss, instance=1),
        azure.imds_url(vm=vm),
    }
    assert len(urls) == 3
    assert azure.imds_url(vm="single") == azure.imds_url(vm=vm)
    with pytest.raises(ValueError, match="no instance 2"):
        azure.imds(vmss=vmss, instance=2)


def test_instance_metadata(azure: AzureEmulator) -> None:
    vmss = azure.world.add_vmss("aks-nodepool1-vmss", capacity=3)
    response = httpx.get(
        azure.imds_url(vmss=vmss, instance=2) + "/metadata/instance",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true"},
    )
    compute = response.json()["compute"]
    assert compute["name"] == "aks-nodepool1-vmss_2"
    assert compute["vmScaleSetName"] == "aks-nodepool1-vmss"
    assert compute["subscriptionId"] == vmss.subscription_id
    assert compute["resourceGroupName"] == vmss.resource_group
    assert compute["osProfile"]["computerName"] == "aks-nodepool1-vmss000002"
    assert response.json()["network"]["interface"][0]["ipv4"]["ipAddress"]
    missing_version = httpx.get(
        azure.imds_url(vmss=vmss) + "/metadata/instance", headers={"Metadata": "true"}
    )
    assert missing_version.status_code == 400


def test_injected_imds_outage_is_retried_by_the_sdk(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vm = azure.world.add_vm("node-0", identities=[identity])
    endpoint = azure.imds(vm=vm)
    endpoint.faults.fail_next(1, status=500)
    with azure.patched_environ(vm=vm):
        token = ManagedIdentityCredential(retry_backoff_factor=0).get_token(VAULT)
    assert token.token
    assert [r.status for r in endpoint.log.records] == [500, 200]


def test_injected_imds_error_without_retries(azure: AzureEmulator) -> None:
    vm = azure.world.add_vm("node-0", identities=[azure.world.add_managed_identity("x")])
    azure.imds(vm=vm).faults.fail_next(1, status=503, message="IMDS is restarting")
    with azure.patched_environ(vm=vm), pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(retry_total=0).get_token(VAULT)


def test_a_deleted_identity_gets_no_more_tokens(azure: AzureEmulator) -> None:
    # The VM keeps a dangling reference (ARM shows it), but the identity's service principal is
    # gone, so IMDS can no longer issue tokens for it.
    identity = azure.world.add_managed_identity("gone")
    vm = azure.world.add_vm("node-0", identities=[identity])
    url = azure.imds_url(vm=vm)
    assert _get(url, resource=VAULT, client_id=identity.client_id).status_code == 200
    azure.world.delete_managed_identity(identity)
    by_client_id = _get(url, resource=VAULT, client_id=identity.client_id)
    assert by_client_id.status_code == 400
    assert by_client_id.json()["error_description"] == "Identity not found"
    assert _get(url, resource=VAULT).json()["error_description"] == "Identity not found"


def test_a_removed_scale_set_instance_gets_no_more_tokens(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("app-id")
    vmss = azure.world.add_vmss("pool", capacity=3, identities=[identity])
    url = azure.imds_url(vmss=vmss, instance=2)
    assert _get(url, resource=VAULT).status_code == 200
    azure.world.scale_vmss(vmss, 2)
    gone = _get(url, resource=VAULT)
    assert gone.status_code == 400
    assert gone.json()["error_description"] == "Identity not found"
    metadata = httpx.get(
        url + "/metadata/instance",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true"},
    )
    assert metadata.status_code == 404
    assert _get(azure.imds_url(vmss=vmss, instance=1), resource=VAULT).status_code == 200
    with pytest.raises(ValueError, match="no instance 2"):
        azure.imds(vmss="pool", instance=2)
    azure.world.scale_vmss(vmss, 3)
    assert _get(url, resource=VAULT).status_code == 200


def test_the_system_assigned_identity_follows_the_identity_type(azure: AzureEmulator) -> None:
    # Turning the system-assigned identity off and on again creates a new principal; IMDS
    # issues tokens for the new one only, and none while it is off.
    vm = azure.world.add_vm("node-0", system_assigned=True)
    url = azure.imds_url(vm=vm)
    old = vm.system_identity
    assert old is not None
    assert _get(url, resource=VAULT, object_id=old.principal_id).status_code == 200
    azure.world.set_system_assigned(vm, False)
    assert _get(url, resource=VAULT).json()["error_description"] == "Identity not found"
    new = azure.world.set_system_assigned(vm, True).system_identity
    assert new is not None
    assert new.principal_id != old.principal_id
    assert _get(url, resource=VAULT, object_id=old.principal_id).status_code == 400
    with azure.patched_environ(vm=vm):
        token = ManagedIdentityCredential().get_token(VAULT)
    assert unverified_claims(token.token)["oid"] == new.principal_id
