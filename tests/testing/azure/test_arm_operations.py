"""ARM writes as long-running operations, identity validation, api-versions and throttling.

Every test runs the emulator on a :class:`ManualClock`: an operation completes when the test
moves time, and an SDK poller's waits move the same clock (:class:`ClockTransport`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core import PipelineClient
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    RequestIdPolicy,
    RetryPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import (
    LocationPolling,
    LROBasePolling,
    OperationResourcePolling,
    StatusCheckPolling,
)
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential

from podidentity.testing import RateLimit
from podidentity.testing.azure import AzureEmulator, ComputeResource, ManualClock
from podidentity.testing.azure._arm import DEFAULT_OPERATION_DURATION, ArmLimits, arm_resource_id

API = {"api-version": "2024-07-01"}
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def azure(azure_with_clock: AzureEmulator) -> AzureEmulator:
    return azure_with_clock


@pytest.fixture
def token(azure: AzureEmulator) -> str:
    """A MIC-like principal's ARM token: VM Contributor and Managed Identity Operator."""
    app = azure.world.add_service_principal("mic")
    subscription = f"/subscriptions/{azure.world.default_subscription_id}"
    azure.world.grant_role(app, subscription, "Virtual Machine Contributor")
    azure.world.grant_role(app, subscription, "Managed Identity Operator")
    with azure.patched_environ():
        credential = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret)
        return credential.get_token(ARM_SCOPE).token


