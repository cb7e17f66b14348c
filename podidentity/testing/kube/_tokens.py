"""Service-account tokens: TokenRequest, TokenReview, OIDC discovery, and bearer auth.

:func:`install` plugs a :class:`ServiceAccountTokens` into a
:class:`~podidentity.testing.kube.KubeEmulator` (it becomes ``emulator.service_accounts``):

* ``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`` (TokenRequest) issues RS256
  JWTs with the claims kube-apiserver writes (``iss``, ``sub``, ``aud``, ``exp``, ``iat``,
  ``nbf``, ``jti`` and the ``kubernetes.io`` claim naming the namespace, service account, and
  the bound pod and its node);
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` checks them: signature, lifetime,
  audiences, and that the service account and the bound pod or secret still exist with the
  same UIDs;
* ``GET /.well-known/openid-configuration`` and ``GET /openid/v1/jwks`` are served without
  authentication, so an Azure AD emulator can verify federated assertions (workload identity);
* bearer tokens issued here for the API server's audiences authenticate API requests as the
  service account (in-cluster config).

For workload identity tests, :meth:`ServiceAccountTokens.issue_token` mints what the kubelet
writes into ``AZURE_FEDERATED_TOKEN_FILE``::

    token = kube.service_accounts.issue_token(
        "default", "workload", audiences=["api://AzureADTokenExchange"], pod="web"
    )

and :attr:`ServiceAccountTokens.issuer` is the issuer URL to register in the federated
identity credential.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from podidentity.models._time import format_kube_time, parse_rfc3339
from podidentity.testing._jwt import JwtSigner

from ._apiserver import APIRequest, APIServer, Authenticator, UserInfo
from ._claims import (
    Authentication,
    LiveObject,
    ObjectRef,
    authenticate,
    token_claims,
)
from ._errors import APIError

if TYPE_CHECKING:
    from ._emulator import KubeEmulator

__all__ = [
    "DEFAULT_EXPIRATION_SECONDS",
    "MIN_EXPIRATION_SECONDS",
    "ServiceAccountTokens",
    "install",
]

_log = logging.getLogger(__name__)

DEFAULT_EXPIRATION_SECONDS = 3600
#: TokenRequest validation: "may not specify a duration less than 10 minutes".
MIN_EXPIRATION_SECONDS = 600
_MAX_EXPIRATION_SECONDS = 1 << 32
_AUTH_GROUP = "authentication.k8s.io"
_DISCOVERY_PATH = "/.well-known/openid-configuration"
_JWKS_PATH = "/openid/v1/jwks"


def _rfc3339(epoch: float) -> str:
    return format_kube_time(epoch)


def _epoch(timestamp: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp; ``None`` if absent or unreadable."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        parsed = parse_rfc3339(timestamp)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _invalid_request(name: str, field: str, value: Any, detail: str) -> APIError:
    return APIError.invalid(
        "TokenRequest",
        _AUTH_GROUP,
        name,
        [
            {
                "reason": "FieldValueInvalid",
                "field": field,
                "message": f"Invalid value: {value}: {detail}",
            }
        ],
    )


class ServiceAccountTokens:
    """The emulated API server's service-account token issuer and authenticator.

    Reach it as ``emulator.service_accounts``.

    Attributes:
        signer: the RSA key pair tokens are signed with (its public half is the JWKS).
        clock: the server's clock in epoch seconds; replace it to move time for TokenReview
            and issuance (tests of expiry) without sleeping.
    """

    def __init__(
        self,
        emulator: KubeEmulator,
        *,
        issuer: str | None = None,
        api_audiences: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._emulator = emulator
        self._api: APIServer = emulator.apiserver
        self.signer = JwtSigner()
        self.clock = clock
        self._issuer = issuer
        self._api_audiences = tuple(api_audiences) if api_audiences else None
        self._fallback: Authenticator | None = None

    def __repr__(self) -> str:
        return f"ServiceAccountTokens(issuer={self.issuer!r})"

    # ------------------------------------------------------------------ configuration

    @property
    def issuer(self) -> str:
        """``iss`` of issued tokens (``--service-account-issuer``); default: the server URL."""
        return self._issuer or self._emulator.url

    @property
    def api_audiences(self) -> tuple[str, ...]:
        """The API server's own audiences (``--api-audiences``); default: the issuer.

        Tokens requested without audiences get these, and only tokens for one of them
        authenticate API requests.
        """
        return self._api_audiences or (self.issuer,)

    def configure(
        self, *, issuer: str | None = None, api_audiences: Sequence[str] | None = None
    ) -> None:
        """Change the issuer or the API audiences (affects tokens issued or checked later).

        Args:
            issuer: the new ``iss``; tokens with the old one stop authenticating, as on a
                real API server whose issuer flag changed.
            api_audiences: the new implicit audiences.
        """
        if issuer is not None:
            self._issuer = issuer.rstrip("/")
        if api_audiences is not None:
            self._api_audiences = tuple(api_audiences)

    @property
    def jwks_uri(self) -> str:
        """Where the signing keys are published (the API server's own address)."""
        return self._emulator.url + _JWKS_PATH

    @property
    def discovery_url(self) -> str:
        """The OIDC discovery document's URL on the emulator."""
        return self._emulator.url + _DISCOVERY_PATH

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys, as served at :attr:`jwks_uri`."""
        return self.signer.jwks()

    def discovery_document(self) -> dict[str, Any]:
        """The OIDC discovery document kube-apiserver serves."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # ------------------------------------------------------------------ Python-level issuing

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str] | None = None,
        pod: str | None = None,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        now: float | None = None,
    ) -> str:
        """Mint a service-account token, as TokenRequest (or the kubelet's projection) does.

        Call from any thread but the emulator's loop (there, use :meth:`issue_token_async`).

        Args:
            namespace: the service account's namespace.
            service_account: its name; it must exist.
            audiences: ``aud``; default :attr:`api_audiences`. Workload identity uses
                ``["api://AzureADTokenExchange"]``.
            pod: bind the token to this pod (same namespace; it must run as the service
                account); the token then names the pod and its node, and dies with the pod.
            expiration_seconds: lifetime; at least 600, as the API server requires.
            now: issue as of this epoch time (default: :attr:`clock`); a time in the past
                gives an already expired token.

        Raises:
            APIError: the same refusals as the TokenRequest endpoint.
        """
        return self._emulator.call(
            self.issue_token_async(
                namespace,
                service_account,
                audiences=audiences,
                pod=pod,
                expiration_seconds=expiration_seconds,
                now=now,
            )
        )

    async def issue_token_async(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str] | None = None,
        pod: str | None = None,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        now: float | None = None,
    ) -> str:
        """:meth:`issue_token` for code running on the emulator's loop."""
        body: dict[str, Any] = {
            "spec": {"audiences": list(audiences or []), "expirationSeconds": expiration_seconds}
        }
        if pod is not None:
            body["spec"]["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod}
        result = self._token_request(namespace, service_account, body, now=now)
        return str(result["status"]["token"])

    # ------------------------------------------------------------------ TokenRequest

    def _live(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._api.resource(plural)
        key = (namespace if resource.namespaced else "", name)
        stored = self._api.store.of(resource).objects.get(key)
        return None if stored is None else stored.obj

    def _token_request(
        self, namespace: str, name: str, body: Any, *, now: float | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise APIError.bad_request("the body of the request must be a TokenRequest object")
        spec = body.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise APIError.bad_request("spec must be an object")
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, "", name):
            raise _invalid_request(
                name, "metadata.name", meta["name"], "must match the service account name"
            )
        audiences = spec.get("audiences") or []
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise APIError.bad_request("spec.audiences must be a list of strings")
        expiration = spec.get("expirationSeconds")
        seconds = DEFAULT_EXPIRATION_SECONDS if expiration is None else expiration
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise APIError.bad_request("spec.expirationSeconds must be an integer")
        if seconds < MIN_EXPIRATION_SECONDS:
            raise _invalid_request(
                name,
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 10 minutes",
            )
        if seconds > _MAX_EXPIRATION_SECONDS:
            raise _invalid_request(
                name,
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )

        account = self._live("serviceaccounts", namespace, name)
        if account is None:
            raise APIError.not_found("", "serviceaccounts", name)
        pod_ref = node_ref = secret_ref = None
        bound = spec.get("boundObjectRef")
        if bound:
            if not isinstance(bound, Mapping):
                raise APIError.bad_request("spec.boundObjectRef must be an object")
            pod_ref, node_ref, secret_ref = self._bind(namespace, name, bound)

        issued_at = self.clock() if now is None else now
        claims = token_claims(
            issuer=self.issuer,
            namespace=namespace,
            service_account=ObjectRef(name, account["metadata"]["uid"]),
            audiences=audiences or list(self.api_audiences),
            issued_at=issued_at,
            expiration_seconds=seconds,
            pod=pod_ref,
            node=node_ref,
            secret=secret_ref,
        )
        token = self.signer.sign(claims)
        # One INFO line per external action; never the token itself.
        _log.info(
            "issued service-account token for %s/%s (aud=%s, pod=%s, jti=%s)",
            namespace,
            name,
            claims["aud"],
            pod_ref.name if pod_ref else None,
            claims["jti"],
        )
        out_spec: dict[str, Any] = {"audiences": claims["aud"], "expirationSeconds": seconds}
        if bound:
            out_spec["boundObjectRef"] = dict(bound)
        return {
            "apiVersion": f"{_AUTH_GROUP}/v1",
            "kind": "TokenRequest",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _rfc3339(issued_at),
            },
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(claims["exp"])},
        }

    def _bind(
        self, namespace: str, account: str, bound: Mapping[str, Any]
    ) -> tuple[ObjectRef | None, ObjectRef | None, ObjectRef | None]:
        """Resolve ``spec.boundObjectRef`` like the TokenRequest REST storage does."""
        kind = str(bound.get("kind", ""))
        api_version = str(bound.get("apiVersion") or "v1")
        name = str(bound.get("name", ""))
        if api_version != "v1" or kind not in ("Pod", "Secret", "Node"):
            group, _, version = api_version.rpartition("/")
            raise APIError.bad_request(
                f"cannot bind token to object of type {group}/{version}, Kind={kind}"
            )
        wanted_uid = str(bound.get("uid") or "")
        pod_ref = node_ref = secret_ref = None
        if kind == "Pod":
            pod = self._live("pods", namespace, name)
            if pod is None:
                raise APIError.not_found("", "pods", name)
            if (pod.get("spec") or {}).get("serviceAccountName") != account:
                raise APIError.bad_request(
                    f'cannot bind token for serviceaccount "{account}" to pod running with '
                    "different serviceaccount name."
                )
            uid = str(pod["metadata"]["uid"])
            pod_ref = ObjectRef(name, uid)
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                node = self._live("nodes", "", node_name)
                node_ref = ObjectRef(node_name, str(node["metadata"]["uid"]) if node else "")
        elif kind == "Node":
            node = self._live("nodes", "", name)
            if node is None:
                raise APIError.not_found("", "nodes", name)
            uid = str(node["metadata"]["uid"])
            node_ref = ObjectRef(name, uid)
        else:
            secret = self._live("secrets", namespace, name)
            if secret is None:
                raise APIError.not_found("", "secrets", name)
            uid = str(secret["metadata"]["uid"])
            secret_ref = ObjectRef(name, uid)
        if wanted_uid and wanted_uid != uid:
            raise APIError.conflict(
                "",
                kind,
                name,
                f"the UID in the bound object reference ({wanted_uid}) does not match the UID "
                "in record. The object might have been deleted and then recreated",
            )
        return pod_ref, node_ref, secret_ref

    async def _handle_token_request(self, request: APIRequest) -> tuple[int, Any]:
        return 201, self._token_request(request.namespace or "", request.name or "", request.body)

    # ------------------------------------------------------------------ checking tokens

    def _lookup(self, kind: str, namespace: str, name: str) -> LiveObject | None:
        plural = {
            "ServiceAccount": "serviceaccounts",
            "Pod": "pods",
            "Secret": "secrets",
            "Node": "nodes",
        }[kind]
        obj = self._live(plural, namespace, name)
        if obj is None:
            return None
        return LiveObject(
            uid=str(obj["metadata"]["uid"]),
            deleted_at=_epoch(obj["metadata"].get("deletionTimestamp")),
        )

    def check(self, token: str, audiences: Sequence[str] | None = None) -> Authentication:
        """Check a service-account token as the API server does (runs on the serving loop).

        Args:
            token: the JWT.
            audiences: the audiences the caller accepts (default: :attr:`api_audiences`).
        """
        return authenticate(
            token,
            jwks=self.signer.jwks(),
            issuers=[self.issuer],
            implicit_audiences=self.api_audiences,
            lookup=self._lookup,
            now=self.clock(),
            requested_audiences=audiences,
        )

    async def _handle_token_review(self, request: APIRequest) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, Mapping):
            raise APIError.bad_request("the body of the request must be a TokenReview object")
        spec = body.get("spec") or {}
        token = spec.get("token") if isinstance(spec, Mapping) else None
        if not isinstance(token, str) or not token:
            raise APIError.bad_request("token is required for TokenReview in authentication")
        requested = spec.get("audiences") or []
        if not isinstance(requested, list) or not all(isinstance(a, str) for a in requested):
            raise APIError.bad_request("spec.audiences must be a list of strings")
        result = self.check(token, requested or None)
        # ``authenticated`` is omitted when false (omitempty), as the real server writes it.
        status: dict[str, Any] = {"user": {}}
        if result.authenticated:
            status["authenticated"] = True
        if result.user is not None:
            status["user"] = result.user.user_info()
            status["audiences"] = list(result.audiences)
        elif not result.error and (not requested or set(requested) & set(self.api_audiences)):
            # Not a service-account token: other authenticators (the admin token) only serve
            # the API server's own audiences, as kube-apiserver wraps audience-unaware ones.
            user = await self._api.authenticate(token, self._emulator.token)
            if user is not None:
                status["authenticated"] = True
                status["user"] = _user_info_json(user)
                status["audiences"] = list(requested or self.api_audiences)
        if result.error:
            status["error"] = result.error
        return 201, {
            "apiVersion": f"{_AUTH_GROUP}/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": None},
            "spec": {k: v for k, v in spec.items() if k in ("token", "audiences")},
            "status": status,
        }

    async def _authenticate_bearer(self, token: str) -> UserInfo | None:
        result = self.check(token)
        if result.user is not None:
            info = result.user.user_info()
            return UserInfo(
                username=info["username"],
                groups=tuple(info["groups"]),
                uid=info["uid"],
                extra={k: tuple(v) for k, v in info.get("extra", {}).items()},
            )
        if self._fallback is not None:
            previous = self._fallback(token)
            if not isinstance(previous, UserInfo) and previous is not None:
                previous = await previous
            return previous
        return None

    async def _serve_discovery(self, request: APIRequest) -> tuple[int, Any]:
        return 200, self.discovery_document()

    async def _serve_jwks(self, request: APIRequest) -> tuple[int, Any]:
        return 200, self.jwks()

    def _install(self) -> None:
        api = self._api
        api.add_subresource("serviceaccounts", "token", "POST", self._handle_token_request)
        api.add_virtual_resource(
            _AUTH_GROUP,
            "v1",
            "tokenreviews",
            "TokenReview",
            namespaced=False,
            verbs=("create",),
            handler=self._handle_token_review,
        )
        api.add_route("GET", _DISCOVERY_PATH, self._serve_discovery, anonymous=True)
        api.add_route("GET", _JWKS_PATH, self._serve_jwks, anonymous=True)
        # Keep any authenticator installed before us as the fallback for foreign tokens.
        self._fallback = api.authenticator
        api.set_authenticator(self._authenticate_bearer)


def _user_info_json(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.username, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


def install(emulator: KubeEmulator) -> ServiceAccountTokens:
    """Serve service-account tokens for ``emulator`` (exposed as ``.service_accounts``)."""
    tokens = ServiceAccountTokens(emulator, clock=emulator.clock)
    tokens._install()
    return tokens
