"""IMDS's per-node limits (429 with Retry-After) and restarts (410), on the world clock."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity.testing.azure import AzureEmulator, ComputeResource, ImdsLimits, ManualClock

VAULT = "https://vault.azure.net"
TOKEN_PATH = "/metadata/identity/oauth2/token"
TOKEN_QUERY = {"api-version": "2018-02-01", "resource": VAULT}
HEADERS = {"Metadata": "true"}


@pytest.fixture
def vm(azure_with_clock: AzureEmulator) -> ComputeResource:
    identity = azure_with_clock.world.add_managed_identity("node-identity")
    return azure_with_clock.world.add_vm("node-0", identities=[identity])


def _token(url: str) -> httpx.Response:
    return httpx.get(url + TOKEN_PATH, params=TOKEN_QUERY, headers=HEADERS)


def test_limits_are_on_by_default_and_can_be_lifted(
    azure_with_clock: AzureEmulator, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    assert azure.imds_service.limits == ImdsLimits(
        requests_per_second=20, concurrent=5, metadata_per_second=5
    )
    url = azure.imds_url(vm=vm)
    assert [_token(url).status_code for _ in range(21)] == [200] * 20 + [429]
    azure.imds_service.limits = None
    assert {_token(url).status_code for _ in range(25)} == {200}


def test_instance_metadata_is_throttled_at_five_per_second(
    azure_with_clock: AzureEmulator, clock: ManualClock, vm: ComputeResource
) -> None:
    url = azure_with_clock.imds_url(vm=vm) + "/metadata/instance"
    query = {"api-version": "2021-02-01"}

    def metadata() -> httpx.Response:
        return httpx.get(url, params=query, headers=HEADERS)

    assert [metadata().status_code for _ in range(5)] == [200] * 5
    throttled = metadata()
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    # The token budget is separate.
    assert _token(azure_with_clock.imds_url(vm=vm)).status_code == 200
    clock.advance(1)
    assert metadata().status_code == 200


def test_rate_limit_per_second_with_retry_after(
    azure_with_clock: AzureEmulator, clock: ManualClock, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    azure.imds_service.limits = ImdsLimits(requests_per_second=20)
    url = azure.imds_url(vm=vm)
    assert [_token(url).status_code for _ in range(20)] == [200] * 20
    throttled = _token(url)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json() == {
        "error": "too_many_requests",
        "error_description": "Too many requests. Retry after some time",
    }
    # Each node has its own budget.
    other = azure.world.add_vm("node-1", identities=[azure.world.add_managed_identity("x")])
    assert _token(azure.imds_url(vm=other)).status_code == 200
    clock.advance(0.5)
    assert _token(url).status_code == 429
    clock.advance(0.5)
    assert _token(url).status_code == 200


def test_the_sdk_gets_the_throttling_error(
    azure_with_clock: AzureEmulator, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    azure.imds_service.limits = ImdsLimits(requests_per_second=1)
    url = azure.imds_url(vm=vm)
    assert _token(url).status_code == 200
    with azure.patched_environ(vm=vm), pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(retry_total=0).get_token(VAULT)
    assert azure.imds(vm=vm).log.records[-1].status == 429


async def test_concurrency_limit_holds_five_in_flight(
    azure_with_clock: AzureEmulator, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    azure.imds_service.limits = ImdsLimits(requests_per_second=20, concurrent=5)
    gate = azure.imds_service.hold_tokens()
    url = azure.imds_url(vm=vm)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        in_flight = [
            asyncio.create_task(client.get(TOKEN_PATH, params=TOKEN_QUERY)) for _ in range(5)
        ]
        await asyncio.to_thread(gate.wait_held, 5)
        sixth = await client.get(TOKEN_PATH, params=TOKEN_QUERY)
        assert sixth.status_code == 429
        assert sixth.headers["retry-after"] == "1"
        gate.open()
        assert [r.status_code for r in await asyncio.gather(*in_flight)] == [200] * 5
        # Slots are given back once answered; the refused request used none of the second.
        assert (await client.get(TOKEN_PATH, params=TOKEN_QUERY)).status_code == 200


async def test_aio_sdk_requests_count_against_the_concurrency_limit(
    azure_with_clock: AzureEmulator, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    azure.imds_service.limits = ImdsLimits(concurrent=1)
    gate = azure.imds_service.hold_tokens()
    with azure.patched_environ(vm=vm):
        async with (
            AsyncManagedIdentityCredential(retry_total=0) as first,
            AsyncManagedIdentityCredential(retry_total=0) as second,
        ):
            held = asyncio.create_task(first.get_token(VAULT))
            await asyncio.to_thread(gate.wait_held, 1)
            with pytest.raises(ClientAuthenticationError):
                await second.get_token(VAULT)
            gate.open()
            assert (await held).token


def test_restart_answers_410_for_the_window(
    azure_with_clock: AzureEmulator, clock: ManualClock, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    endpoint = azure.imds(vm=vm)
    endpoint.restart(70)
    gone = _token(endpoint.url)
    assert gone.status_code == 410
    assert gone.json()["error"] == "gone"
    metadata = httpx.get(
        endpoint.url + "/metadata/instance", params={"api-version": "2021-02-01"}, headers=HEADERS
    )
    assert metadata.status_code == 410
    with azure.patched_environ(vm=vm), pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(retry_total=0).get_token(VAULT)
    clock.advance(69)
    assert _token(endpoint.url).status_code == 410
    clock.advance(1)
    with azure.patched_environ(vm=vm):
        assert ManagedIdentityCredential(retry_total=0).get_token(VAULT).token
    assert [r.status for r in endpoint.log.records] == [410, 410, 410, 410, 200]


async def test_restart_with_a_server_error_status_aio(
    azure_with_clock: AzureEmulator, clock: ManualClock, vm: ComputeResource
) -> None:
    azure = azure_with_clock
    azure.imds(vm=vm).restart(30, status=503)
    with azure.patched_environ(vm=vm):
        async with AsyncManagedIdentityCredential(retry_total=0) as credential:
            with pytest.raises(ClientAuthenticationError):
                await credential.get_token(VAULT)
            assert azure.imds(vm=vm).log.records[-1].status == 503
            clock.advance(30)
            assert (await credential.get_token(VAULT)).token


def test_restart_needs_a_positive_duration(azure: AzureEmulator) -> None:
    vm = azure.world.add_vm("node-0")
    with pytest.raises(ValueError, match="positive"):
        azure.imds(vm=vm).restart(0)
    with pytest.raises(ValueError, match="at least one"):
        ImdsLimits(concurrent=0)
