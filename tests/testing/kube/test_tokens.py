"""Service-account tokens over real HTTP: TokenRequest, OIDC discovery, TokenReview, bearer auth.

Security first: every rule that refuses a token has a test here that tries to break it (expired,
wrong audience, bound pod deleted or recreated, tampered, ``alg: none``, another key, another
issuer), on top of the pure checks in ``test_claims.py``.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing._jwt import JwtSigner, b64url_encode, unverified_claims, verify
from podidentity.testing.kube import APIError, KubeEmulator
from podidentity.testing.kube._cluster import Cluster
from podidentity.testing.kube._tokens import ServiceAccountTokens
from tests.testing.kube.aio_client import aio_api_client

AZURE = "api://AzureADTokenExchange"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeEmulator]:
    """One HTTPS emulator with bearer auth for the module (tests use their own namespaces)."""
    with KubeEmulator(tls=True) as emulator:
        emulator.cluster.add_node("n1", vmss=("aks-pool-1-vmss", 0))
        yield emulator


@pytest.fixture
def tokens(kube: KubeEmulator) -> Iterator[ServiceAccountTokens]:
    service_accounts: ServiceAccountTokens = kube.service_accounts
    yield service_accounts
    service_accounts.clock = time.time


@pytest.fixture
def cluster(kube: KubeEmulator) -> Cluster:
    return kube.cluster


# ``api_client`` and ``core`` come from conftest.py, over this module's HTTPS emulator.


@pytest.fixture
def authn(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AuthenticationV1Api:
    return kubernetes.client.AuthenticationV1Api(api_client)


_counter = iter(range(1_000_000))


@pytest.fixture
def ns(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> str:
    """A fresh namespace with service account ``robot`` and pod ``web`` running as it."""
    name = f"t{next(_counter)}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_service_account(name, {"metadata": {"name": "robot"}})
    core.create_namespaced_pod(
        name,
        {
            "metadata": {"name": "web"},
            "spec": {
                "serviceAccountName": "robot",
                "containers": [{"name": "app", "image": "nginx:1.27"}],
            },
        },
    )
    kube.wait_for_pod_running("web", namespace=name)  # bound to its node, so tokens name it
    return name


def http(kube: KubeEmulator) -> httpx.Client:
    assert kube.ca_bundle is not None
    return httpx.Client(verify=ssl.create_default_context(cafile=str(kube.ca_bundle)))


def fetch_jwks(kube: KubeEmulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Discovery then JWKS, anonymously, as Azure AD fetches them."""
    with http(kube) as client:
        discovery = client.get(f"{kube.url}/.well-known/openid-configuration")
        discovery.raise_for_status()
        document = discovery.json()
        jwks = client.get(document["jwks_uri"])
        jwks.raise_for_status()
        return document, jwks.json()


def request_token(core: kubernetes.client.CoreV1Api, ns: str, **spec: Any) -> Any:
    return core.create_namespaced_service_account_token("robot", ns, {"spec": spec})


def pod_ref(core: kubernetes.client.CoreV1Api, ns: str, name: str = "web") -> dict[str, str]:
    uid = core.read_namespaced_pod(name, ns).metadata.uid
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}


def review(
    authn: kubernetes.client.AuthenticationV1Api, token: str, audiences: list[str] | None = None
) -> Any:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return authn.create_token_review({"spec": spec}).status


def api_error(caught: pytest.ExceptionInfo[ApiException]) -> tuple[int, dict[str, Any]]:
    return caught.value.status, json.loads(caught.value.body)


# --- discovery ------------------------------------------------------------------------------


