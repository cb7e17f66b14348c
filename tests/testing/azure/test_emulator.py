"""The emulator as a whole: lifecycle, environment, Key Vault wiring, and the network guard."""

from __future__ import annotations

import os

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

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