@pytest.fixture
def arm(azure: AzureEmulator, token: str) -> Iterator[httpx.Client]:
    with (
        azure.patched_environ(),
        httpx.Client(
            base_url="https://management.azure.com",
            params=API,
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        yield client


def _assign(identity_ids: list[str]) -> dict[str, Any]:
    return {
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {i: {} for i in identity_ids},
        }
    }


def _poll(arm: httpx.Client, url: str) -> httpx.Response:
    """GET an operation URL as given (the client's own query would replace its query)."""
    return httpx.get(url, headers={"Authorization": arm.headers["Authorization"]})


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


# -- the operation protocol ----------------------------------------------------------------


def test_a_write_is_accepted_then_completes_with_the_clock(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool")
    accepted = arm.patch(vmss.resource_id, json=_assign([identity.resource_id]))
    assert accepted.status_code == 200
    body = accepted.json()
    assert body["properties"]["provisioningState"] == "Updating"
    assert {k.lower() for k in body["identity"]["userAssignedIdentities"]} == {
        identity.resource_id.lower()
    }
    status_url = accepted.headers["azure-asyncoperation"]
    assert status_url.startswith(
        f"https://management.azure.com/subscriptions/{vmss.subscription_id}/providers/"
        "Microsoft.Compute/locations/eastus/operations/"
    )
    assert "api-version=2024-07-01" in status_url
    assert accepted.headers["location"].endswith("&monitor=true")
    assert accepted.headers["retry-after"] == str(int(DEFAULT_OPERATION_DURATION))
    # Nothing changed yet; ARM shows the goal model while it is being applied.
    assert azure.world.vmss("pool").user_assigned == {}
    shown = arm.get(vmss.resource_id).json()
    assert shown["properties"]["provisioningState"] == "Updating"
    assert "userAssignedIdentities" in shown["identity"]
    in_progress = _poll(arm, status_url)
    assert in_progress.status_code == 200
    assert in_progress.json()["status"] == "InProgress"
    assert "endTime" not in in_progress.json()
    assert in_progress.headers["retry-after"] == "2"
    assert _poll(arm, accepted.headers["location"]).status_code == 202
    clock.advance(DEFAULT_OPERATION_DURATION)
    done = _poll(arm, status_url).json()
    assert done["status"] == "Succeeded"
    assert set(done) == {"startTime", "endTime", "status", "name"}
    final = _poll(arm, accepted.headers["location"])
    assert final.status_code == 200
    assert final.json()["properties"]["provisioningState"] == "Succeeded"
    assert set(azure.world.vmss("pool").user_assigned) == {identity.resource_id.lower()}
    assert arm.get(vmss.resource_id).json()["properties"]["provisioningState"] == "Succeeded"


def test_an_overlapping_write_gets_conflict(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    one, two = azure.world.add_managed_identity("one"), azure.world.add_managed_identity("two")
    vmss = azure.world.add_vmss("pool")
    first = arm.patch(vmss.resource_id, json=_assign([one.resource_id]))
    clock.advance(DEFAULT_OPERATION_DURATION / 2)
    second = arm.patch(vmss.resource_id, json=_assign([two.resource_id]))
    status, code, message = _error(second)
    assert (status, code) == (409, "Conflict")
    assert message.startswith("The request failed due to conflict with a concurrent request.")
    clock.advance(DEFAULT_OPERATION_DURATION)
    assert _poll(arm, first.headers["azure-asyncoperation"]).json()["status"] == "Succeeded"
    # Once the first completed, the retry goes through.
    assert arm.patch(vmss.resource_id, json=_assign([two.resource_id])).status_code == 200


def test_a_newer_write_can_preempt_the_older_one(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    azure.arm.service.overlap = "preempt"
    one, two = azure.world.add_managed_identity("one"), azure.world.add_managed_identity("two")
    vmss = azure.world.add_vmss("pool")
    first = arm.patch(vmss.resource_id, json=_assign([one.resource_id]))
    second = arm.patch(vmss.resource_id, json=_assign([two.resource_id]))
    assert second.status_code == 200
    canceled = _poll(arm, first.headers["azure-asyncoperation"]).json()
    assert canceled["status"] == "Canceled"
    assert canceled["error"] == {
        "code": "OperationPreempted",
        "message": "Operation execution has been preempted by a more recent operation.",
    }
    clock.advance(DEFAULT_OPERATION_DURATION)
    assert _poll(arm, second.headers["azure-asyncoperation"]).json()["status"] == "Succeeded"
    # The newer write merged onto the model the older one had set.
    assert set(azure.world.vmss("pool").user_assigned) == {
        one.resource_id.lower(),
        two.resource_id.lower(),
    }


def test_an_operation_can_fail_and_changes_nothing(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    one, two = azure.world.add_managed_identity("one"), azure.world.add_managed_identity("two")
    vmss = azure.world.add_vmss("pool")
    azure.arm.service.fail_next_operation("InternalExecutionError", "Something went wrong.")
    failing = arm.patch(vmss.resource_id, json=_assign([one.resource_id]))
    assert failing.status_code == 200
    clock.advance(DEFAULT_OPERATION_DURATION)
    assert _poll(arm, failing.headers["azure-asyncoperation"]).json()["error"] == {
        "code": "InternalExecutionError",
        "message": "Something went wrong.",
    }
    assert azure.world.vmss("pool").user_assigned == {}
    # An identity deleted while the write runs fails it too.
    deleting = arm.patch(vmss.resource_id, json=_assign([two.resource_id]))
    azure.world.delete_managed_identity(two)
    clock.advance(DEFAULT_OPERATION_DURATION)
    failed = _poll(arm, deleting.headers["azure-asyncoperation"]).json()
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "FailedIdentityOperation"
    assert azure.world.vmss("pool").user_assigned == {}


def test_a_zero_duration_completes_before_the_answer(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    azure.arm.service.operation_duration = 0
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("vm-0")
    answer = arm.patch(vm.resource_id, json=_assign([identity.resource_id]))
    assert answer.json()["properties"]["provisioningState"] == "Succeeded"
    assert "retry-after" not in answer.headers
    assert _poll(arm, answer.headers["azure-asyncoperation"]).json()["status"] == "Succeeded"
    assert set(azure.world.vm("vm-0").user_assigned) == {identity.resource_id.lower()}


def test_operation_status_needs_a_token_and_a_known_operation(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("vm-0")
    url = arm.patch(vm.resource_id, json=_assign([identity.resource_id])).headers[
        "azure-asyncoperation"
    ]
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    unknown = url.replace("/operations/", "/operations/0000")
    assert _error(_poll(arm, unknown))[:2] == (404, "NotFound")


class ClockTransport(RequestsTransport):
    """A transport whose waits move the emulator's manual clock instead of sleeping."""

    def __init__(self, clock: ManualClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.waits: list[float] = []

    def sleep(self, duration: float) -> None:
        self.waits.append(duration)
        self.clock.advance(duration)


def test_azure_core_poller_follows_the_operation(azure: AzureEmulator, clock: ManualClock) -> None:
    # The pattern azure-mgmt clients use: poll Azure-AsyncOperation until a final status,
    # waiting Retry-After between polls, then GET the resource.
    app = azure.world.add_service_principal("mic")
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool")
    azure.world.grant_role(app, vmss, "Virtual Machine Contributor")
    azure.world.grant_role(app, identity, "Managed Identity Operator")
    with azure.patched_environ():
        credential = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret)
        transport = ClockTransport(clock)
        client: PipelineClient[HttpRequest, Any] = PipelineClient(
            "https://management.azure.com",
            transport=transport,
            policies=[
                RequestIdPolicy(),
                BearerTokenCredentialPolicy(credential, ARM_SCOPE),
                RetryPolicy(),
            ],
        )
        with client:
            request = HttpRequest(
                "PATCH",
                f"https://management.azure.com{vmss.resource_id}",
                params=API,
                json=_assign([identity.resource_id]),
            )
            initial = client._pipeline.run(request)
            poller: LROPoller[Any] = LROPoller(
                client,
                initial,
                lambda response: response.http_response.json(),
                # azure-mgmt-core's ARMPolling: Azure-AsyncOperation first, then Location.
                LROBasePolling(
                    timeout=30,
                    lro_algorithms=[
                        OperationResourcePolling("azure-asyncoperation"),
                        LocationPolling(),
                        StatusCheckPolling(),
                    ],
                ),
            )
            result = poller.result()
    assert poller.status().lower() == "succeeded"
    assert result["properties"]["provisioningState"] == "Succeeded"
    assert transport.waits
    assert all(w >= 1 for w in transport.waits)
    assert set(azure.world.vmss("pool").user_assigned) == {identity.resource_id.lower()}


# -- identity validation ------------------------------------------------------------------


def test_removing_the_last_identity_while_keeping_user_assigned(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    identity = azure.world.add_managed_identity("app")
    vmss = azure.world.add_vmss("pool", identities=[identity])
    body = {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity.resource_id: None}}
    }
    status, code, message = _error(arm.patch(vmss.resource_id, json=body))
    assert (status, code) == (400, "MissingIdentityIds")
    assert message == "The identity ids must not be null or empty for 'UserAssigned' identity type."
    # The right way: drop UserAssigned from the type.
    assert arm.patch(vmss.resource_id, json={"identity": {"type": "None"}}).status_code == 200


@pytest.mark.parametrize("kind", ["SystemAssigned", "None"])
def test_identity_ids_with_a_type_that_has_no_user_assigned(
    azure: AzureEmulator, arm: httpx.Client, kind: str
) -> None:
    identity = azure.world.add_managed_identity("app")
    vm = azure.world.add_vm("vm-0")
    body = {"identity": {"type": kind, "userAssignedIdentities": {identity.resource_id: {}}}}
    status, code, message = _error(arm.patch(vm.resource_id, json=body))
    assert (status, code) == (400, "InvalidParameter")
    assert f"'identity.type' is '{kind}'" in message


def test_identity_values_must_be_empty_null_or_the_current_property(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    held = azure.world.add_managed_identity("held")
    new = azure.world.add_managed_identity("new")
    vm = azure.world.add_vm("vm-0", identities=[held])
    bad = {
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {new.resource_id: {"clientId": new.client_id}},
        }
    }
    status, code, message = _error(arm.patch(vm.resource_id, json=bad))
    assert (status, code) == (400, "InvalidIdentityValues")
    assert arm_resource_id(new.resource_id) in message
    # Echoing back what a GET showed for an identity already there is accepted.
    echoed = arm.get(vm.resource_id).json()["identity"]
    echoed["userAssignedIdentities"][new.resource_id] = {}
    assert arm.patch(vm.resource_id, json={"identity": echoed}).status_code == 200
    clock.advance(DEFAULT_OPERATION_DURATION)
    assert set(azure.world.vm("vm-0").user_assigned) == {
        held.resource_id.lower(),
        new.resource_id.lower(),
    }


def test_put_needs_a_location(azure: AzureEmulator, arm: httpx.Client) -> None:
    vm = azure.world.add_vm("vm-0")
    status, code, _ = _error(arm.put(vm.resource_id, json={"identity": {"type": "None"}}))
    assert (status, code) == (400, "LocationRequired")


@pytest.mark.parametrize(
    ("version", "code"),
    [("2099-01-01", "NoRegisteredProviderFound"), ("latest", "InvalidApiVersionParameter")],
)
def test_api_versions_are_those_compute_supports(
    azure: AzureEmulator, arm: httpx.Client, version: str, code: str
) -> None:
    vm: ComputeResource = azure.world.add_vm("vm-0")
    status, got, message = _error(arm.get(vm.resource_id, params={"api-version": version}))
    assert (status, got) == (400, code)
    assert "2024-07-01" in message
    identity = azure.world.add_managed_identity("app")
    # userAssignedIdentities has its own versions: Compute's are refused there.
    wrong = arm.get(identity.resource_id, params={"api-version": "2024-07-01"})
    assert _error(wrong)[:2] == (400, "NoRegisteredProviderFound")
    assert arm.get(identity.resource_id, params={"api-version": "2023-01-31"}).status_code == 200


# -- throttling ----------------------------------------------------------------------------


def test_throttling_is_on_by_default_and_reported_in_headers(
    azure: AzureEmulator, arm: httpx.Client
) -> None:
    assert azure.arm.service.limits == ArmLimits()
    vm = azure.world.add_vm("vm-0")
    first, second = arm.get(vm.resource_id), arm.get(vm.resource_id)
    reads = [int(r.headers["x-ms-ratelimit-remaining-subscription-reads"]) for r in (first, second)]
    assert reads[1] == reads[0] - 1
    assert second.headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/LowCostGet3Min;3998,Microsoft.Compute/LowCostGet30Min;31998"
    )
    azure.arm.service.limits = None
    assert "x-ms-ratelimit-remaining-resource" not in arm.get(vm.resource_id).headers


def test_compute_throttles_an_operation_group(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    azure.arm.service.limits = ArmLimits(
        compute={"virtualMachines": (("PutVM3Min", RateLimit(1, 180.0)),)}
    )
    vm = azure.world.add_vm("vm-0")
    azure.arm.service.operation_duration = 0
    assert arm.patch(vm.resource_id, json={"identity": {"type": "None"}}).status_code == 200
    throttled = arm.patch(vm.resource_id, json={"identity": {"type": "None"}})
    status, code, _ = _error(throttled)
    assert (status, code) == (429, "OperationNotAllowed")
    (detail,) = throttled.json()["error"]["details"]
    assert detail["code"] == "TooManyRequests"
    assert detail["target"] == "PutVM3Min"
    assert throttled.headers["retry-after"] == "180"
    assert throttled.headers["x-ms-ratelimit-remaining-resource"] == "Microsoft.Compute/PutVM3Min;0"
    clock.advance(180)
    assert arm.patch(vm.resource_id, json={"identity": {"type": "None"}}).status_code == 200


def test_arm_throttles_a_subscription_and_refills(
    azure: AzureEmulator, arm: httpx.Client, clock: ManualClock
) -> None:
    azure.arm.service.limits = ArmLimits(subscription_reads=RateLimit(2, 10.0))
    vm = azure.world.add_vm("vm-0")
    assert [arm.get(vm.resource_id).status_code for _ in range(2)] == [200, 200]
    throttled = arm.get(vm.resource_id)
    status, code, message = _error(throttled)
    assert (status, code) == (429, "SubscriptionRequestsThrottled")
    assert "Number of 'read' requests for subscription" in message
    assert throttled.headers["retry-after"] == "10"
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    clock.advance(10)
    assert arm.get(vm.resource_id).status_code == 200