def test_discovery_and_jwks_are_served_anonymously(
    kube: KubeEmulator, tokens: ServiceAccountTokens
) -> None:
    document, jwks = fetch_jwks(kube)
    assert document == {
        "issuer": kube.url,
        "jwks_uri": f"{kube.url}/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    assert tokens.issuer == kube.url
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert "d" not in key  # the private exponent never leaves the emulator
    # Everything else still needs a token.
    with http(kube) as client:
        assert client.get(f"{kube.url}/api/v1/namespaces").status_code == 401


# --- TokenRequest ---------------------------------------------------------------------------


def test_token_request_issues_a_verifiable_pod_bound_jwt(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api, ns: str
) -> None:
    ref = pod_ref(core, ns)
    before = time.time()
    answer = request_token(core, ns, audiences=[AZURE], expirationSeconds=3600, boundObjectRef=ref)
    document, jwks = fetch_jwks(kube)
    claims = verify(answer.status.token, jwks, audiences=[AZURE], issuer=document["issuer"])
    sa_uid = core.read_namespaced_service_account("robot", ns).metadata.uid
    node = core.read_node("n1")
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["aud"] == [AZURE]
    assert claims["iss"] == kube.url
    assert before - 1 <= claims["iat"] == claims["nbf"] <= time.time()
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["jti"]
    assert claims["kubernetes.io"] == {
        "namespace": ns,
        "serviceaccount": {"name": "robot", "uid": sa_uid},
        "pod": {"name": "web", "uid": ref["uid"]},
        "node": {"name": "n1", "uid": node.metadata.uid},
    }
    assert int(answer.status.expiration_timestamp.timestamp()) == claims["exp"]
    assert answer.spec.audiences == [AZURE]


def test_token_request_defaults(
    kube: KubeEmulator, tokens: ServiceAccountTokens, core: kubernetes.client.CoreV1Api, ns: str
) -> None:
    answer = request_token(core, ns)
    claims = unverified_claims(answer.status.token)
    assert claims["aud"] == [tokens.issuer]
    assert claims["exp"] - claims["iat"] == 3600
    assert "pod" not in claims["kubernetes.io"]
    assert answer.spec.expiration_seconds == 3600


def test_token_request_refusals(core: kubernetes.client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as caught:
        request_token(core, ns, expirationSeconds=599)
    code, body = api_error(caught)
    assert code == 422
    assert "may not specify a duration less than 10 minutes" in body["message"]

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service_account_token("ghost", ns, {"spec": {}})
    code, body = api_error(caught)
    assert (code, body["message"]) == (404, 'serviceaccounts "ghost" not found')

    missing = {"apiVersion": "v1", "kind": "Pod", "name": "nope"}
    with pytest.raises(ApiException) as caught:
        request_token(core, ns, boundObjectRef=missing)
    code, body = api_error(caught)
    assert (code, body["message"]) == (404, 'pods "nope" not found')

    stale = {**pod_ref(core, ns), "uid": "00000000-dead-beef-0000-000000000000"}
    with pytest.raises(ApiException) as caught:
        request_token(core, ns, boundObjectRef=stale)
    code, body = api_error(caught)
    assert code == 409
    assert "does not match the UID in record" in body["message"]

    with pytest.raises(ApiException) as caught:
        request_token(
            core, ns, boundObjectRef={"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}
        )
    code, body = api_error(caught)
    assert (code, body["message"]) == (
        400,
        "cannot bind token to object of type /v1, Kind=ConfigMap",
    )

    # A pod running as another service account cannot lend its binding to "robot".
    core.create_namespaced_pod(
        ns, {"metadata": {"name": "other"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    )
    with pytest.raises(ApiException) as caught:
        request_token(core, ns, boundObjectRef=pod_ref(core, ns, "other"))
    code, body = api_error(caught)
    assert code == 400
    assert "different serviceaccount name" in body["message"]


async def test_token_request_with_the_aio_client(kube: KubeEmulator, ns: str) -> None:
    from kubernetes.aio import client as aclient

    async with aio_api_client(kube) as api:
        answer = await aclient.CoreV1Api(api).create_namespaced_service_account_token(
            "robot", ns, {"spec": {"audiences": [AZURE]}}
        )
        review_answer = await aclient.AuthenticationV1Api(api).create_token_review(
            {"spec": {"token": answer.status.token, "audiences": [AZURE]}}
        )
    assert review_answer.status.authenticated is True
    assert review_answer.status.user.username == f"system:serviceaccount:{ns}:robot"


# --- TokenReview ----------------------------------------------------------------------------


def test_token_review_accepts_a_live_pod_bound_token(
    core: kubernetes.client.CoreV1Api, authn: kubernetes.client.AuthenticationV1Api, ns: str
) -> None:
    ref = pod_ref(core, ns)
    token = request_token(core, ns, audiences=[AZURE, "other"], boundObjectRef=ref).status.token
    status = review(authn, token, [AZURE])
    assert status.authenticated is True
    assert status.error is None
    assert status.audiences == [AZURE]
    user = status.user
    assert user.username == f"system:serviceaccount:{ns}:robot"
    assert user.uid == core.read_namespaced_service_account("robot", ns).metadata.uid
    assert user.groups == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["web"]
    assert user.extra["authentication.kubernetes.io/pod-uid"] == [ref["uid"]]
    assert user.extra["authentication.kubernetes.io/node-name"] == ["n1"]
    assert user.extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_token_review_refuses_the_wrong_audience(
    tokens: ServiceAccountTokens,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    token = request_token(core, ns, audiences=[AZURE]).status.token
    status = review(authn, token, ["https://vault.azure.net"])
    assert status.authenticated is None
    assert status.error == (
        f'token audiences ["{AZURE}"] is invalid for the target audiences '
        '["https://vault.azure.net"]'
    )
    # No audiences requested means the API server's own, which an Azure token is not for.
    assert review(authn, token).authenticated is None


def test_token_review_refuses_expired_tokens(
    tokens: ServiceAccountTokens,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    old = tokens.issue_token(ns, "robot", audiences=[AZURE], now=time.time() - 3600 - 120)
    status = review(authn, old, [AZURE])
    assert status.authenticated is None
    assert status.error == "service account token has expired"

    fresh = request_token(core, ns, audiences=[AZURE], expirationSeconds=600).status.token
    assert review(authn, fresh, [AZURE]).authenticated is True
    tokens.clock = lambda: time.time() + 600 + 61  # the server's clock moves on
    assert review(authn, fresh, [AZURE]).error == "service account token has expired"


def test_token_review_refuses_tokens_of_a_deleted_or_recreated_pod(
    kube: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    token = request_token(
        core, ns, audiences=[AZURE], boundObjectRef=pod_ref(core, ns)
    ).status.token
    assert review(authn, token, [AZURE]).authenticated is True
    core.delete_namespaced_pod("web", ns, grace_period_seconds=0)
    status = review(authn, token, [AZURE])
    assert status.authenticated is None
    assert status.error == "service account token has been invalidated"
    # Same name, new pod: the old token stays dead.
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "a", "image": "x"}]},
        },
    )
    status = review(authn, token, [AZURE])
    assert status.authenticated is None
    assert "does not match service account pod ref claim" in status.error


def test_token_review_refuses_tokens_of_a_recreated_service_account(
    core: kubernetes.client.CoreV1Api, authn: kubernetes.client.AuthenticationV1Api, ns: str
) -> None:
    token = request_token(core, ns, audiences=[AZURE]).status.token
    core.delete_namespaced_service_account("robot", ns)
    assert review(authn, token, [AZURE]).error == 'serviceaccounts "robot" not found'
    core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    assert "does not match claim" in review(authn, token, [AZURE]).error


def test_token_review_refuses_forgeries(
    tokens: ServiceAccountTokens,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    genuine = request_token(core, ns, audiences=[AZURE]).status.token
    claims = unverified_claims(genuine)
    header, _, signature = genuine.split(".")

    # Tampered payload, original signature: claim to be another service account.
    evil = json.loads(json.dumps(claims))
    evil["kubernetes.io"]["serviceaccount"]["name"] = "default"
    evil["sub"] = f"system:serviceaccount:{ns}:default"
    tampered = f"{header}.{b64url_encode(json.dumps(evil).encode())}.{signature}"

    # alg none, with and without a signature part.
    none_header = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url_encode(json.dumps(claims).encode())

    # Another key that claims the real key's ID; and another issuer with its own key.
    forger = JwtSigner()
    wrong_key = forger.sign(claims, headers={"kid": tokens.signer.kid})
    other_issuer = forger.sign({**claims, "iss": "https://evil.example"})
    # The genuine key cannot vouch for a different issuer either: issuer is checked too.
    foreign_iss = tokens.signer.sign({**claims, "iss": "https://evil.example"})

    for name, forged in {
        "tampered": tampered,
        "alg none": f"{none_header}.{payload}.",
        "alg none signed": f"{none_header}.{payload}.{signature}",
        "wrong key": wrong_key,
        "other issuer": other_issuer,
        "genuine key, foreign issuer": foreign_iss,
        "garbage": "not.a.jwt",
    }.items():
        status = review(authn, forged, [AZURE])
        assert status.authenticated is None, name
        assert not status.user or not status.user.username, name
    assert review(authn, genuine, [AZURE]).authenticated is True


def test_token_review_requires_a_token(authn: kubernetes.client.AuthenticationV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        authn.create_token_review({"spec": {"token": ""}})
    assert caught.value.status in (400, 422)


def test_token_review_knows_the_admin_token(
    kube: KubeEmulator, authn: kubernetes.client.AuthenticationV1Api
) -> None:
    status = review(authn, kube.token)
    assert status.authenticated is True
    assert status.user.username == "kubernetes-admin"
    # ... but not for an audience the API server is not.
    assert review(authn, kube.token, [AZURE]).authenticated is None


def test_changing_the_issuer(
    kube: KubeEmulator,
    tokens: ServiceAccountTokens,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    old = request_token(core, ns, audiences=[AZURE]).status.token
    tokens.configure(issuer="https://oidc.prod-aks.azure.com/tenant/cluster/")
    try:
        new = request_token(core, ns, audiences=[AZURE]).status.token
        assert unverified_claims(new)["iss"] == "https://oidc.prod-aks.azure.com/tenant/cluster"
        document, jwks = fetch_jwks(kube)
        assert document["issuer"] == "https://oidc.prod-aks.azure.com/tenant/cluster"
        assert document["jwks_uri"] == f"{kube.url}/openid/v1/jwks"
        verify(new, jwks, audiences=[AZURE], issuer=document["issuer"])
        assert review(authn, new, [AZURE]).authenticated is True
        assert review(authn, old, [AZURE]).authenticated is None
    finally:
        tokens.configure(issuer=kube.url)


# --- the Python helper and bearer authentication --------------------------------------------


def test_issue_token_helper_mints_a_projected_token(
    kube: KubeEmulator, tokens: ServiceAccountTokens, core: kubernetes.client.CoreV1Api, ns: str
) -> None:
    token = tokens.issue_token(ns, "robot", audiences=[AZURE], pod="web")
    _, jwks = fetch_jwks(kube)
    claims = verify(token, jwks, audiences=[AZURE], issuer=tokens.issuer)
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["kubernetes.io"]["pod"]["uid"] == core.read_namespaced_pod("web", ns).metadata.uid
    with pytest.raises(APIError) as caught:
        tokens.issue_token(ns, "robot", expiration_seconds=60)
    assert caught.value.code == 422


def test_service_account_tokens_authenticate_api_requests(
    kube: KubeEmulator,
    tokens: ServiceAccountTokens,
    core: kubernetes.client.CoreV1Api,
    ns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = tokens.issue_token(ns, "robot", pod="web")  # the API server's audience
    files = kube.in_cluster(token=token, namespace=ns)
    # Authenticated, but RBAC grants the service account nothing yet.
    with http(kube) as client:
        denied = client.get(
            f"{kube.url}/api/v1/namespaces/{ns}/pods", headers={"Authorization": f"Bearer {token}"}
        )
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{ns}:robot" cannot list resource '
        f'"pods" in API group "" in the namespace "{ns}"'
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "robot-view", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
        }
    )
    for key, value in files.env.items():
        monkeypatch.setenv(key, value)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.incluster_config.InClusterConfigLoader(
        token_filename=str(files.token_path), cert_filename=str(files.ca_path)
    ).load_and_set(configuration)
    with kubernetes.client.ApiClient(configuration) as client:
        names = [
            p.metadata.name
            for p in kubernetes.client.CoreV1Api(client).list_namespaced_pod(ns).items
        ]
    assert names == ["web"]

    def status_with(bearer: str) -> int:
        with http(kube) as client:
            response = client.get(
                f"{kube.url}/api/v1/namespaces/{ns}/pods",
                headers={"Authorization": f"Bearer {bearer}"},
            )
            return response.status_code

    assert status_with(token) == 200
    # A token for Azure AD is not a credential for the API server.
    assert status_with(tokens.issue_token(ns, "robot", audiences=[AZURE])) == 401
    # Nor is a forged one, nor one whose pod is gone.
    assert status_with(JwtSigner().sign(unverified_claims(token))) == 401
    core.delete_namespaced_pod("web", ns, grace_period_seconds=0)
    assert status_with(token) == 401


def test_deletion_timestamps_are_read_leniently() -> None:
    from podidentity.testing.kube._tokens import _epoch

    assert _epoch("1970-01-01T00:01:00Z") == 60.0
    assert _epoch("1970-01-01T00:01:00.5Z") == 60.5
    assert _epoch("1970-01-01T00:01:00") == 60.0
    assert _epoch("yesterday") is None
    assert _epoch(None) is None


def test_tokens_are_never_logged(
    kube: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = request_token(core, ns, audiences=[AZURE], boundObjectRef=pod_ref(core, ns))
        secret = token.status.token
        review = authn.create_token_review({"spec": {"token": secret, "audiences": [AZURE]}})
        assert review.status.authenticated
        # A request authenticated by the token: its header is masked in the request log.
        with httpx.Client(verify=ssl.create_default_context(cafile=kube.ca_bundle)) as http:
            http.get(
                f"{kube.url}/api/v1/namespaces/{ns}/pods",
                headers={"Authorization": f"Bearer {secret}"},
            )
    assert any("issued service-account token" in r.getMessage() for r in caplog.records)
    signature = secret.rsplit(".", 1)[1]
    assert signature not in caplog.text
    assert signature not in repr(kube.requests.records)


def test_token_review_omits_authenticated_when_false(kube: KubeEmulator, ns: str) -> None:
    with http(kube) as client:
        answer = client.post(
            f"{kube.url}/apis/authentication.k8s.io/v1/tokenreviews",
            headers={"Authorization": f"Bearer {kube.token}"},
            json={"spec": {"token": "not-a-token"}},
        )
    assert answer.status_code == 201
    # omitempty: a refused token's status has no "authenticated" key at all.
    assert answer.json()["status"] == {"user": {}}


def test_node_bound_token_requests(
    cluster: Cluster,
    core: kubernetes.client.CoreV1Api,
    authn: kubernetes.client.AuthenticationV1Api,
    ns: str,
) -> None:
    cluster.add_node("bound-node", vmss=("aks-pool-2-vmss", 0))
    node_uid = core.read_node("bound-node").metadata.uid
    ref = {"apiVersion": "v1", "kind": "Node", "name": "bound-node"}
    answer = request_token(core, ns, audiences=[AZURE], boundObjectRef=ref)
    claims = unverified_claims(answer.status.token)
    assert claims["kubernetes.io"]["node"] == {"name": "bound-node", "uid": node_uid}
    assert "pod" not in claims["kubernetes.io"]
    status = review(authn, answer.status.token, [AZURE])
    assert status.authenticated is True
    assert status.user.extra["authentication.kubernetes.io/node-name"] == ["bound-node"]
    assert status.user.extra["authentication.kubernetes.io/node-uid"] == [node_uid]
    with pytest.raises(ApiException) as stale:
        request_token(core, ns, boundObjectRef={**ref, "uid": "wrong"})
    assert stale.value.status == 409
    # The token dies with its node.
    core.delete_node("bound-node")
    assert review(authn, answer.status.token, [AZURE]).error == (
        "service account token has been invalidated"
    )
    with pytest.raises(ApiException) as missing:
        request_token(core, ns, boundObjectRef=ref)
    assert missing.value.status == 404
