"""Service-account token claims: how kube-apiserver builds them and how it checks them.

Pure functions, no I/O. :func:`token_claims` mirrors ``pkg/serviceaccount/claims.go``
``Claims``; :func:`authenticate` mirrors the service-account JWT authenticator (``jwt.go``) and
its validator, including the error texts, so code under test sees the same ``TokenReview``
answers a real cluster gives. Objects the token is bound to are looked up through a callback,
so a token dies with its pod (or secret, or service account), as on a real cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from podidentity.testing._jwt import InvalidToken, unverified_claims, verify

__all__ = [
    "LEEWAY",
    "Authentication",
    "LiveObject",
    "ObjectLookup",
    "ObjectRef",
    "ServiceAccountUser",
    "authenticate",
    "service_account_username",
    "token_claims",
]

#: go-jose's ``jwt.DefaultLeeway``: skew allowed on exp/nbf/iat and on deletion times.
LEEWAY = 60.0

_PRIVATE = "kubernetes.io"
_EXTRA = "authentication.kubernetes.io/"
# go-jose's text when no key verifies the signature; the apiserver passes it through.
_BAD_SIGNATURE = "go-jose/go-jose: error in cryptographic primitive"


@attrs.frozen
class ObjectRef:
    """A name and UID, as the ``kubernetes.io`` claim records bound objects."""

    name: str
    uid: str

    def claim(self) -> dict[str, str]:
        """The claim's JSON shape."""
        return {"name": self.name, "uid": self.uid}


@attrs.frozen
class LiveObject:
    """What the store says about an object a token names.

    Attributes:
        uid: its current ``metadata.uid``.
        deleted_at: epoch seconds of its ``deletionTimestamp``, if it is being deleted.
    """

    uid: str
    deleted_at: float | None = None


#: ``lookup(kind, namespace, name)`` with kind ``ServiceAccount``, ``Pod``, ``Secret`` or ``Node``;
#: returns ``None`` when the object does not exist.
ObjectLookup = Callable[[str, str, str], "LiveObject | None"]


def service_account_username(namespace: str, name: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``: the token's ``sub`` and the user name."""
    return f"system:serviceaccount:{namespace}:{name}"


def token_claims(
    *,
    issuer: str,
    namespace: str,
    service_account: ObjectRef,
    audiences: Sequence[str],
    issued_at: float,
    expiration_seconds: int,
    pod: ObjectRef | None = None,
    node: ObjectRef | None = None,
    secret: ObjectRef | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    """The claims of a bound service-account token.

    Args:
        issuer: ``iss`` (the API server's ``--service-account-issuer``).
        namespace: the service account's namespace.
        service_account: its name and UID.
        audiences: ``aud``, always written as a list, as kube-apiserver does.
        issued_at: epoch seconds for ``iat`` and ``nbf``.
        expiration_seconds: lifetime; ``exp = iat + expiration_seconds``.
        pod: the pod the token is bound to.
        node: the pod's node for a pod-bound token, or the node a node-bound token is for.
        secret: the secret the token is bound to (not with a pod).
        jti: the token ID; a random UUID when omitted.

    Raises:
        ValueError: bound to both a secret and a pod, which upstream refuses as well.
    """
    if secret is not None and pod is not None:
        raise ValueError("a token can only be bound to one object type")
    iat = int(issued_at)
    private: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": service_account.claim(),
    }
    # As upstream: a pod-bound token also names its pod's node, a secret-bound token names
    # only the secret, and a token bound to nothing else is node-bound.
    if pod is not None:
        private["pod"] = pod.claim()
        if node is not None:
            private["node"] = node.claim()
    elif secret is not None:
        private["secret"] = secret.claim()
    elif node is not None:
        private["node"] = node.claim()
    return {
        "aud": list(audiences),
        "exp": iat + int(expiration_seconds),
        "iat": iat,
        "iss": issuer,
        "jti": jti or str(uuid.uuid4()),
        _PRIVATE: private,
        "nbf": iat,
        "sub": service_account_username(namespace, service_account.name),
    }


@attrs.frozen
class ServiceAccountUser:
    """The user a valid service-account token authenticates as."""

    namespace: str
    name: str
    uid: str
    pod: ObjectRef | None = None
    node: ObjectRef | None = None
    credential_id: str = ""

    @property
    def username(self) -> str:
        """``system:serviceaccount:<ns>:<name>``."""
        return service_account_username(self.namespace, self.name)

    @property
    def groups(self) -> list[str]:
        """The service-account groups plus ``system:authenticated``, as the union adds it."""
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
        ]

    def user_info(self) -> dict[str, Any]:
        """The ``UserInfo`` of a ``TokenReview`` status (and of the request's user)."""
        extra: dict[str, list[str]] = {}
        if self.credential_id:
            extra[_EXTRA + "credential-id"] = [self.credential_id]
        if self.pod is not None:
            extra[_EXTRA + "pod-name"] = [self.pod.name]
            extra[_EXTRA + "pod-uid"] = [self.pod.uid]
        if self.node is not None:
            extra[_EXTRA + "node-name"] = [self.node.name]
            if self.node.uid:
                extra[_EXTRA + "node-uid"] = [self.node.uid]
        info: dict[str, Any] = {"username": self.username, "uid": self.uid, "groups": self.groups}
        if extra:
            info["extra"] = extra
        return info


@attrs.frozen
class Authentication:
    """The outcome of checking one token.

    Attributes:
        user: who the token authenticates as; ``None`` when refused.
        audiences: the audiences both requested and in the token (empty when refused).
        error: why it was refused, in kube-apiserver's words; empty when the token was not one
            of ours at all (another issuer, not a JWT), as the real authenticator stays silent.
    """

    user: ServiceAccountUser | None
    audiences: tuple[str, ...] = ()
    error: str = ""

    @property
    def authenticated(self) -> bool:
        """Whether the token is valid."""
        return self.user is not None


