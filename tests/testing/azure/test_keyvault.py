"""The Key Vault emulator, driven by the real SDK clients over HTTPS with real vault host names.

One emulated world per module (a server thread, a CA, the Key Vault service served with TLS for
``*.vault.azure.net``, and the CONNECT proxy routing that name to it); every test gets its own
vault, a fresh principal, and cleared SDK challenge caches.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.certificates._shared import http_challenge_cache as certificates_cache
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys._shared import http_challenge_cache as keys_cache
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache as secrets_cache
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from podidentity.testing import _jwt
from podidentity.testing._jwt import JwtSigner
from podidentity.testing._pki import CertificateAuthority
from podidentity.testing._ratelimit import RateLimit, SlidingWindow
from podidentity.testing._server import ServerThread, TLSFiles
from podidentity.testing.azure._keyvault import KeyVaultService
from podidentity.testing.azure._keyvault._errors import KeyVaultError
from podidentity.testing.azure._keyvault._state import SecretVersion
from podidentity.testing.azure._keyvault._wire import page
from podidentity.testing.azure._proxy import HostRoutingProxy

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
VAULT_RESOURCE = "https://vault.azure.net"


class Clock:
    """A settable clock shared by the service and the token checks."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@attrs.define
class World:
    server: ServerThread
    ca_file: Path
    signer: JwtSigner
    clock: Clock
    service: KeyVaultService
    proxy: HostRoutingProxy
    ca: CertificateAuthority


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("keyvault")
    ca = CertificateAuthority()
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    cert_file, key_file = ca.issue_server(["*.vault.azure.net"]).write(directory, "vault")
    signer = JwtSigner()
    clock = Clock()

    def verify_token(token: str, audience: str) -> dict[str, Any]:
        return _jwt.verify(token, signer.jwks(), audiences=[audience], now=clock())

    service = KeyVaultService(TENANT, verify_token, clock=clock, ca=ca)
    with ServerThread("keyvault-tests") as server:
        served = server.serve_asgi(service.app, tls=TLSFiles(cert_file, key_file))
        proxy = HostRoutingProxy()
        proxy.add_route(service.host_pattern, served.port, only_if=service.has_host)
        proxy.serve(server)
        yield World(server, ca_file, signer, clock, service, proxy, ca)


