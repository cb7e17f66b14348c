"""Service-account token claims and their checks, without a server.

Every rule that refuses a token is tried here with a token built to break it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from podidentity.testing._jwt import JwtSigner, b64url_encode
from podidentity.testing.kube._claims import (
    Authentication,
    LiveObject,
    ObjectRef,
    authenticate,
    token_claims,
)

ISSUER = "https://127.0.0.1:6443"
API = ["https://kubernetes.default.svc"]
NOW = 1_700_000_000.0
SA = ObjectRef("robot", "sa-uid")
POD = ObjectRef("web", "pod-uid")
NODE = ObjectRef("node-1", "node-uid")


@pytest.fixture(scope="module")
def signer() -> JwtSigner:
    return JwtSigner()


class World:
    """A tiny object store for the lookup callback."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], LiveObject] = {
            ("ServiceAccount", "ns", "robot"): LiveObject("sa-uid"),
            ("Pod", "ns", "web"): LiveObject("pod-uid"),
            ("Secret", "ns", "s"): LiveObject("secret-uid"),
        }

    def __call__(self, kind: str, namespace: str, name: str) -> LiveObject | None:
        return self.objects.get((kind, namespace, name))


def claims(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "issuer": ISSUER,
        "namespace": "ns",
        "service_account": SA,
        "audiences": ["api://AzureADTokenExchange"],
        "issued_at": NOW,
        "expiration_seconds": 3600,
        "pod": POD,
        "node": NODE,
        "jti": "jti-1",
    }
    kwargs.update(overrides)
    return token_claims(**kwargs)


def check(
    token: str,
    signer: JwtSigner,
    *,
    world: World | None = None,
    now: float = NOW,
    audiences: list[str] | None = None,
) -> Authentication:
    return authenticate(
        token,
        jwks=signer.jwks(),
        issuers=[ISSUER],
        implicit_audiences=API,
        lookup=world or World(),
        now=now,
        requested_audiences=audiences if audiences is not None else ["api://AzureADTokenExchange"],
    )


def test_claims_have_the_apiserver_shape() -> None:
    c = claims()
    assert c["iss"] == ISSUER
    assert c["sub"] == "system:serviceaccount:ns:robot"
    assert c["aud"] == ["api://AzureADTokenExchange"]
    assert c["iat"] == c["nbf"] == int(NOW)
    assert c["exp"] == int(NOW) + 3600
    assert c["jti"] == "jti-1"
    assert c["kubernetes.io"] == {
        "namespace": "ns",
        "serviceaccount": {"name": "robot", "uid": "sa-uid"},
        "pod": {"name": "web", "uid": "pod-uid"},
        "node": {"name": "node-1", "uid": "node-uid"},
    }


def test_binding_claims_and_jti_defaults_to_a_uuid() -> None:
    node_bound = claims(pod=None, jti=None)
    assert node_bound["kubernetes.io"]["node"] == {"name": "node-1", "uid": "node-uid"}
    assert "pod" not in node_bound["kubernetes.io"]
    assert len(node_bound["jti"]) == 36
    secret_bound = claims(pod=None, secret=ObjectRef("s", "secret-uid"))
    assert "node" not in secret_bound["kubernetes.io"]
    assert "node" not in claims(pod=None, node=None)["kubernetes.io"]
    with pytest.raises(ValueError, match="one object type"):
        claims(secret=ObjectRef("s", "secret-uid"))


def test_a_valid_pod_bound_token_authenticates_as_the_service_account(signer: JwtSigner) -> None:
    result = check(signer.sign(claims()), signer)
    assert result.authenticated
    assert result.error == ""
    assert result.audiences == ("api://AzureADTokenExchange",)
    assert result.user is not None
    assert result.user.user_info() == {
        "username": "system:serviceaccount:ns:robot",
        "uid": "sa-uid",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/credential-id": ["JTI=jti-1"],
            "authentication.kubernetes.io/pod-name": ["web"],
            "authentication.kubernetes.io/pod-uid": ["pod-uid"],
            "authentication.kubernetes.io/node-name": ["node-1"],
            "authentication.kubernetes.io/node-uid": ["node-uid"],
        },
    }


def test_audiences_default_to_the_api_servers(signer: JwtSigner) -> None:
    token = signer.sign(claims(audiences=API))
    assert check(token, signer, audiences=[]).audiences == tuple(API)
    refused = check(token, signer)
    assert not refused.authenticated
    assert refused.error == (
        'token audiences ["https://kubernetes.default.svc"] is invalid for the target '
        'audiences ["api://AzureADTokenExchange"]'
    )


def test_a_node_bound_token_dies_with_its_node(signer: JwtSigner) -> None:
    token = signer.sign(claims(pod=None))
    world = World()
    world.objects[("Node", "", "node-1")] = LiveObject("node-uid")
    result = check(token, signer, world=world)
    assert result.authenticated
    assert result.user is not None
    assert result.user.user_info()["extra"]["authentication.kubernetes.io/node-name"] == ["node-1"]
    world.objects[("Node", "", "node-1")] = LiveObject("other")
    assert check(token, signer, world=world).error == (
        "node UID (other) does not match service account node ref claim (node-uid)"
    )
    del world.objects[("Node", "", "node-1")]
    assert check(token, signer, world=world).error == "service account token has been invalidated"


