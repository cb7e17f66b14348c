"""The world's state rules, without any server."""

from __future__ import annotations

import pytest

from podidentity.testing.azure import AzureWorld, ManualClock
from podidentity.testing.azure._world import resource_key


def test_identities_and_applications_are_found_by_any_id() -> None:
    world = AzureWorld()
    identity = world.add_managed_identity("app")
    app = world.add_service_principal("ci")
    assert world.managed_identity(identity.resource_id.upper()) == identity
    assert world.managed_identity(identity.client_id) == identity
    assert world.managed_identity(identity.principal_id) == identity
    assert world.principal_for_client(identity.client_id) == identity.principal
    assert world.principal_for_client(app.client_id) == app.principal
    assert world.principal_for_client("nobody") is None
    with pytest.raises(ValueError, match="already exists"):
        world.add_managed_identity("app")


def test_at_most_20_federated_credentials_per_identity() -> None:
    world = AzureWorld()
    identity = world.add_managed_identity("app")
    for i in range(20):
        world.add_federated_credential(identity, issuer="https://127.0.0.1/", subject=f"s{i}")
    with pytest.raises(ValueError, match="at most 20"):
        world.add_federated_credential(identity, issuer="https://127.0.0.1/", subject="s20")
    assert len(world.federated_credentials(identity.client_id)) == 20


def test_credentials_can_be_added_and_revoked() -> None:
    world = AzureWorld()
    app = world.add_service_principal("ci", with_secret=False)
    assert app.secrets == ()
    second = world.add_client_secret(app.client_id)
    cert = world.add_client_certificate(app.client_id)
    current = world.service_principal(app.client_id)
    assert current is not None
    assert current.secret == second
    assert current.certificate.thumbprint_sha1 == cert.thumbprint_sha1
    world.remove_credentials(app.client_id)
    revoked = world.service_principal(app.client_id)
    assert revoked is not None
    assert revoked.secrets == ()
    with pytest.raises(LookupError):
        _ = revoked.secret


def test_assignment_times_follow_the_world_clock() -> None:
    clock = ManualClock(1_000_000)
    world = AzureWorld(clock=clock)
    one, two = world.add_managed_identity("one"), world.add_managed_identity("two")
    vmss = world.add_vmss("pool", identities=[one])
    clock.advance(10)
    vmss = world.assign_identities(vmss, [one, two])
    assert vmss.assigned_at == {
        one.resource_id.lower(): 1_000_000,
        two.resource_id.lower(): 1_000_010,
    }
    vmss = world.unassign_identities(vmss, [one])
    assert set(vmss.user_assigned) == {two.resource_id.lower()}
    assert vmss.identity_type == "UserAssigned"
    vmss = world.set_system_assigned(vmss, True)
    assert vmss.identity_type == "SystemAssigned, UserAssigned"


def test_snapshots_do_not_change_behind_the_callers_back() -> None:
    world = AzureWorld()
    identity = world.add_managed_identity("one")
    vm = world.add_vm("vm")
    world.assign_identities(vm, [identity])
    assert vm.user_assigned == {}
    assert set(world.vm("vm").user_assigned) == {identity.resource_id.lower()}


def test_lookups_need_unique_names() -> None:
    world = AzureWorld()
    world.add_vm("vm", resource_group="a")
    world.add_vm("vm", resource_group="b")
    with pytest.raises(LookupError, match="resource_group"):
        world.vm("vm")
    assert world.vm("vm", resource_group="b").resource_group == "b"
    with pytest.raises(LookupError):
        world.vmss("vm")


def test_resources_compare_like_azure_ad() -> None:
    world = AzureWorld()
    assert world.knows_resource("https://management.azure.com")
    assert world.knows_resource("HTTPS://VAULT.AZURE.NET/")
    assert not world.knows_resource("api://my-app")
    world.add_resource("api://my-app")
    assert world.knows_resource("api://my-app/")
    assert resource_key("https://x/") == resource_key("https://X")


def test_federated_credentials_have_one_audience_and_an_https_issuer() -> None:
    world = AzureWorld()
    identity = world.add_managed_identity("app")
    with pytest.raises(ValueError, match="exactly one audience"):
        world.add_federated_credential(
            identity,
            issuer="https://127.0.0.1:8443",
            subject="s",
            audiences=["api://AzureADTokenExchange", "api://other"],
        )
    with pytest.raises(ValueError, match="exactly one audience"):
        world.add_federated_credential(
            identity, issuer="https://127.0.0.1:8443", subject="s", audiences=[]
        )
    with pytest.raises(ValueError, match="https URL"):
        world.add_federated_credential(identity, issuer="http://127.0.0.1:8080", subject="s")
    with pytest.raises(ValueError, match="subject"):
        world.add_federated_credential(identity, issuer="https://127.0.0.1:8443", subject="")
    credential = world.add_federated_credential(
        identity, issuer="https://127.0.0.1:8443", subject="s"
    )
    assert credential.audiences == ("api://AzureADTokenExchange",)
