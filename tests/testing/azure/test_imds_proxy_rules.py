"""IMDS's rules for the requests a token proxy (NMI) in front of it can get wrong."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from podidentity.testing.azure import AzureEmulator, ComputeResource, ManagedIdentity

VAULT = "https://vault.azure.net"
TOKEN_PATH = "/metadata/identity/oauth2/token"
TOKEN_QUERY = {"api-version": "2018-02-01", "resource": VAULT}


@pytest.fixture
def node(azure: AzureEmulator) -> tuple[ComputeResource, ManagedIdentity]:
    identity = azure.world.add_managed_identity("node-identity")
    return azure.world.add_vm("node-0", identities=[identity]), identity


def test_a_forwarded_request_is_refused_with_imds_xml_error(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    url = azure.imds_url(vm=vm)
    response = httpx.get(
        url + TOKEN_PATH,
        params=TOKEN_QUERY,
        headers={"Metadata": "true", "X-Forwarded-For": "10.244.1.7"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Code>InvalidHeaderValue</Code>" in response.text
    assert "Header contains 'X-Forwarded-For' are not supported." in response.text
    # Any path: the refusal comes before routing, and even an empty value counts.
    instance = httpx.get(
        url + "/metadata/instance",
        params={"api-version": "2021-02-01"},
        headers={"Metadata": "true", "X-Forwarded-For": ""},
    )
    assert instance.status_code == 400
    assert [r.status for r in azure.imds(vm=vm).log.records] == [400, 400]


def test_sdks_see_a_forwarded_request_as_an_unavailable_credential(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    # What a pod sees through a proxy that leaks X-Forwarded-For: no token, and the error names
    # the header.
    vm, _ = node
    with (
        azure.patched_environ(vm=vm),
        pytest.raises((CredentialUnavailableError, ClientAuthenticationError)),
    ):
        ManagedIdentityCredential(
            retry_total=0, headers={"X-Forwarded-For": "10.244.1.7"}
        ).get_token(VAULT)
    assert "x-forwarded-for" in azure.imds(vm=vm).log.records[-1].headers


async def test_aio_sdk_sees_a_forwarded_request_fail(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    with azure.patched_environ(vm=vm):
        async with AsyncManagedIdentityCredential(
            retry_total=0, headers={"X-Forwarded-For": "10.244.1.7"}
        ) as credential:
            with pytest.raises((CredentialUnavailableError, ClientAuthenticationError)):
                await credential.get_token(VAULT)
    assert azure.imds(vm=vm).log.records[-1].status == 400


def test_imds_is_plain_http_only(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    url = azure.imds_url(vm=vm)
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            url.replace("http://", "https://") + TOKEN_PATH,
            params=TOKEN_QUERY,
            headers={"Metadata": "true"},
            verify=False,  # noqa: S501 - the point is that no TLS is spoken at all
        )


@pytest.mark.parametrize(
    "path",
    [
        "/Metadata/Identity/OAuth2/Token",
        "/METADATA/identity/oauth2/token",
        "/metadata/identity/oauth2/token/",
        "/metadata/identity%5Coauth2%5Ctoken/",
    ],
)
def test_token_path_variants_reach_the_node_identity(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity], path: str
) -> None:
    # IMDS runs on IIS: case-insensitive paths, backslash as slash. A proxy that intercepts only
    # the exact lower-case path would pass these to IMDS and hand out the node's identity
    # (GHSA-p82q-rxpm-hjpc in aad-pod-identity).
    vm, identity = node
    response = httpx.get(
        azure.imds_url(vm=vm) + path, params=TOKEN_QUERY, headers={"Metadata": "true"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == identity.client_id


def test_other_paths_are_not_the_token_endpoint(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    for path in ("/metadata/identity/oauth2/tokens", "/metadata/identity/token", "/"):
        response = httpx.get(
            azure.imds_url(vm=vm) + path, params=TOKEN_QUERY, headers={"Metadata": "true"}
        )
        assert response.status_code == 404, path


@pytest.mark.parametrize("version", [None, "", "2018-02-02", "latest", "2018-02-01-preview"])
def test_unsupported_api_version(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity], version: str | None
) -> None:
    vm, _ = node
    params = {"resource": VAULT} | ({} if version is None else {"api-version": version})
    url = azure.imds_url(vm=vm)
    token = httpx.get(url + TOKEN_PATH, params=params, headers={"Metadata": "true"})
    assert token.status_code == 400
    assert token.json() == {
        "error": "invalid_request",
        "error_description": "Bad request. api-version is invalid or was not specified in the"
        " request. For more information refer to aka.ms/azureimds",
    }
    instance = httpx.get(
        url + "/metadata/instance",
        params={} if version is None else {"api-version": version},
        headers={"Metadata": "true"},
    )
    assert instance.status_code == 400
    body = instance.json()
    assert body["error"].startswith("Bad request. api-version is invalid")
    assert "2021-02-01" not in body["newest-versions"]
    assert len(body["newest-versions"]) == 3


def test_the_metadata_header_is_checked_before_the_api_version(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    response = httpx.get(
        azure.imds_url(vm=vm) + TOKEN_PATH, params={"api-version": "nonsense", "resource": VAULT}
    )
    assert response.json()["error_description"] == "Required metadata header not specified"


def test_missing_or_empty_resource(
    azure: AzureEmulator, node: tuple[ComputeResource, ManagedIdentity]
) -> None:
    vm, _ = node
    response = httpx.get(
        azure.imds_url(vm=vm) + TOKEN_PATH,
        params={"api-version": "2018-02-01"},
        headers={"Metadata": "true"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Required audience parameter not specified",
    }
    empty = httpx.get(
        azure.imds_url(vm=vm) + TOKEN_PATH,
        params={"api-version": "2018-02-01", "resource": ""},
        headers={"Metadata": "true"},
    )
    assert empty.json()["error_description"] == "Required audience parameter not specified"