@pytest.fixture(autouse=True)
def _routed_and_fresh(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HTTPS_PROXY", world.proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for cache in (secrets_cache, certificates_cache, keys_cache):
        cache.clear()
    world.clock.now = time.time()
    yield
    for cache in (secrets_cache, certificates_cache, keys_cache):
        cache.clear()


_names = itertools.count()


@pytest.fixture
def vault(world: World) -> str:
    """A fresh vault's name."""
    name = f"kv-test-{next(_names)}"
    world.service.create_vault(name)
    return name


class MintedCredential:
    """An azure-core ``TokenCredential`` handing out tokens signed by the test's signer."""

    def __init__(self, world: World, **claims: Any) -> None:
        self._world = world
        self.object_id = claims.pop("oid", str(uuid.uuid4()))
        self.claims = {
            "aud": VAULT_RESOURCE,
            "tid": TENANT,
            "iss": f"https://sts.windows.net/{TENANT}/",
            "oid": self.object_id,
            "appid": str(uuid.uuid4()),
            **claims,
        }
        self.requests: list[tuple[tuple[str, ...], str | None]] = []
        #: Every token handed out, for tests that check where tokens must not appear.
        self.issued: list[str] = []

    def token(self) -> AccessToken:
        now = int(self._world.clock())
        claims = {"nbf": now - 60, "iat": now - 60, "exp": now + 3600, **self.claims}
        token = AccessToken(self._world.signer.sign(claims), int(claims["exp"]))
        self.issued.append(token.token)
        return token

    def get_token(self, *scopes: str, tenant_id: str | None = None, **_: Any) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return self.token()


class AsyncMintedCredential(MintedCredential):
    """The ``AsyncTokenCredential`` flavour."""

    async def get_token(  # type: ignore[override]
        self, *scopes: str, tenant_id: str | None = None, **_: Any
    ) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return self.token()

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> AsyncMintedCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def _client_options(world: World) -> dict[str, Any]:
    return {"connection_verify": str(world.ca_file), "retry_backoff_factor": 0.01}


def secret_client(world: World, vault: str, credential: MintedCredential) -> SecretClient:
    return SecretClient(world.service.vault_url(vault), credential, **_client_options(world))


def raw_request(
    world: World, method: str, url: str, *, token: str | None = None
) -> requests.Response:
    """Call the service without the SDK (``token``: send it as the bearer token)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.request(method, url, headers=headers, verify=str(world.ca_file), timeout=10)


def reader(world: World, vault: str, **permissions: Any) -> MintedCredential:
    """A principal allowed what ``permissions`` say (default: secrets get and list)."""
    credential = MintedCredential(world)
    world.service.grant(vault, credential.object_id, **permissions)
    return credential


# -- secrets: reading ------------------------------------------------------------------------


def test_a_repeated_query_parameter_is_read_by_its_first_value(world: World, vault: str) -> None:
    # One rule in every emulator, as Go's url.Values.Get: the first value wins.
    world.service.set_secret(vault, "s", "v")
    token = reader(world, vault).token().token
    url = f"https://{vault}.vault.azure.net/secrets/s"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(world.ca_file))) as http:
        auth = {"Authorization": f"Bearer {token}"}
        first_valid = http.get(f"{url}?api-version=7.4&api-version=0.0", headers=auth)
        first_bogus = http.get(f"{url}?api-version=0.0&api-version=7.4", headers=auth)
    assert (first_valid.status_code, first_valid.json()["value"]) == (200, "v")
    assert first_bogus.status_code == 400
    assert first_bogus.json()["error"]["message"].startswith("The specified version (0.0)")


def test_get_latest_and_by_version(world: World, vault: str) -> None:
    first = world.service.set_secret(vault, "db-password", "one", content_type="text/plain")
    world.service.set_secret(vault, "db-password", "two", tags={"env": "test"})
    with secret_client(world, vault, reader(world, vault)) as client:
        latest = client.get_secret("db-password")
        older = client.get_secret("db-password", first)
    assert latest.value == "two"
    assert latest.properties.tags == {"env": "test"}
    assert latest.properties.enabled is True
    assert latest.properties.recovery_level == "Recoverable+Purgeable"
    assert latest.id.startswith(f"https://{vault}.vault.azure.net/secrets/db-password/")
    assert older.value == "one"
    assert older.properties.version == first
    assert older.properties.content_type == "text/plain"
    assert len(first) == 32
    assert int(first, 16) >= 0


def test_challenge_flow_first_request_is_bare_then_authorized(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = reader(world, vault)
    with secret_client(world, vault, credential) as client:
        assert client.get_secret("s").value == "v"
        assert client.get_secret("s").value == "v"
    first, second, third = world.service.requests(vault).records
    assert "authorization" not in first.headers
    assert first.status == 401
    assert second.headers["authorization"] == "****"
    assert (second.status, third.status) == (200, 200)
    # The tenant came from the challenge, and the scope from its resource.
    assert credential.requests[0] == (("https://vault.azure.net/.default",), TENANT)


def test_raw_challenge_answer(world: World, vault: str) -> None:
    answer = raw_request(
        world, "GET", f"https://{vault}.vault.azure.net/secrets/x?api-version=2026-04-01"
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
        'resource="https://vault.azure.net"'
    )
    assert answer.json() == {
        "error": {
            "code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token.",
        }
    }


def test_secret_not_found_error_shape(world: World, vault: str) -> None:
    with (
        secret_client(world, vault, reader(world, vault)) as client,
        pytest.raises(ResourceNotFoundError) as caught,
    ):
        client.get_secret("missing")
    assert caught.value.status_code == 404
    assert caught.value.error is not None
    assert caught.value.error.code == "SecretNotFound"
    assert caught.value.error.message == (
        "A secret with (name/id) missing was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command. "
        "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    )


def test_disabled_secret_is_forbidden(world: World, vault: str) -> None:
    world.service.set_secret(vault, "old", "v")
    world.service.disable(vault, "old")
    with (
        secret_client(world, vault, reader(world, vault)) as client,
        pytest.raises(HttpResponseError) as caught,
    ):
        client.get_secret("old")
    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
    assert caught.value.error.message == "Operation get is not allowed on a disabled secret."
    assert caught.value.error.innererror == {"code": "SecretDisabled"}


@pytest.fixture
def full_pages(world: World) -> Iterator[None]:
    """Fill every list page (the service's default is short pages, first one empty)."""
    world.service.short_pages = False
    yield
    world.service.short_pages = True


def test_list_is_paged_and_carries_no_values(world: World, vault: str, full_pages: None) -> None:
    names = [f"secret-{i}" for i in range(7)]
    for name in names:
        world.service.set_secret(vault, name, f"value of {name}")
    with secret_client(world, vault, reader(world, vault)) as client:
        listed = list(client.list_properties_of_secrets(max_page_size=3))
    assert [p.name for p in listed] == names
    assert all(p.updated_on is not None and p.version is None for p in listed)
    pages = world.service.requests(vault).find(method="GET", path="^/secrets$")
    assert [r.status for r in pages] == [401, 200, 200, 200]
    assert "%24skiptoken" in pages[2].query or "$skiptoken" in pages[2].query


def test_short_and_empty_pages_by_default(world: World, vault: str) -> None:
    names = [f"secret-{i}" for i in range(5)]
    for name in names:
        world.service.set_secret(vault, name, "v")
    credential = reader(world, vault)
    first = raw_request(
        world,
        "GET",
        f"https://{vault}.vault.azure.net/secrets?api-version=7.6&maxresults=4",
        token=credential.token().token,
    ).json()
    # As a real vault: an empty page that still links to the rest.
    assert first["value"] == []
    assert isinstance(first["nextLink"], str)
    second = raw_request(world, "GET", first["nextLink"], token=credential.token().token).json()
    assert 0 < len(second["value"]) < 4
    assert second["nextLink"] is not None
    # The SDK follows every link and sees every secret, once.
    with secret_client(world, vault, credential) as client:
        listed = [p.name for p in client.list_properties_of_secrets(max_page_size=4)]
    assert listed == names


def test_list_items_have_no_value_field_on_the_wire(
    world: World, vault: str, full_pages: None
) -> None:
    world.service.set_secret(vault, "a", "do not list me")
    credential = reader(world, vault)
    answer = raw_request(
        world,
        "GET",
        f"https://{vault}.vault.azure.net/secrets?api-version=7.6&maxresults=1",
        token=credential.token().token,
    )
    document = answer.json()
    assert document["nextLink"] is None
    [item] = document["value"]
    assert "value" not in item
    assert item["id"] == f"https://{vault}.vault.azure.net/secrets/a"
    assert set(item["attributes"]) >= {"enabled", "created", "updated", "recoveryLevel"}


def test_next_link_names_port_443_like_the_service(world: World, vault: str) -> None:
    for name in ("a", "b"):
        world.service.set_secret(vault, name, "v")
    credential = reader(world, vault)
    document = raw_request(
        world,
        "GET",
        f"https://{vault}.vault.azure.net/secrets?api-version=7.6&maxresults=1",
        token=credential.token().token,
    ).json()
    next_link = document["nextLink"]
    assert isinstance(next_link, str)
    assert next_link.startswith(
        f"https://{vault}.vault.azure.net:443/secrets?api-version=7.6&$skiptoken="
    )
    assert next_link.endswith("&maxresults=1")


def test_list_versions(world: World, vault: str) -> None:
    versions = {world.service.set_secret(vault, "rotating", f"v{i}") for i in range(3)}
    with secret_client(world, vault, reader(world, vault)) as client:
        listed = list(client.list_properties_of_secret_versions("rotating"))
    assert {p.version for p in listed} == versions


def test_expires_and_not_before_are_reported_not_enforced(world: World, vault: str) -> None:
    past = world.clock() - 3600
    world.service.set_secret(vault, "stale", "v", expires=past, not_before=past - 60)
    with secret_client(world, vault, reader(world, vault)) as client:
        secret = client.get_secret("stale")
    assert secret.value == "v"
    assert secret.properties.expires_on is not None
    assert int(secret.properties.expires_on.timestamp()) == int(past)


# -- secrets: writing ------------------------------------------------------------------------


def test_set_secret_first_request_has_its_body_stripped(world: World, vault: str) -> None:
    credential = reader(world, vault, secrets=("get", "set"))
    with secret_client(world, vault, credential) as client:
        made = client.set_secret("api-key", "s3cr3t", content_type="text/plain", tags={"a": "b"})
    assert made.value == "s3cr3t"
    assert world.service.secret_value(vault, "api-key") == "s3cr3t"
    assert world.service.secret_versions(vault, "api-key") == [made.properties.version]
    puts = world.service.requests(vault).find(method="PUT")
    assert [r.status for r in puts] == [401, 200]
    assert puts[0].headers.get("content-length") == "0"


def test_update_properties_disables_through_the_sdk(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = reader(world, vault, secrets=("get", "set"))
    with secret_client(world, vault, credential) as client:
        updated = client.update_secret_properties("s", enabled=False)
        assert updated.enabled is False
        with pytest.raises(HttpResponseError, match="disabled secret"):
            client.get_secret("s")


def test_delete_poller_completes_and_the_secret_can_be_recovered(world: World, vault: str) -> None:
    world.service.set_secret(vault, "doomed", "v")
    credential = reader(world, vault, secrets=("get", "list", "delete", "recover", "purge"))
    with secret_client(world, vault, credential) as client:
        deleted = client.begin_delete_secret("doomed").result()
        assert deleted.recovery_id == f"https://{vault}.vault.azure.net/deletedsecrets/doomed"
        assert deleted.deleted_date is not None
        assert deleted.scheduled_purge_date is not None
        assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("doomed")
        assert [d.name for d in client.list_deleted_secrets()] == ["doomed"]
        recovered = client.begin_recover_deleted_secret("doomed").result()
        assert recovered.name == "doomed"
        assert client.get_secret("doomed").value == "v"
        client.begin_delete_secret("doomed").result()
        client.purge_deleted_secret("doomed")
        with pytest.raises(ResourceNotFoundError):
            client.get_deleted_secret("doomed")


def test_a_deleted_name_cannot_be_reused_until_purged(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    world.service.delete_secret(vault, "s")
    credential = reader(world, vault, secrets=("set",))
    with secret_client(world, vault, credential) as client, pytest.raises(HttpResponseError) as e:
        client.set_secret("s", "again")
    assert e.value.status_code == 409


# -- authentication and authorization ----------------------------------------------------------


def test_wrong_audience_is_401_akv10022(world: World, vault: str) -> None:
    credential = MintedCredential(world, aud="https://management.azure.com/")
    world.service.grant(vault, credential.object_id)
    with (
        secret_client(world, vault, credential) as client,
        pytest.raises(ClientAuthenticationError, match="AKV10022: Invalid audience"),
    ):
        client.get_secret("s")


def test_key_vault_app_id_is_an_accepted_audience(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = MintedCredential(world, aud="cfa8b339-82a2-471a-a3c9-0fc0be7a4093")
    world.service.grant(vault, credential.object_id)
    with secret_client(world, vault, credential) as client:
        assert client.get_secret("s").value == "v"


def test_expired_token_is_401(world: World, vault: str) -> None:
    credential = reader(world, vault)
    world.clock.now += 4 * 3600  # the service's time moves on; tokens keep their old exp
    credential.claims["exp"] = int(world.clock.now) - 3600
    with (
        secret_client(world, vault, credential) as client,
        pytest.raises(ClientAuthenticationError, match="TokenExpired"),
    ):
        client.get_secret("s")


def test_token_from_another_tenant_is_401_akv10032(world: World, vault: str) -> None:
    credential = MintedCredential(
        world, tid=OTHER_TENANT, iss=f"https://sts.windows.net/{OTHER_TENANT}/"
    )
    world.service.grant(vault, credential.object_id)
    with (
        secret_client(world, vault, credential) as client,
        pytest.raises(ClientAuthenticationError) as caught,
    ):
        client.get_secret("s")
    assert caught.value.message.endswith(
        f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{TENANT}/, "
        f"found https://sts.windows.net/{OTHER_TENANT}/."
    )


def test_token_signed_by_someone_else_is_401(world: World, vault: str) -> None:
    credential = reader(world, vault)
    forger = JwtSigner()
    credential.token = lambda: AccessToken(  # type: ignore[method-assign]
        forger.sign({**credential.claims, "exp": int(time.time()) + 3600}), int(time.time()) + 3600
    )
    with (
        secret_client(world, vault, credential) as client,
        pytest.raises(ClientAuthenticationError),
    ):
        client.get_secret("s")


def test_principal_without_access_policy_is_forbidden(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    stranger = MintedCredential(world)
    with (
        secret_client(world, vault, stranger) as client,
        pytest.raises(HttpResponseError) as caught,
    ):
        client.get_secret("s")
    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
    assert caught.value.error.innererror == {"code": "AccessDenied"}
    assert caught.value.error.message.startswith(
        f"The user, group or application 'appid={stranger.claims['appid']};"
        f"oid={stranger.object_id};iss=https://sts.windows.net/{TENANT}/' does not have secrets "
        f"get permission on key vault '{vault};location=eastus'."
    )


def test_missing_permission_is_forbidden_but_granted_ones_work(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    lister = reader(world, vault, secrets=("list",))
    with secret_client(world, vault, lister) as client:
        assert [p.name for p in client.list_properties_of_secrets()] == ["s"]
        with pytest.raises(HttpResponseError, match="does not have secrets get permission"):
            client.get_secret("s")
    world.service.revoke(vault, lister.object_id)
    with secret_client(world, vault, lister) as client, pytest.raises(HttpResponseError):
        list(client.list_properties_of_secrets())


def test_unknown_permission_names_are_refused(world: World, vault: str) -> None:
    with pytest.raises(ValueError, match="unknown secrets permission"):
        world.service.grant(vault, "oid", secrets=("gte",))


# -- throttling ------------------------------------------------------------------------------


def test_throttled_request_is_retried_after_retry_after(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = reader(world, vault)
    with secret_client(world, vault, credential) as client:
        client.get_secret("s")  # the challenge is behind us
        world.service.faults(vault).fail_next(1, status=429, retry_after=1, path="^/secrets/s")
        started = time.monotonic()
        assert client.get_secret("s").value == "v"
        assert time.monotonic() - started >= 0.9
    statuses = [r.status for r in world.service.requests(vault).records]
    assert statuses[-2:] == [429, 200]


def test_throttled_answer_shape(world: World, vault: str) -> None:
    world.service.faults(vault).fail_next(1, status=429, retry_after=3)
    answer = raw_request(world, "GET", f"https://{vault}.vault.azure.net/secrets/s?api-version=7.6")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json() == {
        "error": {
            "code": "Throttled",
            "message": "Request was not processed because too many requests were received. "
            "Reason: VaultRequestTypeLimitReached",
        }
    }


def test_secret_values_over_25_kb_are_refused(world: World, vault: str) -> None:
    writer = MintedCredential(world)
    world.service.grant(vault, writer.object_id, secrets=["set", "get"])
    limit = 25 * 1024
    with secret_client(world, vault, writer) as client:
        client.set_secret("big", "x" * limit)
        # Bytes count, not characters: 'é' is two bytes in UTF-8.
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret("big", "é" * (limit // 2 + 1))
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"
    assert "25600 bytes" in str(caught.value.message)
    assert "é" not in str(caught.value.message)
    assert len(world.service.secret_versions(vault, "big")) == 1


def test_rate_limit(world: World) -> None:
    def accept_anything(token: str, audience: str) -> dict[str, Any]:
        return {"tid": TENANT, "oid": "o"}

    limited = KeyVaultService(
        TENANT, accept_anything, clock=world.clock, rate_limit=RateLimit(requests=2, per_seconds=10)
    )
    cert_dir = world.ca_file.parent
    cert_file, key_file = world.ca.issue_server(["*.vault.azure.net"]).write(cert_dir, "limited")
    served = world.server.serve_asgi(limited.app, tls=TLSFiles(cert_file, key_file))
    limited.create_vault("limited")
    world.proxy.add_route("limited.vault.azure.net", served.port)

    def get() -> requests.Response:
        return raw_request(
            world,
            "GET",
            "https://limited.vault.azure.net/secrets?api-version=7.6",
            token="anything",
        )

    assert [get().status_code for _ in range(3)] == [403, 403, 429]
    world.clock.now += 10.5
    assert get().status_code == 403


def test_sliding_window_counts_with_the_clock() -> None:
    clock = Clock()
    window = SlidingWindow(RateLimit(requests=2, per_seconds=10), clock)
    assert window.acquire() is None
    clock.now += 4
    assert window.acquire() is None
    assert window.acquire() == 6
    clock.now += 6.5
    assert window.acquire() is None


# -- certificates and keys ---------------------------------------------------------------------


def test_pfx_certificate_and_its_backing_secret(world: World, vault: str) -> None:
    version = world.service.create_certificate(vault, "tls-cert", format="pfx")
    credential = reader(world, vault, certificates=("get",))
    url = world.service.vault_url(vault)
    with CertificateClient(url, credential, **_client_options(world)) as certificates:
        cert = certificates.get_certificate("tls-cert")
    assert cert.properties.version == version
    assert cert.secret_id == f"https://{vault}.vault.azure.net/secrets/tls-cert/{version}"
    assert cert.key_id == f"https://{vault}.vault.azure.net/keys/tls-cert/{version}"
    assert cert.policy is not None
    assert cert.policy.content_type == "application/x-pkcs12"
    leaf = x509.load_der_x509_certificate(bytes(cert.cer or b""))
    assert leaf.subject.rfc4514_string().startswith("CN=tls-cert,")
    assert cert.properties.x509_thumbprint == leaf.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1
    with secret_client(world, vault, credential) as secrets:
        backing = secrets.get_secret("tls-cert")
    assert backing.properties.content_type == "application/x-pkcs12"
    assert backing.properties.managed is True
    assert backing.properties.key_id == cert.key_id
    key, loaded, chain = pkcs12.load_key_and_certificates(
        base64.b64decode(backing.value or ""), None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    assert loaded == leaf
    assert [c.subject for c in chain] == [world.ca.certificate.subject]


def test_pem_certificate_backing_secret_has_key_and_chain(world: World, vault: str) -> None:
    world.service.create_certificate(vault, "pem-cert", format="pem")
    credential = reader(world, vault, certificates=("get",))
    url = world.service.vault_url(vault)
    with CertificateClient(url, credential, **_client_options(world)) as certificates:
        cert = certificates.get_certificate("pem-cert")
    assert cert.policy is not None
    assert cert.policy.content_type == "application/x-pem-file"
    with secret_client(world, vault, credential) as secrets:
        backing = secrets.get_secret("pem-cert")
    pem = (backing.value or "").encode()
    assert backing.properties.content_type == "application/x-pem-file"
    key = serialization.load_pem_private_key(pem, None)
    leaf, issuer = x509.load_pem_x509_certificates(pem)
    assert leaf.public_bytes(serialization.Encoding.DER) == bytes(cert.cer or b"")
    assert issuer == world.ca.certificate
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]


def test_managed_secret_cannot_be_deleted_directly(world: World, vault: str) -> None:
    world.service.create_certificate(vault, "c")
    credential = reader(world, vault, secrets=("delete",))
    with secret_client(world, vault, credential) as client, pytest.raises(HttpResponseError) as e:
        client.begin_delete_secret("c")
    assert e.value.status_code == 403


def test_certificate_not_found(world: World, vault: str) -> None:
    credential = reader(world, vault, certificates=("get",))
    url = world.service.vault_url(vault)
    with (
        CertificateClient(url, credential, **_client_options(world)) as certificates,
        pytest.raises(ResourceNotFoundError) as caught,
    ):
        certificates.get_certificate("nope")
    assert caught.value.error is not None
    assert caught.value.error.code == "CertificateNotFound"


def test_get_key_returns_the_public_jwk(world: World, vault: str) -> None:
    version = world.service.create_key(vault, "signing")
    credential = reader(world, vault, keys=("get", "list"))
    url = world.service.vault_url(vault)
    with KeyClient(url, credential, **_client_options(world)) as keys:
        key = keys.get_key("signing")
        by_version = keys.get_key("signing", version)
        listed = [k.name for k in keys.list_properties_of_keys()]
    assert key.id == f"https://{vault}.vault.azure.net/keys/signing/{version}"
    assert key.key_type == "RSA"
    assert key.key.n is not None
    assert len(key.key.n) == 256
    assert key.key.e == b"\x01\x00\x01"
    assert key.key.d is None
    assert set(key.key_operations or []) >= {"sign", "verify"}
    assert by_version.key.n == key.key.n
    assert listed == ["signing"]
    world.service.create_certificate(vault, "cert-key")
    with KeyClient(url, credential, **_client_options(world)) as keys:
        assert keys.get_key("cert-key").properties.managed is True


# -- async clients -------------------------------------------------------------------------------


async def test_async_client_reads_lists_writes_and_deletes(world: World, vault: str) -> None:
    for i in range(4):
        world.service.set_secret(vault, f"s{i}", f"v{i}")
    credential = AsyncMintedCredential(world)
    world.service.grant(vault, credential.object_id, secrets=("get", "list", "set", "delete"))
    async with AsyncSecretClient(
        world.service.vault_url(vault), credential, **_client_options(world)
    ) as client:
        assert (await client.get_secret("s1")).value == "v1"
        names = [p.name async for p in client.list_properties_of_secrets(max_page_size=3)]
        assert names == ["s0", "s1", "s2", "s3"]
        made = await client.set_secret("s0", "new")
        versions = [p.version async for p in client.list_properties_of_secret_versions("s0")]
        assert made.properties.version in versions
        assert len(versions) == 2
        deleted = await client.delete_secret("s3")
        assert deleted.recovery_id is not None
        with pytest.raises(ResourceNotFoundError) as caught:
            await client.get_secret("s3")
        assert caught.value.error is not None
        assert caught.value.error.code == "SecretNotFound"
    assert "authorization" not in world.service.requests(vault).records[0].headers


async def test_async_client_retries_throttling(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = AsyncMintedCredential(world)
    world.service.grant(vault, credential.object_id)
    world.service.faults(vault).fail_next(2, status=429, retry_after=0, path="^/secrets/s")
    async with AsyncSecretClient(
        world.service.vault_url(vault), credential, **_client_options(world)
    ) as client:
        assert (await client.get_secret("s")).value == "v"
    assert [r.status for r in world.service.requests(vault).records] == [429, 429, 401, 200]


# -- the world's edges ---------------------------------------------------------------------------


def test_unknown_vault_does_not_resolve_through_the_proxy(world: World) -> None:
    credential = MintedCredential(world)
    client = SecretClient(
        "https://no-such-vault.vault.azure.net", credential, retry_total=0, **_client_options(world)
    )
    with client, pytest.raises(ServiceRequestError):
        client.get_secret("s")
    assert world.proxy.log.records[-1].status == 502


def test_unknown_vault_without_only_if_is_404(world: World) -> None:
    port = world.proxy.route_for("x.vault.azure.net").port  # type: ignore[union-attr]
    world.proxy.add_route("ghost.vault.azure.net", port)
    answer = raw_request(world, "GET", "https://ghost.vault.azure.net/secrets/s?api-version=7.6")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "VaultNotFound"


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message_part"),
    [
        pytest.param(
            "POST",
            "/secrets/s/backup?api-version=7.6",
            501,
            "NotImplemented",
            "does not implement POST /secrets/s/backup",
            id="unsupported-operation-501-says-so",
        ),
        pytest.param(
            "GET",
            "/secrets?api-version=1999-01-01",
            400,
            "BadParameter",
            "(1999-01-01) is not recognized",
            id="unknown-api-version-400",
        ),
    ],
)
def test_requests_the_service_refuses(
    world: World, vault: str, method: str, path: str, status: int, code: str, message_part: str
) -> None:
    token = reader(world, vault).token().token
    answer = raw_request(world, method, f"https://{vault}.vault.azure.net{path}", token=token)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert message_part in answer.json()["error"]["message"]


def test_secret_values_and_tokens_stay_out_of_reprs_and_logs(
    world: World, vault: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Check the tokens the SDK really sent, not a token minted again afterwards, and only this
    # test's own requests (the log is per vault; every test has a fresh vault). The header of
    # every token of one signer is the same, so it proves nothing: look for whole tokens and
    # their signatures.
    caplog.set_level(logging.DEBUG, logger="podidentity")
    world.service.set_secret(vault, "s", "hunter2")
    credential = reader(world, vault)
    with secret_client(world, vault, credential) as client:
        assert client.get_secret("s").value == "hunter2"
    assert credential.issued
    version = SecretVersion(name="s", version="0" * 32, value="hunter2", created=0, updated=0)
    records = world.service.requests(vault).records
    texts = [
        repr(world.service),
        repr(version),
        repr(records),
        *(r.getMessage() for r in caplog.records),
    ]
    for text in texts:
        assert "hunter2" not in text
        for token in credential.issued:
            assert token not in text
            assert token.rsplit(".", 1)[1] not in text
    # The log is complete when the client has its answer: the bare challenge, then the call.
    assert [(r.status, r.headers.get("authorization")) for r in records] == [
        (401, None),
        (200, "****"),
    ]


def test_alg_none_token_is_401(world: World, vault: str) -> None:
    world.service.set_secret(vault, "s", "v")
    credential = reader(world, vault)
    header = _jwt.b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _jwt.b64url_encode(
        json.dumps(_jwt.unverified_claims(credential.token().token)).encode()
    )
    answer = raw_request(
        world,
        "GET",
        f"https://{vault}.vault.azure.net/secrets/s?api-version=7.6",
        token=f"{header}.{payload}.",
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "Unauthorized"
    assert "WWW-Authenticate" in answer.headers


def test_vault_names_are_validated(world: World) -> None:
    with pytest.raises(ValueError, match="invalid vault name"):
        world.service.create_vault("x")
    with pytest.raises(ValueError, match="invalid vault name"):
        world.service.create_vault("bad--name")
    world.service.create_vault("unique-vault")
    with pytest.raises(ValueError, match="already exists"):
        world.service.create_vault("Unique-Vault")


def test_certificate_names_are_not_shared_with_plain_secrets(world: World, vault: str) -> None:
    world.service.set_secret(vault, "plain", "v")
    with pytest.raises(ValueError, match="already exists"):
        world.service.create_certificate(vault, "plain")
    world.service.create_certificate(vault, "cert")
    with pytest.raises(ValueError, match="backing secret"):
        world.service.set_secret(vault, "cert", "v")


def test_paging_parameters_are_checked() -> None:
    entries = [(str(i), i) for i in range(3)]
    common: dict[str, Any] = {
        "collection_url": "https://v.vault.azure.net/secrets",
        "api_version": "7.6",
    }
    with pytest.raises(KeyVaultError) as too_many:
        page(entries, lambda i: {"i": i}, maxresults="26", skiptoken=None, **common)
    assert too_many.value.status == 400
    with pytest.raises(KeyVaultError, match="skiptoken"):
        page(entries, lambda i: {"i": i}, maxresults=None, skiptoken="garbage!", **common)
    first = page(entries, lambda i: {"i": i}, maxresults="2", skiptoken=None, **common)
    token = first["nextLink"].split("$skiptoken=")[1].split("&")[0]
    second = page(entries, lambda i: {"i": i}, maxresults="2", skiptoken=token, **common)
    assert [*first["value"], *second["value"]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert second["nextLink"] is None
