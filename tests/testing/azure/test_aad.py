"""Azure AD emulator: the real azure-identity credentials, sync and aio, and AAD's error shapes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)
from azure.identity.aio import CertificateCredential as AsyncCertificateCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.identity.aio import WorkloadIdentityCredential as AsyncWorkloadIdentityCredential

from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure import AzureEmulator, ManagedIdentity, ManualClock
from tests.testing.azure.oidc_issuer import OidcIssuer

ARM_SCOPE = "https://management.azure.com/.default"
VAULT_SCOPE = "https://vault.azure.net/.default"
PROD_API = "system:serviceaccount:prod:api"


def _federated_identity(
    azure: AzureEmulator, oidc_issuer: OidcIssuer, subject: str = PROD_API
) -> ManagedIdentity:
    """A managed identity that trusts ``oidc_issuer``'s tokens for ``subject``."""
    identity = azure.world.add_managed_identity("workload")
    azure.world.add_federated_credential(identity, issuer=oidc_issuer.url, subject=subject)
    return identity


def _token_file(tmp_path: Path, token: str) -> str:
    """A projected service-account token file holding ``token``; returns its path."""
    path = tmp_path / "token"
    path.write_text(token)
    return str(path)


def test_client_secret_credential_sync(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    with azure.patched_environ():
        token = ClientSecretCredential(azure.tenant_id, app.client_id, app.secret).get_token(
            ARM_SCOPE
        )
    claims = azure.verify_access_token(token.token, "https://management.azure.com/")
    # A /.default scope gives the resource without the trailing slash, as Azure AD does.
    assert claims["aud"] == "https://management.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{azure.tenant_id}/"
    assert claims["tid"] == azure.tenant_id
    assert claims["oid"] == app.object_id
    assert claims["appid"] == claims["azp"] == app.client_id
    assert claims["idtyp"] == "app"
    assert claims["exp"] - claims["iat"] >= 3599
    assert claims["nbf"] <= time.time()
    # MSAL discovered the tenant first, then asked for the token, all through the real host.
    paths = [r.path for r in azure.aad.log.records]
    assert f"/{azure.tenant_id}/v2.0/.well-known/openid-configuration" in paths
    assert f"/{azure.tenant_id}/oauth2/v2.0/token" in paths
    assert {r.headers["host"] for r in azure.aad.log.records} == {"login.microsoftonline.com"}


async def test_client_secret_credential_aio(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    with azure.patched_environ():
        # aiohttp reads the CA store once, at import: aio clients take the CA explicitly.
        async with AsyncClientSecretCredential(
            azure.tenant_id, app.client_id, app.secret, connection_verify=str(azure.ca_bundle)
        ) as credential:
            token = await credential.get_token(VAULT_SCOPE)
    claims = azure.verify_access_token(token.token, "https://vault.azure.net")
    assert claims["oid"] == app.object_id


def test_client_kwargs_work_without_the_environment(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    credential = ClientSecretCredential(
        azure.tenant_id, app.client_id, app.secret, **azure.client_kwargs()
    )
    token = credential.get_token(ARM_SCOPE)
    assert azure.verify_access_token(token.token, "https://management.azure.com")


async def test_client_kwargs_work_without_the_environment_aio(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    async with AsyncClientSecretCredential(
        azure.tenant_id, app.client_id, app.secret, **azure.client_kwargs()
    ) as credential:
        token = await credential.get_token(ARM_SCOPE)
    assert azure.verify_access_token(token.token, "https://management.azure.com")


def _write_pem(tmp_path: Path, pem: bytes) -> str:
    path = tmp_path / "sp.pem"
    path.write_bytes(pem)
    return str(path)


def test_certificate_credential_sync(azure: AzureEmulator, tmp_path: Path) -> None:
    app = azure.world.add_service_principal("cert-app", with_secret=False, with_certificate=True)
    with azure.patched_environ():
        credential = CertificateCredential(
            azure.tenant_id, app.client_id, _write_pem(tmp_path, app.certificate.pem)
        )
        token = credential.get_token(ARM_SCOPE)
    assert unverified_claims(token.token)["appid"] == app.client_id


async def test_certificate_credential_aio_pkcs12(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("cert-app", with_secret=False, with_certificate=True)
    with azure.patched_environ():
        async with AsyncCertificateCredential(
            azure.tenant_id,
            app.client_id,
            certificate_data=app.certificate.pkcs12(b"pw"),
            password=b"pw",
            connection_verify=str(azure.ca_bundle),
        ) as credential:
            token = await credential.get_token(ARM_SCOPE)
    assert unverified_claims(token.token)["oid"] == app.object_id


def test_certificate_not_registered_is_refused(azure: AzureEmulator, tmp_path: Path) -> None:
    app = azure.world.add_service_principal("cert-app", with_secret=False, with_certificate=True)
    stranger = azure.ca.issue_client("not registered")
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        CertificateCredential(
            azure.tenant_id, app.client_id, _write_pem(tmp_path, stranger.pem)
        ).get_token(ARM_SCOPE)


def test_client_assertion_credential_with_a_certificate_assertion(azure: AzureEmulator) -> None:
    # A hand-made RS256 assertion with x5t (SHA-1), as older clients and ADFS-style code send.
    from podidentity.testing._jwt import b64url_encode

    app = azure.world.add_service_principal("cert-app", with_secret=False, with_certificate=True)
    cert = app.certificate
    token_url = f"https://login.microsoftonline.com/{azure.tenant_id}/oauth2/v2.0/token"

    def assertion() -> str:
        import json

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        now = int(time.time())
        header = {
            "alg": "RS256",
            "typ": "JWT",
            "x5t": b64url_encode(bytes.fromhex(cert.thumbprint_sha1)),
        }
        claims = {
            "aud": token_url,
            "iss": app.client_id,
            "sub": app.client_id,
            "nbf": now,
            "exp": now + 600,
            "jti": "x",
        }
        signing_input = (
            b64url_encode(json.dumps(header).encode())
            + "."
            + b64url_encode(json.dumps(claims).encode())
        )
        key = cert.private_key
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url_encode(signature)

    with azure.patched_environ():
        token = ClientAssertionCredential(azure.tenant_id, app.client_id, assertion).get_token(
            ARM_SCOPE
        )
    assert unverified_claims(token.token)["appid"] == app.client_id


def test_workload_identity_credential_sync(
    azure: AzureEmulator, oidc_issuer: OidcIssuer, tmp_path: Path
) -> None:
    identity = _federated_identity(azure, oidc_issuer)
    token_file = _token_file(tmp_path, oidc_issuer.token(PROD_API))
    with azure.patched_environ():
        credential = WorkloadIdentityCredential(
            tenant_id=azure.tenant_id, client_id=identity.client_id, token_file_path=token_file
        )
        token = credential.get_token(VAULT_SCOPE)
    claims = unverified_claims(token.token)
    assert claims["oid"] == identity.principal_id
    assert claims["xms_mirid"] == identity.resource_id


async def test_workload_identity_credential_aio_from_environment(
    azure: AzureEmulator, oidc_issuer: OidcIssuer, tmp_path: Path
) -> None:
    app = azure.world.add_service_principal("federated-app", with_secret=False)
    azure.world.add_federated_credential(
        app, issuer=oidc_issuer.url, subject="system:serviceaccount:default:app"
    )
    extra = {
        "AZURE_CLIENT_ID": app.client_id,
        "AZURE_TENANT_ID": azure.tenant_id,
        "AZURE_FEDERATED_TOKEN_FILE": _token_file(tmp_path, oidc_issuer.token()),
    }
    with azure.patched_environ(extra=extra):
        async with AsyncWorkloadIdentityCredential(
            connection_verify=str(azure.ca_bundle)
        ) as credential:
            token = await credential.get_token(ARM_SCOPE)
    assert unverified_claims(token.token)["oid"] == app.object_id


# -- error shapes, seen on the wire ---------------------------------------------------------


def _post_token(
    azure: AzureEmulator, form: dict[str, str], tenant: str | None = None
) -> httpx.Response:
    with azure.patched_environ():
        return httpx.post(
            f"https://login.microsoftonline.com/{tenant or azure.tenant_id}/oauth2/v2.0/token",
            data=form,
        )


def _assert_aad_error(response: httpx.Response, status: int, error: str, code: int) -> str:
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    return str(body["error_description"])


def test_bad_client_secret(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": "wrong",
        "scope": ARM_SCOPE,
    }
    description = _assert_aad_error(_post_token(azure, form), 401, "invalid_client", 7000215)
    assert description.startswith("AADSTS7000215: Invalid client secret provided.")
    assert "wrong" not in description


def test_bad_client_secret_through_the_sdk(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        ClientSecretCredential(azure.tenant_id, app.client_id, "wrong").get_token(ARM_SCOPE)


def test_unknown_client_id(azure: AzureEmulator) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "client_secret": "x",
        "scope": ARM_SCOPE,
    }
    description = _assert_aad_error(_post_token(azure, form), 400, "unauthorized_client", 700016)
    assert "00000000-0000-0000-0000-000000000001" in description
    assert azure.tenant_id in description


async def test_unknown_client_id_through_the_sdk_aio(azure: AzureEmulator) -> None:
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        async with AsyncClientSecretCredential(
            azure.tenant_id,
            "00000000-0000-0000-0000-000000000001",
            "x",
            connection_verify=str(azure.ca_bundle),
        ) as credential:
            await credential.get_token(ARM_SCOPE)


@pytest.mark.parametrize(
    ("scope", "error", "code"),
    [
        ("https://management.azure.com/user_impersonation", "invalid_scope", 1002012),
        ("https://nosuch.example.com/.default", "invalid_resource", 500011),
        ("", "invalid_request", 900144),
    ],
)
def test_bad_scope(azure: AzureEmulator, scope: str, error: str, code: int) -> None:
    app = azure.world.add_service_principal("ci")
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.secret,
        "scope": scope,
    }
    _assert_aad_error(_post_token(azure, form), 400, error, code)


def test_unknown_tenant(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    form = {"grant_type": "client_credentials", "client_id": app.client_id, "scope": ARM_SCOPE}
    _assert_aad_error(
        _post_token(azure, form, tenant="contoso.example"), 400, "invalid_tenant", 90002
    )


def test_unsupported_grant(azure: AzureEmulator) -> None:
    form = {"grant_type": "password", "client_id": "x", "scope": ARM_SCOPE}
    _assert_aad_error(_post_token(azure, form), 400, "unsupported_grant_type", 70003)


def _federated_form(client_id: str, assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": ARM_SCOPE,
    }


def _assert_federated_error(
    azure: AzureEmulator, identity: ManagedIdentity, assertion: str, error: str, code: int
) -> str:
    """Exchange ``assertion`` for ``identity`` and check Azure AD refuses it with a 400."""
    response = _post_token(azure, _federated_form(identity.client_id, assertion))
    return _assert_aad_error(response, 400, error, code)


def test_federated_subject_mismatch(azure: AzureEmulator, oidc_issuer: OidcIssuer) -> None:
    identity = _federated_identity(azure, oidc_issuer)
    assertion = oidc_issuer.token("system:serviceaccount:prod:intruder")
    description = _assert_federated_error(azure, identity, assertion, "invalid_request", 700213)
    assert description.startswith(
        "AADSTS700213: No matching federated identity record found for presented assertion"
        " subject 'system:serviceaccount:prod:intruder'."
    )


def test_federated_subject_differing_only_in_case(
    azure: AzureEmulator, oidc_issuer: OidcIssuer
) -> None:
    identity = _federated_identity(azure, oidc_issuer, subject="system:serviceaccount:prod:api")
    assertion = oidc_issuer.token("system:serviceaccount:Prod:API")
    description = _assert_federated_error(azure, identity, assertion, "invalid_request", 7002138)
    assert "case-sensitive" in description


def test_federated_subject_mismatch_through_the_sdk(
    azure: AzureEmulator, oidc_issuer: OidcIssuer, tmp_path: Path
) -> None:
    identity = _federated_identity(azure, oidc_issuer)
    token_file = _token_file(tmp_path, oidc_issuer.token("system:serviceaccount:default:default"))
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        WorkloadIdentityCredential(
            tenant_id=azure.tenant_id, client_id=identity.client_id, token_file_path=token_file
        ).get_token(ARM_SCOPE)


def test_federated_wrong_audience_and_unknown_issuer(
    azure: AzureEmulator, oidc_issuer: OidcIssuer
) -> None:
    identity = _federated_identity(azure, oidc_issuer, subject="s")
    wrong_audience = oidc_issuer.token("s", audience="https://kubernetes.default.svc")
    _assert_federated_error(azure, identity, wrong_audience, "invalid_request", 700212)
    other_issuer = oidc_issuer.token("s", issuer="https://127.0.0.1:1/other")
    _assert_federated_error(azure, identity, other_issuer, "invalid_client", 700211)


def test_federated_assertion_signed_by_another_key(
    azure: AzureEmulator, oidc_issuer: OidcIssuer
) -> None:
    from podidentity.testing._jwt import JwtSigner

    identity = _federated_identity(azure, oidc_issuer, subject="s")
    forged = JwtSigner().sign(unverified_claims(oidc_issuer.token("s")))
    _assert_federated_error(azure, identity, forged, "invalid_client", 50013)
    # The unknown key made Azure AD fetch the issuer's keys again (rotation), once.
    assert azure.oidc.fetches == 2


def test_expired_federated_assertion(azure: AzureEmulator, oidc_issuer: OidcIssuer) -> None:
    identity = _federated_identity(azure, oidc_issuer, subject="s")
    expired = oidc_issuer.token("s", now=time.time() - 7200, lifetime=3600)
    description = _assert_federated_error(azure, identity, expired, "invalid_client", 700024)
    assert "not within its valid time range" in description


def test_expired_certificate_assertion_by_clock(
    azure_with_clock: AzureEmulator, clock: ManualClock, tmp_path: Path
) -> None:
    azure = azure_with_clock
    app = azure.world.add_service_principal("cert-app", with_secret=False, with_certificate=True)
    # The SDK signs its assertion for 30 minutes from now; Azure AD's clock is 2 hours ahead.
    clock.advance(7200)
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS700024"):
        CertificateCredential(
            azure.tenant_id, app.client_id, _write_pem(tmp_path, app.certificate.pem)
        ).get_token(ARM_SCOPE)


def test_discovery_documents(azure: AzureEmulator) -> None:
    with azure.patched_environ():
        config = httpx.get(
            f"https://login.microsoftonline.com/{azure.tenant_id}/v2.0/.well-known/openid-configuration"
        ).json()
        instance = httpx.get(
            "https://login.microsoftonline.com/common/discovery/instance",
            params={
                "api-version": "1.1",
                "authorization_endpoint": f"https://login.microsoftonline.com/{azure.tenant_id}/oauth2/v2.0/authorize",
            },
        ).json()
        keys = httpx.get(config["jwks_uri"]).json()
    assert config["token_endpoint"] == (
        f"https://login.microsoftonline.com/{azure.tenant_id}/oauth2/v2.0/token"
    )
    assert config["issuer"] == f"https://login.microsoftonline.com/{azure.tenant_id}/v2.0"
    assert instance["tenant_discovery_endpoint"].endswith("/v2.0/.well-known/openid-configuration")
    assert keys == azure.issuer.signer.jwks()


def test_injected_aad_outage(azure: AzureEmulator) -> None:
    app = azure.world.add_service_principal("ci")
    azure.aad.faults.fail_next(1, status=503, path="/oauth2/", retry_after=1)
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.secret,
        "scope": ARM_SCOPE,
    }
    response = _post_token(azure, form)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "temporarily_unavailable"
    assert _post_token(azure, form).status_code == 200
