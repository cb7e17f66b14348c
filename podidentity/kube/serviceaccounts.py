"""Service-account tokens: verify one (TokenReview), request one for a pod (TokenRequest).

The node token proxy uses both: a caller may prove which pod it is with its projected token,
verified by the API server with a TokenReview (the only verifier that also knows the bound pod
still exists), and federated identities need a short-lived token bound to the calling pod to
exchange at Azure AD. Tokens are never logged or put in an error message.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from podidentity.errors import KubeUnavailableError
from podidentity.kube._client import KubeClient

__all__ = ["ReviewedToken", "request_pod_token", "review_token"]

_POD_NAME = "authentication.kubernetes.io/pod-name"
_POD_UID = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX = "system:serviceaccount:"
_TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path


@attrs.frozen
class ReviewedToken:
    """What the API server says a valid service-account token belongs to.

    Attributes:
        namespace: the service account's namespace.
        service_account: the service account's name.
        pod_name: the pod the token is bound to (``""`` when it is not bound to a pod).
        pod_uid: that pod's UID (``""`` when not bound).
        audiences: the audiences the server confirmed.
    """

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audiences: tuple[str, ...]


def _first(extra: Mapping[str, Any], key: str) -> str:
    values = extra.get(key) or []
    return str(values[0]) if values else ""


async def review_token(
    client: KubeClient, token: str, audiences: Sequence[str]
) -> ReviewedToken | None:
    """Ask the API server whether ``token`` is a valid service-account token for ``audiences``.

    Returns ``None`` when it is not (forged, expired, wrong audience, its pod or account gone,
    not a service account).

    Raises:
        podidentity.errors.KubeError: the review itself failed (no answer, not allowed).
    """
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": list(audiences)},
    }
    review = await client.request("POST", _TOKEN_REVIEWS, body=body)
    status = review.get("status") or {}
    user = status.get("user") or {}
    if not status.get("authenticated") or not user:
        return None
    username = str(user.get("username") or "")
    if not username.startswith(_SA_PREFIX):
        return None
    namespace, _, account = username[len(_SA_PREFIX) :].partition(":")
    confirmed = tuple(str(a) for a in status.get("audiences") or ())
    if not set(confirmed) & set(audiences):
        return None
    extra = user.get("extra") or {}
    return ReviewedToken(
        namespace=namespace,
        service_account=account,
        pod_name=_first(extra, _POD_NAME),
        pod_uid=_first(extra, _POD_UID),
        audiences=confirmed,
    )


async def request_pod_token(
    client: KubeClient,
    *,
    namespace: str,
    service_account: str,
    pod_name: str,
    pod_uid: str,
    audience: str,
    expiration_seconds: int = 600,
) -> str:
    """A service-account token bound to one pod (TokenRequest), as the kubelet projects it.

    Raises:
        podidentity.errors.KubeError: the API server refused (account or pod gone, not allowed).
    """
    bound: dict[str, str] = {"apiVersion": "v1", "kind": "Pod", "name": pod_name}
    if pod_uid:
        bound["uid"] = pod_uid
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience],
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": bound,
        },
    }
    path = (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/serviceaccounts/"
        f"{urllib.parse.quote(service_account, safe='')}/token"
    )
    result = await client.request("POST", path, body=body)
    token = (result.get("status") or {}).get("token")
    if not token:
        raise KubeUnavailableError(f"TokenRequest for {namespace}/{service_account} gave no token")
    return str(token)
