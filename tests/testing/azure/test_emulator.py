"""The emulator as a whole: lifecycle, environment, Key Vault wiring, and the network guard."""

from __future__ import annotations

import os

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

from podidentity.testing._faults import FaultInjector, RequestLog
from podidentity.testing.azure import AzureEmulator, ServicePrincipal
from podidentity.testing.network_guard import guard


async def test_async_context_manager() -> None:
    async with AzureEmulator() as azure:
        app = azure.world.add_service_principal("ci")
        with azure.patched_environ():
            async with AsyncClientSecretCredential(
                azure.tenant_id, app.client_id, app.secret, connection_verify=str(azure.ca_bundle)
            ) as credential:
                token = await credential.get_token("https://management.azure.com/.default")
        assert azure.verify_access_token(token.token, "https://management.azure.com")
    with pytest.raises(RuntimeError, match="not running"):
        _ = azure.aad


def test_patched_environ_sets_and_restores(
    azure: AzureEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    vm = azure.world.add_vm("node-0")
    with azure.patched_environ(vm=vm) as env:
        assert os.environ["HTTPS_PROXY"] == azure.proxy.url == env["https_proxy"]
        assert os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == azure.imds_url(vm=vm)
        assert os.environ["REQUESTS_CA_BUNDLE"] == str(azure.ca_bundle)
        assert "127.0.0.1" in os.environ["NO_PROXY"]
    assert os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == "http://127.0.0.1:1"
    assert "HTTPS_PROXY" not in os.environ
    with azure.patched_environ():
        # No node: no IMDS at all, rather than a leftover one.
        assert "AZURE_POD_IDENTITY_AUTHORITY_HOST" not in os.environ


def test_proxy_routes_real_host_names(azure: AzureEmulator) -> None:
    routes = azure.proxy.routes
    assert routes["login.microsoftonline.com"] == int(azure.aad.url.rsplit(":", 1)[1])
    assert routes["management.azure.com"] == int(azure.arm.url.rsplit(":", 1)[1])
    assert "*.vault.azure.net" in routes


def test_key_vault_with_a_managed_identity_end_to_end(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("reader")
    vm = azure.world.add_vm("node-0", identities=[identity])
    vault_url = azure.keyvault.create_vault("app-vault")
    azure.keyvault.set_secret("app-vault", "db-password", "s3cret")
    azure.keyvault.grant("app-vault", identity.principal_id, secrets=["get"])
    http_challenge_cache.clear()
    with azure.patched_environ(vm=vm):
        client = SecretClient(vault_url, ManagedIdentityCredential(client_id=identity.client_id))
        assert client.get_secret("db-password").value == "s3cret"


def test_service_principal_repr_hides_secrets(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci", secret="hunter2-hunter2", with_certificate=True)
    assert isinstance(app, ServicePrincipal)
    assert "hunter2" not in repr(app)
    assert "hunter2" not in repr(azure.world)
    token = azure.issue_token(app, "https://vault.azure.net")
    assert token.access_token not in repr(token)


def test_secrets_never_reach_the_logs(
    azure: AzureEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="podidentity")
    app = azure.world.add_service_principal("ci", secret="hunter2-hunter2")
    with azure.patched_environ():
        from azure.identity import ClientSecretCredential

        token = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret).get_token(
            "https://vault.azure.net/.default"
        )
        with pytest.raises(ClientAuthenticationError):
            ClientSecretCredential(azure.tenant_id, app.client_id, "wrong-secret").get_token(
                "https://vault.azure.net/.default"
            )
    podidentity_logs = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("podidentity")
    )
    assert "Azure AD issued a token" in podidentity_logs
    for secret in ("hunter2-hunter2", "wrong-secret", token.token):
        assert secret not in podidentity_logs


def test_managed_identity_without_the_emulator_is_stopped_by_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without AZURE_POD_IDENTITY_AUTHORITY_HOST the SDK goes for 169.254.169.254: refused."""
    monkeypatch.delenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", raising=False)
    monkeypatch.delenv("IDENTITY_ENDPOINT", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    before = len(guard.violations)
    credential = ManagedIdentityCredential(retry_total=0)
    with pytest.raises(CredentialUnavailableError):
        credential.get_token("https://vault.azure.net")
    provoked = guard.violations[before:]
    assert provoked
    assert all("169.254.169.254" in v for v in provoked)
    # These refusals were provoked on purpose; keep them from failing the session.
    del guard.violations[before:]


async def test_key_vault_with_a_managed_identity_end_to_end_aio(azure: AzureEmulator) -> None:
    identity = azure.world.add_managed_identity("reader")
    vmss = azure.world.add_vmss("pool", identities=[identity])
    vault_url = azure.keyvault.create_vault("app-vault")
    azure.keyvault.set_secret("app-vault", "db-password", "s3cret")
    azure.keyvault.grant("app-vault", identity.principal_id, secrets=["get", "list", "set"])
    http_challenge_cache.clear()
    with azure.patched_environ(vmss=vmss, instance=2):
        async with (
            AsyncManagedIdentityCredential(client_id=identity.client_id) as credential,
            AsyncSecretClient(
                vault_url, credential, connection_verify=str(azure.ca_bundle)
            ) as client,
        ):
            assert (await client.get_secret("db-password")).value == "s3cret"
            await client.set_secret("api-key", "k")
            names = [p.name async for p in client.list_properties_of_secrets()]
    http_challenge_cache.clear()
    assert names == ["api-key", "db-password"]  # Key Vault lists by name
    assert azure.proxy.log.hosts(allowed=True)[-1] == "app-vault.vault.azure.net"
    first = azure.keyvault.requests("app-vault").records[0]
    assert first.status == 401  # the challenge, sent without a token
    assert "authorization" not in first.headers


def _endpoint_faults(
    azure: AzureEmulator, name: str
) -> tuple[FaultInjector, RequestLog, str, dict[str, str]]:
    """An endpoint's faults and log, a URL on it, and the headers a plain request needs."""
    if name == "imds":
        vm = azure.world.add_vm("node-0")
        imds = azure.imds(vm=vm)
        return imds.faults, imds.log, f"{imds.url}/metadata/instance", {"Metadata": "true"}
    if name == "keyvault":
        azure.keyvault.create_vault("fault-vault")
        url = "https://fault-vault.vault.azure.net/secrets?api-version=7.6"
        log = azure.keyvault.requests("fault-vault")
        return azure.keyvault.faults("fault-vault"), log, url, {}
    endpoint = azure.aad if name == "aad" else azure.arm
    return endpoint.faults, endpoint.log, f"{endpoint.base_url}/anything", {}


_ERROR_CODES = {
    "aad": lambda body: body["error"],
    "arm": lambda body: body["error"]["code"],
    "imds": lambda body: body["error"],
    "keyvault": lambda body: body["error"]["code"],
}


@pytest.mark.parametrize("endpoint", ["aad", "arm", "imds", "keyvault"])
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (
            429,
            {
                "aad": "temporarily_unavailable",
                "arm": "TooManyRequests",
                "imds": "too_many_requests",
                "keyvault": "Throttled",
            },
        ),
        (
            503,
            {
                "aad": "temporarily_unavailable",
                "arm": "ServiceUnavailable",
                "imds": "unknown_error",
                "keyvault": "ServiceUnavailable",
            },
        ),
    ],
)
def test_every_endpoint_fails_the_next_calls_in_its_own_shape(
    azure: AzureEmulator, endpoint: str, status: int, code: dict[str, str]
) -> None:
    faults, log, url, headers = _endpoint_faults(azure, endpoint)
    faults.fail_next(2, status=status, retry_after=7)
    with azure.patched_environ(), httpx.Client(headers=headers) as client:
        answers = [client.get(url) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [status, status]
    assert answers[2].status_code not in (status, 500)
    assert answers[0].headers["retry-after"] == "7"
    assert _ERROR_CODES[endpoint](answers[0].json()) == code[endpoint]
    assert [r.status for r in log.records][:2] == [status, status]


@pytest.mark.parametrize("endpoint", ["aad", "arm", "imds", "keyvault"])
def test_latency_is_per_endpoint(azure: AzureEmulator, endpoint: str) -> None:
    faults, log, url, headers = _endpoint_faults(azure, endpoint)
    faults.add_latency(0.3, count=1)
    with azure.patched_environ(), httpx.Client(headers=headers) as client:
        client.get(url)
        client.get(url)
    slow, fast = log.records
    # The log measures from arrival to answer, so the delay shows there without timing the test.
    assert slow.duration >= 0.3
    assert fast.duration < 0.3
    other = "arm" if endpoint != "arm" else "aad"
    assert all(r.duration < 0.3 for r in _endpoint_faults(azure, other)[1].records)


@pytest.mark.parametrize("endpoint", ["aad", "arm", "imds", "keyvault"])
def test_connection_reset_on_every_endpoint(azure: AzureEmulator, endpoint: str) -> None:
    faults, log, url, headers = _endpoint_faults(azure, endpoint)
    faults.reset_next(1)
    with azure.patched_environ(), httpx.Client(headers=headers) as client:
        with pytest.raises(httpx.HTTPError):
            client.get(url)
        after = client.get(url)
    assert after.status_code < 500  # the next call is served normally
    assert log.records[0].status == -1  # the log marks the reset


def test_realism_is_on_by_default_and_can_be_turned_down() -> None:
    from podidentity.testing import RateLimit
    from podidentity.testing.azure import (
        DEFAULT_OPERATION_DURATION,
        DEFAULT_PROPAGATION_DELAY,
        VAULT_RATE_LIMIT,
        ArmLimits,
        ImdsLimits,
    )

    strict = AzureEmulator()
    assert strict.arm_service.operation_duration == DEFAULT_OPERATION_DURATION > 0
    assert strict.imds_service.identity_delay == DEFAULT_PROPAGATION_DELAY > 0
    assert strict.imds_service.limits == ImdsLimits()
    assert strict.arm_service.limits == ArmLimits()
    assert strict.keyvault.rate_limit == VAULT_RATE_LIMIT == RateLimit(4000, 10.0)
    assert strict.keyvault.short_pages
    kind = AzureEmulator(operation_duration=0, propagation_delay=0, throttling=False)
    assert kind.arm_service.operation_duration == 0
    assert kind.imds_service.identity_delay == 0
    assert kind.imds_service.limits is None
    assert kind.arm_service.limits is None
    assert kind.keyvault.rate_limit is None
    kind.set_throttling(True)
    assert kind.arm_service.limits == ArmLimits()
    with pytest.raises(ValueError, match="negative"):
        AzureEmulator(operation_duration=-1)


def test_an_unthrottled_emulator_serves_past_the_limits() -> None:
    with AzureEmulator(throttling=False, propagation_delay=0) as azure:
        identity = azure.world.add_managed_identity("node")
        vm = azure.world.add_vm("node-0", identities=[identity])
        url = azure.imds_url(vm=vm) + "/metadata/instance"
        answers = {
            httpx.get(
                url, params={"api-version": "2021-02-01"}, headers={"Metadata": "true"}
            ).status_code
            for _ in range(8)
        }
    assert answers == {200}
