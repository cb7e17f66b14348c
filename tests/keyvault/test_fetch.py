"""fetch and get_secret end to end: real SecretClient/KeyClient, ManagedIdentityCredential
against the emulated IMDS of the node, HTTPS to the emulated vault."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from azure.identity import ManagedIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from podidentity.errors import (
    AzureForbiddenError,
    AzureNotFoundError,
    AzureThrottledError,
    AzureUnavailableError,
    KeyVaultFetchError,
    ValidationError,
)
from podidentity.keyvault import FetchSettings, VaultObject, fetch, get_secret
from tests.keyvault.chains import three_level_chain
from tests.keyvault.conftest import VaultWorld

SECRET = "Pa55w0rd-do-not-leak"


def test_get_secret_with_the_pods_managed_identity(world: VaultWorld) -> None:
    world.set("db-password", SECRET)
    assert get_secret(world.vault, "db-password") == SECRET
    url = f"https://{world.vault}.vault.azure.net/"
    assert get_secret(url, "db-password") == SECRET
    imds = world.azure.imds(vm=world.vm).log.records
    assert imds[-1].path == "/metadata/identity/oauth2/token"


def test_get_secret_of_a_version(world: VaultWorld) -> None:
    first = world.set("rotating", "v1")
    world.set("rotating", "v2")
    assert get_secret(world.vault, "rotating", version=first) == "v1"
    assert get_secret(world.vault, "rotating") == "v2"


def test_get_secret_with_a_callers_credential(world: VaultWorld) -> None:
    world.set("a", SECRET)
    credential = ManagedIdentityCredential(client_id=world.identity.client_id)
    with credential:
        assert get_secret(world.vault, "a", credential=credential) == SECRET
        # The caller's credential is not closed by us: it still works.
        assert credential.get_token("https://vault.azure.net/.default").token


def test_fetch_many_objects_with_one_get_each(world: VaultWorld) -> None:
    for index in range(30):
        world.set(f"s{index}", f"value-{index}")
    objects = [VaultObject(vault=world.vault, name=f"s{i}", alias=f"S{i}") for i in range(30)]
    result = fetch(objects)
    assert result.ok
    assert [result.text(f"S{i}") for i in range(30)] == [f"value-{i}" for i in range(30)]
    gets = [r for r in world.service.requests(world.vault).records if r.status == 200]
    assert len(gets) == 30


def test_objects_from_two_vaults(world: VaultWorld) -> None:
    other = world.vault + "b"
    world.service.create_vault(other)
    world.service.grant(other, world.identity.principal_id, secrets=("get",))
    world.set("a", "from-first")
    world.service.set_secret(other, "a", "from-second")
    result = fetch(
        [VaultObject(vault=world.vault, name="a"), VaultObject(vault=other, name="a", alias="b")]
    )
    assert (result.text("a"), result.text("b")) == ("from-first", "from-second")


def test_encodings_are_decoded(world: VaultWorld) -> None:
    world.set("b64", base64.b64encode(b"\x00\x01binary").decode())
    world.set("hex", b"\xffhex".hex())
    result = fetch(
        [
            VaultObject(vault=world.vault, name="b64", encoding="base64"),
            VaultObject(vault=world.vault, name="hex", encoding="hex"),
        ]
    )
    assert result["b64"].data == b"\x00\x01binary"
    assert result["hex"].data == b"\xffhex"


def test_multi_value_secrets_split_into_outputs(world: VaultWorld) -> None:
    world.set("db-json", json.dumps({"DB_USER": "app", "DB_PORT": 5432, "TLS": True}))
    world.set("db-yaml", "HOST: db.internal\nNAME: orders\n")
    result = fetch(
        [
            VaultObject(vault=world.vault, name="db-json", split="json"),
            VaultObject(vault=world.vault, name="db-yaml", split="yaml"),
        ]
    )
    assert {n: result.text(n) for n in result} == {
        "DB_USER": "app",
        "DB_PORT": "5432",
        "TLS": "true",
        "HOST": "db.internal",
        "NAME": "orders",
    }


@pytest.mark.parametrize("stored", ["pfx", "pem"])
def test_certificates_as_pem_with_the_chain_in_order(world: VaultWorld, stored: str) -> None:
    issued, expected = three_level_chain()
    world.service.create_certificate(world.vault, "tls", format=stored, certificate=issued)  # type: ignore[arg-type]
    result = fetch(
        [
            VaultObject(vault=world.vault, name="tls", type="certificate", alias="bundle.pem"),
            VaultObject(
                vault=world.vault,
                name="tls",
                type="certificate",
                alias="tls.crt",
                key_alias="tls.key",
            ),
        ]
    )
    bundle = result["bundle.pem"].data
    assert bundle.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert x509.load_pem_x509_certificates(bundle) == expected
    assert x509.load_pem_x509_certificates(result["tls.crt"].data) == expected
    key = serialization.load_pem_private_key(result["tls.key"].data, None)
    assert key.public_key() == expected[0].public_key()  # type: ignore[comparison-overlap]


def test_certificates_as_pfx(world: VaultWorld) -> None:
    issued, expected = three_level_chain()
    world.service.create_certificate(world.vault, "tls", format="pem", certificate=issued)
    result = fetch([VaultObject(vault=world.vault, name="tls", type="certificate", format="pfx")])
    key, cert, extra = pkcs12.load_key_and_certificates(result["tls"].data, None)
    assert [cert, *extra] == expected
    assert key is not None


def test_keys_as_public_pem(world: VaultWorld) -> None:
    world.service.create_key(world.vault, "signing")
    result = fetch([VaultObject(vault=world.vault, name="signing", type="key")])
    public = serialization.load_pem_public_key(result["signing"].data)
    assert public.key_size == 2048  # type: ignore[union-attr]


def test_version_history_newest_first(world: VaultWorld) -> None:
    for value in ("v1", "v2", "v3", "v4"):
        world.set("hist", value)
    result = fetch([VaultObject(vault=world.vault, name="hist", version_history=3)])
    assert [result.text(f"hist/{i}") for i in range(3)] == ["v4", "v3", "v2"]


# -- failures ---------------------------------------------------------------------------------


def test_each_failure_names_the_object_and_the_others_are_delivered(
    world: VaultWorld, fast: FetchSettings
) -> None:
    world.set("good", SECRET)
    world.set("disabled", SECRET)
    world.service.disable(world.vault, "disabled")
    objects = [
        VaultObject(vault=world.vault, name="good"),
        VaultObject(vault=world.vault, name="missing"),
        VaultObject(vault=world.vault, name="disabled"),
        VaultObject(vault=world.vault, name="good", version="0" * 32, alias="old"),
    ]
    with pytest.raises(KeyVaultFetchError) as info:
        fetch(objects, settings=fast)
    error = info.value
    assert error.result.text("good") == SECRET
    assert [(f.object.name, f.status_code, f.code) for f in error.failures] == [
        ("missing", 404, "SecretNotFound"),
        ("disabled", 403, "SecretDisabled"),
        ("good", 404, "SecretNotFound"),
    ]
    assert isinstance(error.failures[0].error, AzureNotFoundError)
    assert isinstance(error.failures[1].error, AzureForbiddenError)
    message = str(error)
    assert f"secret 'missing' in vault '{world.vault}': 404 SecretNotFound" in message
    assert "disabled secret" in message
    assert SECRET not in message
    assert SECRET not in repr(error.result)


def test_a_forbidden_secret(world: VaultWorld, fast: FetchSettings) -> None:
    world.service.revoke(world.vault, world.identity.principal_id)
    world.set("a", SECRET)
    with pytest.raises(
        AzureForbiddenError, match=r"secret 'a' in vault '.*': 403 .*get permission"
    ):
        get_secret(world.vault, "a", settings=fast)


def test_an_unknown_vault_is_an_unreachable_host(world: VaultWorld, fast: FetchSettings) -> None:
    with pytest.raises(AzureUnavailableError) as info:
        get_secret("no-such-vault", "a", settings=FetchSettings(retry_total=0))
    assert "https://no-such-vault.vault.azure.net" in str(info.value)
    assert info.value.code == "Unreachable"


def test_invalid_content_is_a_per_object_error(world: VaultWorld) -> None:
    world.set("not-json", "{'single': quotes}")
    world.set("not-b64", "***")
    world.set("plain", "not a certificate", content_type="application/x-pkcs12")
    with pytest.raises(KeyVaultFetchError) as info:
        fetch(
            [
                VaultObject(vault=world.vault, name="not-json", split="json"),
                VaultObject(vault=world.vault, name="not-b64", encoding="base64"),
                VaultObject(vault=world.vault, name="plain", type="certificate"),
            ]
        )
    failures = info.value.failures
    assert [f.code for f in failures] == ["InvalidContent"] * 3
    assert all(isinstance(f.error, ValidationError) for f in failures)
    assert "not valid JSON (line 1, column 2)" in failures[0].message
    assert "not valid base64" in failures[1].message
    assert "not a valid PFX" in failures[2].message
    assert "quotes" not in str(info.value)


def test_two_objects_on_one_alias_are_refused_before_any_request(world: VaultWorld) -> None:
    with pytest.raises(ValidationError, match="also an output of secret 'a'"):
        fetch(
            [
                VaultObject(vault=world.vault, name="a"),
                VaultObject(vault=world.vault, name="b", alias="a"),
            ]
        )
    assert world.service.requests(world.vault).records == []


def test_throttling_is_retried_and_nothing_is_lost(world: VaultWorld) -> None:
    for index in range(10):
        world.set(f"s{index}", f"value-{index}")
    world.service.faults(world.vault).fail_next(5, status=429, retry_after=1, path="/secrets/s")
    world.service.faults(world.vault).fail_next(2, status=503, path="/secrets/s")
    result = fetch(
        [VaultObject(vault=world.vault, name=f"s{i}") for i in range(10)],
        settings=FetchSettings(retry_backoff_factor=0.01),
    )
    assert [result.text(f"s{i}") for i in range(10)] == [f"value-{i}" for i in range(10)]
    statuses = [r.status for r in world.service.requests(world.vault).records]
    assert statuses.count(429) == 5
    assert statuses.count(503) == 2


def test_values_never_reach_logs_reprs_or_errors(
    world: VaultWorld, fast: FetchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.set("a", SECRET)
    world.set("j", json.dumps({"K": SECRET}))
    result = fetch(
        [
            VaultObject(vault=world.vault, name="a"),
            VaultObject(vault=world.vault, name="j", split="json"),
            VaultObject(vault=world.vault, name="gone"),
        ],
        settings=fast,
        partial=True,
    )
    assert result.text("a") == SECRET
    shown = [repr(result), repr(result["a"]), str(result["K"]), repr(list(result.values()))]
    shown += [str(f) for f in result.failures] + [repr(f) for f in result.failures]
    with pytest.raises(KeyVaultFetchError) as info:
        result.raise_for_failures()
    shown += [str(info.value), repr(info.value)]
    assert caplog.records  # the SDK and we did log
    for text in [*shown, caplog.text]:
        assert SECRET not in text


def test_client_kwargs_reach_the_connection(
    world: VaultWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.set("a", SECRET)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(AzureUnavailableError, match="cannot reach"):  # the CA is not trusted
        get_secret(world.vault, "a", settings=FetchSettings(retry_total=0))
    trusted = FetchSettings(client_kwargs={"connection_verify": str(world.azure.ca_bundle)})
    assert get_secret(world.vault, "a", settings=trusted) == SECRET


def test_throttling_beyond_the_retries_is_a_throttled_error(world: VaultWorld) -> None:
    world.set("a", SECRET)
    world.service.faults(world.vault).fail_next(0, status=429, retry_after=1, path="/secrets/a")
    with pytest.raises(AzureThrottledError) as info:
        get_secret(world.vault, "a", settings=FetchSettings(retry_total=1))
    assert info.value.status_code == 429
    assert info.value.retry_after == 1.0
    assert "(retries exhausted)" in str(info.value)


def test_keys_of_a_multi_value_secret_cannot_escape_the_directory(world: VaultWorld) -> None:
    # The vault's content is trusted less than the spec: its keys become file names.
    world.set("evil", json.dumps({"../../escaped": "x", "fine": "y"}))
    with pytest.raises(KeyVaultFetchError) as info:
        fetch([VaultObject(vault=world.vault, name="evil", split="json")])
    assert info.value.failures[0].code == "InvalidContent"
    assert "split['../../escaped']" in str(info.value)
    assert len(info.value.result) == 0
