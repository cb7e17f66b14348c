"""Which credential a pod uses: the choice (pure), and workload identity end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podidentity.errors import ConfigError
from podidentity.keyvault import VaultObject, choose_credential, fetch
from podidentity.testing._jwt import JwtSigner
from podidentity.testing._server import ServerThread, TLSFiles
from podidentity.testing.azure import AzureEmulator
from tests.keyvault.conftest import VaultWorld
from tests.testing.azure.oidc_issuer import OidcIssuer, issuer_app

WORKLOAD = {
    "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
    "AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222",
    "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
}


def test_managed_identity_without_a_workload_environment() -> None:
    assert choose_credential(environ={}).kind == "managed"
    assert choose_credential(environ={}).kwargs == {}
    assert choose_credential(client_id="abc", environ={}).kwargs == {"client_id": "abc"}
    by_id = choose_credential(resource_id="/subscriptions/x", environ={})
    assert by_id.kwargs == {"identity_config": {"resource_id": "/subscriptions/x"}}


def test_workload_identity_when_the_webhook_set_the_environment() -> None:
    choice = choose_credential(environ=WORKLOAD)
    assert choice.kind == "workload"
    assert choice.kwargs == {}
    assert choose_credential(client_id="other", environ=WORKLOAD).kwargs == {"client_id": "other"}


@pytest.mark.parametrize(
    ("environ", "kwargs", "message"),
    [
        ({"AZURE_FEDERATED_TOKEN_FILE": "/t"}, {}, "AZURE_CLIENT_ID, AZURE_TENANT_ID are not"),
        ({**WORKLOAD, "AZURE_TENANT_ID": ""}, {}, "AZURE_TENANT_ID is not"),
        (WORKLOAD, {"resource_id": "/subscriptions/x"}, "with workload identity"),
        ({}, {"client_id": "a", "resource_id": "/subscriptions/x"}, "not both"),
    ],
)
def test_contradictory_settings_are_refused(
    environ: dict[str, str], kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_credential(environ=environ, **kwargs)


@pytest.fixture
def oidc_issuer(azure: AzureEmulator, tmp_path: Path) -> Iterator[OidcIssuer]:
    signer = JwtSigner()
    url_box: list[str] = []
    cert, key = azure.ca.issue_server(["127.0.0.1"]).write(tmp_path, "issuer")
    with ServerThread("oidc-issuer") as server:
        running = server.serve_asgi(
            issuer_app(signer, url_box), tls=TLSFiles(cert_file=cert, key_file=key)
        )
        url_box.append(running.url)
        yield OidcIssuer(url=running.url, signer=signer)


def test_fetch_with_workload_identity_from_the_environment(
    world: VaultWorld, oidc_issuer: OidcIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = "system:serviceaccount:orders:api"
    identity = world.azure.world.add_managed_identity(f"workload-{world.vault}")
    world.azure.world.add_federated_credential(identity, issuer=oidc_issuer.url, subject=subject)
    world.service.grant(world.vault, identity.principal_id, secrets=("get",))
    world.set("a", "for-the-workload")
    token_file = tmp_path / "token"
    token_file.write_text(oidc_issuer.token(subject, now=world.clock()))
    monkeypatch.setenv("AZURE_CLIENT_ID", identity.client_id)
    monkeypatch.setenv("AZURE_TENANT_ID", world.azure.tenant_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    imds_before = len(world.azure.imds(vm=world.vm).log.records)

    result = fetch([VaultObject(vault=world.vault, name="a")])

    assert result.text("a") == "for-the-workload"
    assert len(world.azure.imds(vm=world.vm).log.records) == imds_before  # IMDS not asked
    assert any(r.path.endswith("/oauth2/v2.0/token") for r in world.azure.aad.log.records)