def _go_quote(values: Iterable[str]) -> str:
    # Go's %q on a []string: ["a" "b"]
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _ref(value: Any) -> ObjectRef | None:
    if not isinstance(value, Mapping):
        return None
    return ObjectRef(name=str(value.get("name", "")), uid=str(value.get("uid", "")))


def _refused(error: str) -> Authentication:
    return Authentication(user=None, error=error)


def _deleted_too_long_ago(obj: LiveObject, now: float) -> bool:
    return obj.deleted_at is not None and obj.deleted_at < now - LEEWAY


def authenticate(
    token: str,
    *,
    jwks: Mapping[str, Any],
    issuers: Iterable[str],
    implicit_audiences: Sequence[str],
    lookup: ObjectLookup,
    now: float,
    requested_audiences: Sequence[str] | None = None,
) -> Authentication:
    """Check a service-account token the way kube-apiserver does.

    Order of checks: issuer (unverified, to pick the authenticator), signature (RS256 only),
    lifetime, audience, then that the service account and any bound secret or pod still exist
    with the UIDs in the token.

    Args:
        token: the compact JWT.
        jwks: the issuer's public keys.
        issuers: accepted ``iss`` values (``--service-account-issuer``).
        implicit_audiences: the API server's own audiences (``--api-audiences``); used when the
            caller requests none, and for tokens with no ``aud``.
        lookup: finds live objects by kind, namespace and name.
        now: the current time in epoch seconds.
        requested_audiences: a ``TokenReview``'s ``spec.audiences``.
    """
    accepted = set(issuers)
    try:
        unverified = unverified_claims(token)
    except InvalidToken:
        return _refused("")
    if unverified.get("iss") not in accepted:
        return _refused("")
    try:
        claims = verify(token, jwks, now=now, leeway=LEEWAY)
    except InvalidToken as err:
        if err.reason in ("malformed", "algorithm"):
            # go-jose refuses to parse it; the authenticator then says nothing.
            return _refused("")
        if err.reason == "expired":
            return _refused("service account token has expired")
        if err.reason == "not_yet_valid":
            return _refused("service account token is not valid yet")
        return _refused(_BAD_SIGNATURE)
    iat = claims.get("iat")
    if isinstance(iat, (int, float)) and iat > now + LEEWAY:
        return _refused("service account token is issued in the future")

    aud = claims.get("aud")
    token_auds = [aud] if isinstance(aud, str) else [str(a) for a in aud or [] if a]
    if not token_auds:
        token_auds = list(implicit_audiences)
    wanted = list(requested_audiences) if requested_audiences else list(implicit_audiences)
    both = tuple(a for a in token_auds if a in wanted)
    if not both and implicit_audiences:
        return _refused(
            f"token audiences {_go_quote(token_auds)} is invalid for the target audiences "
            f"{_go_quote(wanted)}"
        )

    private = claims.get(_PRIVATE)
    if not isinstance(private, Mapping):
        return _refused("service account token claims could not be validated")
    namespace = str(private.get("namespace", ""))
    sa_ref = _ref(private.get("serviceaccount")) or ObjectRef("", "")
    service_account = lookup("ServiceAccount", namespace, sa_ref.name)
    if service_account is None:
        return _refused(f'serviceaccounts "{sa_ref.name}" not found')
    if service_account.uid != sa_ref.uid:
        return _refused(
            f"service account UID ({service_account.uid}) does not match claim ({sa_ref.uid})"
        )
    if _deleted_too_long_ago(service_account, now):
        return _refused(f"service account {namespace}/{sa_ref.name} has been deleted")

    secret_ref = _ref(private.get("secret"))
    if secret_ref is not None:
        secret = lookup("Secret", namespace, secret_ref.name)
        if secret is None or _deleted_too_long_ago(secret, now):
            return _refused("service account token has been invalidated")
        if secret.uid != secret_ref.uid:
            return _refused(
                f"secret UID ({secret.uid}) does not match service account secret ref claim "
                f"({secret_ref.uid})"
            )

    pod_ref = _ref(private.get("pod"))
    node_ref = None
    if pod_ref is not None:
        pod = lookup("Pod", namespace, pod_ref.name)
        if pod is None:
            return _refused("service account token has been invalidated")
        if pod.uid != pod_ref.uid:
            return _refused(
                f"pod UID ({pod.uid}) does not match service account pod ref claim ({pod_ref.uid})"
            )
        if _deleted_too_long_ago(pod, now):
            return _refused("service account token has been invalidated")
        # For pod-bound tokens the node is only reported, not checked (upstream does the same).
        node_ref = _ref(private.get("node"))
    elif private.get("node") is not None:
        # A node-bound token lives as long as its node (ServiceAccountTokenNodeBindingValidation).
        node_ref = _ref(private.get("node")) or ObjectRef("", "")
        node = lookup("Node", "", node_ref.name)
        if node is None or _deleted_too_long_ago(node, now):
            return _refused("service account token has been invalidated")
        if node.uid != node_ref.uid:
            return _refused(
                f"node UID ({node.uid}) does not match service account node ref claim "
                f"({node_ref.uid})"
            )

    jti = claims.get("jti")
    user = ServiceAccountUser(
        namespace=namespace,
        name=sa_ref.name,
        uid=sa_ref.uid,
        pod=pod_ref,
        node=node_ref,
        credential_id=f"JTI={jti}" if isinstance(jti, str) and jti else "",
    )
    return Authentication(user=user, audiences=both)