def test_a_secret_bound_token_dies_with_its_secret(signer: JwtSigner) -> None:
    token = signer.sign(claims(pod=None, secret=ObjectRef("s", "secret-uid")))
    world = World()
    assert check(token, signer, world=world).authenticated
    world.objects[("Secret", "ns", "s")] = LiveObject("other")
    assert "secret UID (other) does not match" in check(token, signer, world=world).error
    del world.objects[("Secret", "ns", "s")]
    assert check(token, signer, world=world).error == "service account token has been invalidated"


# --- every refusal, tried -------------------------------------------------------------------


def test_expired_tokens_are_refused_after_the_leeway(signer: JwtSigner) -> None:
    token = signer.sign(claims(expiration_seconds=600))
    assert check(token, signer, now=NOW + 600 + 59).authenticated
    late = check(token, signer, now=NOW + 600 + 61)
    assert not late.authenticated
    assert late.error == "service account token has expired"


def test_tokens_from_the_future_are_refused(signer: JwtSigner) -> None:
    token = signer.sign(claims(issued_at=NOW + 3600))
    assert check(token, signer).error == "service account token is not valid yet"
    c = claims()
    c["iat"] = int(NOW) + 3600
    assert check(signer.sign(c), signer).error == "service account token is issued in the future"


def test_a_token_signed_by_another_key_is_refused(signer: JwtSigner) -> None:
    forger = JwtSigner()
    # Same kid as the real key, so the verifier cannot skip it by key ID.
    token = forger.sign(claims(), headers={"kid": signer.kid})
    result = check(token, signer)
    assert not result.authenticated
    assert "cryptographic" in result.error


def test_alg_none_is_refused(signer: JwtSigner) -> None:
    header = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url_encode(json.dumps(claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.c2ln"):
        assert not check(token, signer).authenticated


def test_hs256_with_the_public_key_as_secret_is_refused(signer: JwtSigner) -> None:
    header = b64url_encode(json.dumps({"alg": "HS256", "kid": signer.kid}).encode())
    payload = b64url_encode(json.dumps(claims()).encode())
    secret = json.dumps(signer.jwk()).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert not check(f"{header}.{payload}.{b64url_encode(mac)}", signer).authenticated


def test_a_tampered_payload_is_refused(signer: JwtSigner) -> None:
    header, _, signature = signer.sign(claims()).split(".")
    evil = claims()
    evil["kubernetes.io"]["serviceaccount"] = {"name": "admin", "uid": "sa-uid"}
    evil["sub"] = "system:serviceaccount:ns:admin"
    payload = b64url_encode(json.dumps(evil).encode())
    assert not check(f"{header}.{payload}.{signature}", signer).authenticated


def test_another_issuer_is_ignored(signer: JwtSigner) -> None:
    result = check(signer.sign(claims(issuer="https://evil.example")), signer)
    assert not result.authenticated
    assert result.error == ""


def test_garbage_is_ignored(signer: JwtSigner) -> None:
    for token in ("", "a.b", "not-a-jwt", "a.b.c"):
        assert check(token, signer) == Authentication(user=None)


def test_a_deleted_or_recreated_pod_invalidates_its_tokens(signer: JwtSigner) -> None:
    token = signer.sign(claims())
    world = World()
    world.objects[("Pod", "ns", "web")] = LiveObject("new-uid")
    assert check(token, signer, world=world).error == (
        "pod UID (new-uid) does not match service account pod ref claim (pod-uid)"
    )
    world.objects[("Pod", "ns", "web")] = LiveObject("pod-uid", deleted_at=NOW - 61)
    assert check(token, signer, world=world).error == "service account token has been invalidated"
    world.objects[("Pod", "ns", "web")] = LiveObject("pod-uid", deleted_at=NOW - 10)
    assert check(token, signer, world=world).authenticated  # within the leeway
    del world.objects[("Pod", "ns", "web")]
    assert check(token, signer, world=world).error == "service account token has been invalidated"


def test_a_deleted_or_recreated_service_account_invalidates_its_tokens(signer: JwtSigner) -> None:
    token = signer.sign(claims())
    world = World()
    world.objects[("ServiceAccount", "ns", "robot")] = LiveObject("new")
    assert check(token, signer, world=world).error == (
        "service account UID (new) does not match claim (sa-uid)"
    )
    world.objects[("ServiceAccount", "ns", "robot")] = LiveObject("sa-uid", deleted_at=NOW - 100)
    assert check(token, signer, world=world).error == "service account ns/robot has been deleted"
    del world.objects[("ServiceAccount", "ns", "robot")]
    assert check(token, signer, world=world).error == 'serviceaccounts "robot" not found'


def test_tokens_without_the_kubernetes_claim_or_bound_to_a_bare_node_are_refused(
    signer: JwtSigner,
) -> None:
    c = claims()
    del c["kubernetes.io"]
    assert not check(signer.sign(c), signer).authenticated
    c = claims(pod=None)
    c["kubernetes.io"]["node"] = NODE.claim()
    assert not check(signer.sign(c), signer).authenticated
