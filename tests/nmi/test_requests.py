"""Request parsing: IMDS's rules, and every path trick refused rather than passed through."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podidentity.azure.imds import ImdsClient
from podidentity.errors import BadTokenRequestError
from podidentity.nmi.requests import (
    MethodNotAllowedError,
    PathNotFoundError,
    Route,
    classify_path,
    parse_host_token_request,
    parse_token_query,
)

OK = b"api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
META = {"metadata": "true"}


@pytest.mark.parametrize(
    ("path", "route"),
    [
        (b"/metadata/identity/oauth2/token", Route.TOKEN),
        (b"/metadata/identity/oauth2/token/", Route.TOKEN),
        (b"/Metadata/identity/oauth2/token", Route.TOKEN),
        (b"/METADATA/IDENTITY/OAUTH2/TOKEN", Route.TOKEN),
        (b"/host/token", Route.HOST_TOKEN),
        (b"/host/token/", Route.HOST_TOKEN),
        (b"/metadata/instance", Route.INSTANCE),
        (b"/Metadata/instance/compute", Route.INSTANCE),
        (b"/metadata/scheduledevents", Route.FORWARD),
        (b"/metadata/versions", Route.FORWARD),
    ],
)
def test_clean_paths_are_routed(path: bytes, route: Route) -> None:
    assert classify_path(path) is route


@pytest.mark.parametrize(
    "path",
    [
        b"/metadata/identity\\oauth2\\token",
        b"/metadata/identity\\oauth2\\token/",
        b"/metadata/identity/oauth2/token/..",
        b"/metadata/identity/oauth2/../oauth2/token",
        b"/metadata/./identity/oauth2/token",
        b"/metadata//identity/oauth2/token",
        b"/metadata/identity/oauth2/%74oken",
        b"/metadata/identity%2Foauth2%2Ftoken",
        b"/%6Detadata/identity/oauth2/token",
        b"/metadata/identity/oauth2/token;x=1",
        b"/metadata/identity/oauth2/token/extra",
        b"/metadata/identity",
        b"/metadata/identity/info",
        b"/metadata/identity/oauth2/tokens",
        b"/host/token/..",
        b"/host%2Ftoken",
        b"/metadata/instance/../identity/oauth2/token",
        b"/metadata/instance\\..\\identity",
        "/metadata/identity/oauth2/tökén".encode(),
    ],
)
def test_tricky_metadata_paths_are_refused_not_forwarded(path: bytes) -> None:
    with pytest.raises(BadTokenRequestError):
        classify_path(path)


@pytest.mark.parametrize("path", [b"/", b"/healthz", b"/metrics", b"/token", b"/x/%2e%2e/y"])
def test_unknown_paths_are_not_found(path: bytes) -> None:
    with pytest.raises(PathNotFoundError):
        classify_path(path)


@given(st.binary(max_size=60))
def test_no_path_reaching_the_token_endpoint_is_forwarded(suffix: bytes) -> None:
    path = b"/metadata/" + suffix
    try:
        route = classify_path(path)
    except (BadTokenRequestError, PathNotFoundError):
        return
    if route in (Route.FORWARD, Route.INSTANCE):
        # What IIS would see after its own normalisation must not be the identity endpoint.
        normalised = path.decode("latin-1").lower().replace("\\", "/")
        assert "/identity" not in normalised
        assert "%" not in normalised
        assert ".." not in normalised


def test_token_query_follows_imds_order_and_texts() -> None:
    query = parse_token_query("GET", OK + b"&client_id=ABC", META)
    assert (query.resource, query.parameter, query.api_version) == (
        "https://vault.azure.net",
        ("client_id", "ABC"),
        "2018-02-01",
    )
    with pytest.raises(BadTokenRequestError, match=r"^Required metadata header not specified$"):
        parse_token_query("GET", b"", {})
    with pytest.raises(BadTokenRequestError, match=r"^Required metadata header not specified$"):
        parse_token_query("GET", OK, {"metadata": "false"})
    with pytest.raises(BadTokenRequestError, match="api-version"):
        parse_token_query("GET", b"resource=x", META)
    with pytest.raises(BadTokenRequestError, match=r"^Required audience parameter not specified$"):
        parse_token_query("GET", b"api-version=2018-02-01", META)
    with pytest.raises(MethodNotAllowedError):
        parse_token_query("POST", OK, META)
    assert parse_token_query("GET", OK, {}, metadata_header_required=False).parameter is None


def test_a_remembered_query_still_needs_its_header_and_method_every_time() -> None:
    """Parsed queries are remembered; the checks of each request's own header and method are
    not: a query another pod sent correctly gives nothing to a request without the header."""
    first = parse_token_query("GET", OK + b"&client_id=remembered", META)
    assert parse_token_query("GET", OK + b"&client_id=remembered", META) == first
    with pytest.raises(BadTokenRequestError, match=r"^Required metadata header not specified$"):
        parse_token_query("GET", OK + b"&client_id=remembered", {})
    with pytest.raises(MethodNotAllowedError):
        parse_token_query("POST", OK + b"&client_id=remembered", META)


def test_a_refused_query_is_refused_every_time() -> None:
    for _ in range(3):
        with pytest.raises(BadTokenRequestError):
            parse_token_query("GET", OK + b"&client_id=a&client_id=b", META)
        with pytest.raises(BadTokenRequestError):
            classify_path(b"/metadata/identity/../identity/oauth2/token")


@pytest.mark.parametrize(
    "extra",
    [
        b"&client_id=a&object_id=b",
        b"&client_id=a&client_id=b",
        b"&CLIENT_ID=a&client_id=b",
        b"&msi_res_id=a&mi_res_id=b",
        b"&resource=other",
        b"&client_id=",
    ],
)
def test_ambiguous_identity_parameters_are_refused(extra: bytes) -> None:
    with pytest.raises(BadTokenRequestError):
        parse_token_query("GET", OK + extra, META)


@pytest.mark.parametrize(
    "name", ["client_id", "object_id", "msi_res_id", "mi_res_id", "resource_id"]
)
def test_each_identity_parameter_is_understood(name: str) -> None:
    query = parse_token_query("GET", OK + f"&{name}=X".encode(), META)
    # resource_id (azure-identity aio) means msi_res_id; IMDS itself would ignore it.
    assert query.parameter == ("msi_res_id" if name == "resource_id" else name, "X")


async def test_the_imds_client_sends_resource_id_as_msi_res_id() -> None:
    seen: list[httpx.QueryParams] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        body = {"access_token": "t", "expires_on": "9999999999", "client_id": "c"}
        return httpx.Response(200, json=body)

    imds = ImdsClient("http://imds.test", transport=httpx.MockTransport(answer))
    try:
        await imds.get_token("https://vault.azure.net", parameter=("resource_id", "/sub/x"))
    finally:
        await imds.aclose()
    assert seen[0].get("msi_res_id") == "/sub/x"
    assert "resource_id" not in seen[0]


def test_host_token_needs_pod_headers_and_resource() -> None:
    request = parse_host_token_request(
        "GET", b"resource=r&clientid=c", {"podname": "web", "podns": "shop"}
    )
    assert (request.pod_name, request.pod_namespace, request.query.parameter) == (
        "web",
        "shop",
        ("client_id", "c"),
    )
    with pytest.raises(BadTokenRequestError, match="podname and podns"):
        parse_host_token_request("GET", b"resource=r", {"podname": "web"})
    with pytest.raises(BadTokenRequestError, match="audience"):
        parse_host_token_request("GET", b"", {"podname": "web", "podns": "shop"})
