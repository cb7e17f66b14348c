"""The ARM client against the Azure emulator, through azure-identity's aio credential."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from azure.identity.aio import ClientSecretCredential

from podidentity.azure import (
    AZURE_CHINA_CLOUD,
    AZURE_PUBLIC_CLOUD,
    AZURE_US_GOVERNMENT,
    ArmClient,
    cloud_named,
    normalize_id,
)
from podidentity.errors import (
    AzureError,
    AzureForbiddenError,
    AzureThrottledError,
    AzureUnavailableError,
    ConfigError,
)
from podidentity.testing import AzureEmulator, ManualClock


class Clock:
    """The client's clock and sleep, moving the emulator's world clock along with it.

    ARM operations complete, and throttling windows refill, on the world clock: a client that
    "sleeps" must move that clock, or its polls find the operation still running.
    """

    def __init__(self) -> None:
        self.world = ManualClock()
        self._now = 1000.0
        self.slept: list[float] = []

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self.world.advance(max(0.0, value - self._now))
        self._now = value

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def azure(clock: Clock) -> Iterator[AzureEmulator]:
    with AzureEmulator(clock=clock.world) as emulator:
        yield emulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def arm(azure: AzureEmulator, clock: Clock) -> AsyncIterator[ArmClient]:
    """A client authenticated as a service principal with the roles MIC needs."""
    app = azure.world.add_service_principal("mic")
    subscription = f"/subscriptions/{azure.world.default_subscription_id}"
    azure.world.grant_role(app, subscription, "Virtual Machine Contributor")
    azure.world.grant_role(app, subscription, "Managed Identity Operator")
    credential = ClientSecretCredential(
        azure.tenant_id,
        app.client_id,
        app.secret,
        authority=azure.authority,
        **azure.client_kwargs(),
    )
    context = ssl.create_default_context(cafile=str(azure.ca_bundle))
    async with credential, httpx.AsyncClient(proxy=azure.proxy.url, verify=context) as http:
        yield ArmClient(credential, http_client=http, clock=clock, sleep=clock.sleep)


def writes(azure: AzureEmulator) -> int:
    return len(azure.arm.log.find(method="PATCH"))


async def test_add_and_remove_identities_on_a_scale_set(
    azure: AzureEmulator, arm: ArmClient
) -> None:
    vmss = azure.world.add_vmss("pool", capacity=2)
    one = azure.world.add_managed_identity("one")
    two = azure.world.add_managed_identity("two")
    state = await arm.get_identities(vmss.resource_id)
    assert state.user_assigned == {}
    result = await arm.change_identities(vmss.resource_id, add=[one.resource_id, two.resource_id])
    assert result.writes == 1
    assert set(result.identities.user_assigned) == {
        normalize_id(one.resource_id),
        normalize_id(two.resource_id),
    }
    live = azure.world.vmss("pool")
    assert set(live.user_assigned) == {one.resource_id.lower(), two.resource_id.lower()}
    result = await arm.change_identities(vmss.resource_id, remove=[one.resource_id.upper()])
    assert set(azure.world.vmss("pool").user_assigned) == {two.resource_id.lower()}
    assert result.identities.user_assigned.keys() == {normalize_id(two.resource_id)}


async def test_nothing_to_change_sends_no_write_and_ids_compare_without_case(
    azure: AzureEmulator, arm: ArmClient
) -> None:
    vm = azure.world.add_vm("vm1")
    ident = azure.world.add_managed_identity("one")
    azure.world.assign_identities(vm, [ident])
    lower = ident.resource_id.replace("resourceGroups", "resourcegroups").lower()
    result = await arm.change_identities(vm.resource_id, add=[lower])
    assert result.writes == 0
    assert writes(azure) == 0


async def test_system_assigned_identity_is_kept_when_the_last_user_identity_goes(
    azure: AzureEmulator, arm: ArmClient
) -> None:
    vm = azure.world.add_vm("vm1")
    azure.world.set_system_assigned(vm, True)
    ident = azure.world.add_managed_identity("one")
    await arm.change_identities(vm.resource_id, add=[ident.resource_id])
    await arm.change_identities(vm.resource_id, remove=[ident.resource_id])
    live = azure.world.vm("vm1")
    assert live.system_identity is not None
    assert live.user_assigned == {}


@pytest.mark.parametrize("code", ["LinkedAuthorizationFailed", "FailedIdentityOperation"])
async def test_a_refused_identity_is_dropped_and_the_rest_assigned(
    azure: AzureEmulator, arm: ArmClient, code: str
) -> None:
    vmss = azure.world.add_vmss("pool")
    good = azure.world.add_managed_identity("good")
    bad = azure.world.add_managed_identity("bad")
    kept = azure.world.add_managed_identity("kept")
    azure.world.assign_identities(vmss, [kept])
    azure.arm.service.fail_identity(bad, code)
    result = await arm.change_identities(vmss.resource_id, add=[good.resource_id, bad.resource_id])
    assert set(result.dropped) == {normalize_id(bad.resource_id)}
    assert result.dropped[normalize_id(bad.resource_id)].code == code
    assert set(azure.world.vmss("pool").user_assigned) == {
        good.resource_id.lower(),
        kept.resource_id.lower(),
    }
    assert result.writes == 2


async def test_an_identity_deleted_in_azure_is_dropped(
    azure: AzureEmulator, arm: ArmClient
) -> None:
    vmss = azure.world.add_vmss("pool")
    good = azure.world.add_managed_identity("good")
    gone = azure.world.add_managed_identity("gone")
    azure.world.delete_managed_identity(gone)
    result = await arm.change_identities(vmss.resource_id, add=[good.resource_id, gone.resource_id])
    assert set(result.dropped) == {normalize_id(gone.resource_id)}
    assert set(azure.world.vmss("pool").user_assigned) == {good.resource_id.lower()}


async def test_throttling_blocks_the_subscription_for_retry_after(
    azure: AzureEmulator, arm: ArmClient, clock: Clock
) -> None:
    vmss = azure.world.add_vmss("pool")
    azure.arm.faults.fail_next(1, status=429, method="GET", retry_after=30)
    with pytest.raises(AzureThrottledError) as caught:
        await arm.get_identities(vmss.resource_id)
    assert caught.value.retry_after == 30
    sent = len(azure.arm.log)
    clock.now += 10
    with pytest.raises(AzureThrottledError) as again:
        await arm.get_identities(vmss.resource_id)
    assert again.value.retry_after == pytest.approx(20)
    assert len(azure.arm.log) == sent  # no request while blocked
    clock.now += 21
    assert (await arm.get_identities(vmss.resource_id)).user_assigned == {}


async def test_server_errors_are_transient(azure: AzureEmulator, arm: ArmClient) -> None:
    vmss = azure.world.add_vmss("pool")
    azure.arm.faults.fail_next(1, status=503, method="GET")
    with pytest.raises(AzureUnavailableError):
        await arm.get_identities(vmss.resource_id)
    assert (await arm.get_identities(vmss.resource_id)).machine == vmss.resource_id


async def test_without_roles_writes_are_forbidden(azure: AzureEmulator, clock: Clock) -> None:
    app = azure.world.add_service_principal("nobody")
    vmss = azure.world.add_vmss("pool")
    credential = ClientSecretCredential(
        azure.tenant_id,
        app.client_id,
        app.secret,
        authority=azure.authority,
        **azure.client_kwargs(),
    )
    context = ssl.create_default_context(cafile=str(azure.ca_bundle))
    async with credential, httpx.AsyncClient(proxy=azure.proxy.url, verify=context) as http:
        client = ArmClient(credential, http_client=http, clock=clock, sleep=clock.sleep)
        with pytest.raises(AzureForbiddenError, match="AuthorizationFailed"):
            await client.get_identities(vmss.resource_id)


def test_clouds() -> None:
    assert cloud_named("AzureChinaCloud") is AZURE_CHINA_CLOUD
    assert cloud_named("usgov") is AZURE_US_GOVERNMENT
    assert AZURE_PUBLIC_CLOUD.scope == "https://management.azure.com/.default"
    with pytest.raises(ConfigError, match="AzurePublicCloud"):
        cloud_named("mars")


# -- long-running operations: ARM's protocol, on a scripted transport (pure client logic) ---

MACHINE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/p"
IDENT = (
    "/subscriptions/s/resourceGroups/ids/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/x"
)


class Token:
    token = "t"


class Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        self.scopes.extend(scopes)
        return Token()


def scripted(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def vmss_doc(*ids: str) -> dict[str, Any]:
    users = {i: {"clientId": "c", "principalId": "p"} for i in ids}
    return {"identity": {"type": "UserAssigned", "userAssignedIdentities": users}} if ids else {}


async def test_async_operation_is_polled_until_it_succeeds(clock: Clock) -> None:
    seen: list[httpx.Request] = []
    poll = "https://management.chinacloudapi.cn/operations/1?api-version=x"
    answers = [
        httpx.Response(200, json=vmss_doc()),
        httpx.Response(202, headers={"Azure-AsyncOperation": poll, "Retry-After": "3"}),
        httpx.Response(200, json={"status": "InProgress"}, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"status": "Succeeded"}),
    ]
    credential = Credential()
    async with scripted(answers, seen) as http:
        client = ArmClient(
            credential, cloud=AZURE_CHINA_CLOUD, http_client=http, clock=clock, sleep=clock.sleep
        )
        result = await client.change_identities(MACHINE, add=[IDENT])
    assert [r.method for r in seen] == ["GET", "PATCH", "GET", "GET"]
    assert str(seen[0].url).startswith("https://management.chinacloudapi.cn/subscriptions/s/")
    assert json.loads(seen[1].content) == {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENT: {}}}
    }
    assert clock.slept == [3, 2]
    assert credential.scopes[0] == "https://management.chinacloudapi.cn/.default"
    assert normalize_id(IDENT) in result.identities.user_assigned


async def test_a_failed_operation_drops_the_named_identity(clock: Clock) -> None:
    seen: list[httpx.Request] = []
    poll = "https://management.azure.com/operations/2"
    other = IDENT.replace("/x", "/y")
    failed = {
        "status": "Failed",
        "error": {"code": "LinkedAuthorizationFailed", "message": f"no assign on '{IDENT}'"},
    }
    answers = [
        httpx.Response(200, json=vmss_doc()),
        httpx.Response(202, headers={"Azure-AsyncOperation": poll}),
        httpx.Response(200, json=failed),
        httpx.Response(200, json=vmss_doc(other)),
    ]
    async with scripted(answers, seen) as http:
        client = ArmClient(Credential(), http_client=http, clock=clock, sleep=clock.sleep)
        result = await client.change_identities(MACHINE, add=[IDENT, other])
    assert set(result.dropped) == {normalize_id(IDENT)}
    assert json.loads(seen[3].content)["identity"]["userAssignedIdentities"] == {other: {}}
    assert result.identities.user_assigned.keys() == {normalize_id(other)}


async def test_location_polling_and_operation_failure(clock: Clock) -> None:
    seen: list[httpx.Request] = []
    where = "https://management.azure.com/operationResults/3"
    answers = [
        httpx.Response(200, json=vmss_doc()),
        httpx.Response(202, headers={"Location": where}),
        httpx.Response(202),
        httpx.Response(200, json=vmss_doc(IDENT)),
    ]
    async with scripted(answers, seen) as http:
        client = ArmClient(Credential(), http_client=http, clock=clock, sleep=clock.sleep)
        result = await client.change_identities(MACHINE, add=[IDENT])
    assert result.identities.user_assigned.keys() == {normalize_id(IDENT)}
    assert clock.slept == [1.0, 1.0]

    poll = "https://management.azure.com/operations/4"
    answers = [
        httpx.Response(200, json=vmss_doc()),
        httpx.Response(201, headers={"Azure-AsyncOperation": poll}),
        httpx.Response(200, json={"status": "Failed", "error": {"code": "InternalServerError"}}),
    ]
    async with scripted(answers, seen) as http:
        client = ArmClient(Credential(), http_client=http, clock=clock, sleep=clock.sleep)
        with pytest.raises(AzureUnavailableError, match="operation failed"):
            await client.change_identities(MACHINE, add=[IDENT])


async def test_an_operation_that_never_ends_times_out(clock: Clock) -> None:
    poll = "https://management.azure.com/operations/5"
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(200, json=vmss_doc()),
        httpx.Response(202, headers={"Azure-AsyncOperation": poll}),
    ]
    answers += [httpx.Response(200, json={"status": "InProgress"}) for _ in range(20)]
    async with scripted(answers, seen) as http:
        client = ArmClient(
            Credential(),
            http_client=http,
            clock=clock,
            sleep=clock.sleep,
            operation_timeout=10,
            poll_interval=1,
        )
        with pytest.raises(AzureError, match="did not finish"):
            await client.change_identities(MACHINE, add=[IDENT])
