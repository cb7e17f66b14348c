from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podidentity.testing._jwt import (
    InvalidToken,
    JwtSigner,
    b64url_decode,
    b64url_encode,
    unverified_claims,
    verify,
)

SIGNER = JwtSigner()
OTHER = JwtSigner()


def claims(**overrides: object) -> dict[str, object]:
    now = time.time()
    base: dict[str, object] = {
        "iss": "https://issuer.test",
        "aud": ["api://AzureADTokenExchange"],
        "sub": "system:serviceaccount:default:app",
        "exp": now + 3600,
        "nbf": now - 10,
    }
    base.update(overrides)
    return base


def test_a_signed_token_verifies_and_returns_its_claims() -> None:
    token = SIGNER.sign(claims())
    got = verify(
        token,
        SIGNER.jwks(),
        audiences=["api://AzureADTokenExchange"],
        issuer="https://issuer.test",
    )
    assert got["sub"] == "system:serviceaccount:default:app"
    assert unverified_claims(token) == got


def test_jwks_names_the_key_that_signed() -> None:
    header = json.loads(b64url_decode(SIGNER.sign(claims()).split(".")[0]))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": SIGNER.kid}
    assert [k["kid"] for k in SIGNER.jwks()["keys"]] == [SIGNER.kid]


@pytest.mark.parametrize(
    ("token_claims", "kwargs", "reason"),
    [
        (claims(exp=time.time() - 3600), {}, "expired"),
        (claims(nbf=time.time() + 3600), {}, "not_yet_valid"),
        (claims(), {"audiences": ["https://management.azure.com/"]}, "audience"),
        (claims(aud="api://AzureADTokenExchange"), {"audiences": ["other"]}, "audience"),
        (claims(), {"issuer": "https://someone-else.test"}, "issuer"),
        ({"sub": "no-exp"}, {}, "malformed"),
    ],
)
def test_each_check_refuses_with_its_reason(
    token_claims: dict[str, object], kwargs: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidToken) as caught:
        verify(SIGNER.sign(token_claims), SIGNER.jwks(), **kwargs)  # type: ignore[arg-type]
    assert caught.value.reason == reason


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused() -> None:
    forged = OTHER.sign(claims(), headers={"kid": SIGNER.kid})
    with pytest.raises(InvalidToken) as caught:
        verify(forged, SIGNER.jwks())
    assert caught.value.reason == "signature"


def test_a_token_whose_payload_was_edited_is_refused() -> None:
    header, _, signature = SIGNER.sign(claims()).split(".")
    edited = b64url_encode(
        json.dumps(claims(sub="system:serviceaccount:kube-system:admin")).encode()
    )
    with pytest.raises(InvalidToken) as caught:
        verify(f"{header}.{edited}.{signature}", SIGNER.jwks())
    assert caught.value.reason == "signature"


def test_alg_none_and_hmac_are_refused() -> None:
    payload = b64url_encode(json.dumps(claims()).encode())
    for alg in ("none", "HS256"):
        header = b64url_encode(json.dumps({"alg": alg, "kid": SIGNER.kid}).encode())
        with pytest.raises(InvalidToken) as caught:
            verify(f"{header}.{payload}.", SIGNER.jwks())
        assert caught.value.reason == "algorithm"


def test_unknown_kid_is_refused() -> None:
    with pytest.raises(InvalidToken) as caught:
        verify(OTHER.sign(claims()), SIGNER.jwks())
    assert caught.value.reason == "unknown_key"


@given(st.text(max_size=200))
def test_garbage_never_raises_anything_but_invalid_token(text: str) -> None:
    with pytest.raises(InvalidToken):
        verify(text, SIGNER.jwks())


@given(st.binary(max_size=64))
def test_b64url_round_trips(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


def test_decode_splits_without_verifying_and_hides_the_signature() -> None:
    from podidentity.testing._jwt import decode

    signer = JwtSigner(key_size=1024)
    token = signer.sign({"iss": "https://issuer", "aud": ["a", "b", 3]})
    decoded = decode(token)
    assert decoded.header["kid"] == signer.kid
    assert decoded.claims["iss"] == "https://issuer"
    assert decoded.audiences == ["a", "b"]
    assert decoded.signing_input == token.rsplit(".", 1)[0].encode()
    assert token.rsplit(".", 1)[1] not in repr(decoded)
    for bad in ("a.b", "!!.e30.", "W10.e30."):  # parts, base64, JSON objects
        with pytest.raises(InvalidToken) as caught:
            decode(bad)
        assert caught.value.reason == "malformed"
