"""One emulated world's Key Vault challenges never leak into the next."""

from __future__ import annotations

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

from podidentity.testing.azure import AzureEmulator, clear_key_vault_challenge_caches


def read_secret_in_a_new_world() -> str:
    with AzureEmulator() as azure:
        app = azure.world.add_service_principal("reader")
        vault_url = azure.keyvault.create_vault("same-name-vault")
        azure.keyvault.set_secret("same-name-vault", "greeting", "hello")
        azure.keyvault.grant("same-name-vault", app.object_id, secrets=["get"])
        with azure.patched_environ():
            credential = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret)
            with SecretClient(vault_url, credential, retry_total=0) as client:
                return client.get_secret("greeting").value or ""


def test_a_vault_of_the_same_name_in_the_next_tenant_just_works() -> None:
    assert read_secret_in_a_new_world() == "hello"
    assert read_secret_in_a_new_world() == "hello"  # another tenant, same vault host


def test_clearing_forgets_cached_challenges(monkeypatch: pytest.MonkeyPatch) -> None:
    read_secret_in_a_new_world()
    # The emulator clears on stop; put a challenge back as the SDK would have cached it.
    http_challenge_cache._cache["same-name-vault.vault.azure.net"] = object()  # type: ignore[assignment]
    clear_key_vault_challenge_caches()
    assert "same-name-vault.vault.azure.net" not in http_challenge_cache._cache
