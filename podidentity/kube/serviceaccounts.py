"""Service-account tokens: verify one (TokenReview), request one for a pod (TokenRequest).

The node token proxy uses both: a caller may prove which pod it is with its projected token,
verified by the API server with a TokenReview (the only verifier that also knows the bound pod
still exists), and federated identities need a short-lived token bound to the calling pod to
exchange at Azure AD.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
from kubernetes.aio import client as kclient
from kubernetes.aio.client.exceptions import ApiException

from podidentity.errors import (
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    KubeUnavailableError,
)

__all__ = ["ReviewedToken", "request_pod_token", "review_token"]

logger = logging.getLogger(__name__)

_POD_NAME = "authentication.kubernetes.io/pod-name"
_POD_UID = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX = "system:serviceaccount:"


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


def _first(extra: Any, key: str) -> str:
    values = (extra or {}).get(key) or []
    return str(values[0]) if values else ""


async def review_token(
    api: kclient.ApiClient, token: str, audiences: Sequence[str]
) -> ReviewedToken | None:
    """Ask the API server whether ``token`` is a valid service-account token for ``audiences``.

    Returns ``None`` when it is not (forged, expired, wrong audience, its pod or account gone,
    not a service account); the token itself is never logged.

    Raises:
        podidentity.errors.KubeError: the review itself failed (no answer, not allowed).
    """
    body = kclient.V1TokenReview(
        spec=kclient.V1TokenReviewSpec(token=token, audiences=list(audiences))
    )
    try:
        review = await kclient.AuthenticationV1Api(api).create_token_review(body)
    except ApiException as err:
        raise kube_error(err, "TokenReview") from None
    status = review.status
    if status is None or not status.authenticated or status.user is None:
        return None
    username = status.user.username or ""
    if not username.startswith(_SA_PREFIX):
        return None
    namespace, _, account = username[len(_SA_PREFIX) :].partition(":")
    confirmed = tuple(status.audiences or ())
    if not set(confirmed) & set(audiences):
        return None
    extra = status.user.extra
    return ReviewedToken(
        namespace=namespace,
        service_account=account,
        pod_name=_first(extra, _POD_NAME),
        pod_uid=_first(extra, _POD_UID),
        audiences=confirmed,
    )


async def request_pod_token(
    api: kclient.ApiClient,
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
    body = kclient.AuthenticationV1TokenRequest(
        spec=kclient.V1TokenRequestSpec(
            audiences=[audience],
            expiration_seconds=expiration_seconds,
            bound_object_ref=kclient.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod_name, uid=pod_uid or None
            ),
        )
    )
    try:
        result = await kclient.CoreV1Api(api).create_namespaced_service_account_token(
            service_account, namespace, body
        )
    except ApiException as err:
        raise kube_error(err, f"TokenRequest for {namespace}/{service_account}") from None
    token = result.status.token if result.status is not None else None
    if not token:
        raise KubeUnavailableError(f"TokenRequest for {namespace}/{service_account} gave no token")
    return str(token)


def kube_error(err: ApiException, what: str) -> KubeError:
    """The :mod:`podidentity.errors` class for an API error (no request body is quoted)."""
    status = int(err.status or 0)
    message = f"{what}: the API server answered {status} {err.reason or ''}".rstrip()
    if status == 404:
        return KubeNotFoundError(message, code=status, reason="NotFound")
    if status in (401, 403):
        return KubeForbiddenError(message, code=status, reason=str(err.reason or ""))
    if status == 0 or status == 429 or status >= 500:
        return KubeUnavailableError(message, code=status, reason=str(err.reason or ""))
    return KubeError(message, code=status, reason=str(err.reason or ""))
