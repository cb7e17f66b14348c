"""Azure AD (Microsoft Entra ID) token service of the emulated tenant.

Serves what MSAL and azure-identity ask ``login.microsoftonline.com`` for, so that
``ClientSecretCredential``, ``CertificateCredential``, ``ClientAssertionCredential`` and
``WorkloadIdentityCredential`` work unmodified, sync and aio:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (MSAL's tenant discovery; ``/{tenant}
  /.well-known/openid-configuration`` for v1), ``GET /common/discovery/instance`` (instance
  discovery, only asked for unknown hosts), ``GET /{tenant}/discovery/v2.0/keys`` (JWKS);
- ``POST /{tenant}/oauth2/v2.0/token`` (and v1 ``/oauth2/token``) with
  ``grant_type=client_credentials`` and a client secret, a certificate assertion, or a federated
  assertion (a service-account token checked against the issuer's published keys and the
  identity's federated credentials).

Errors have Azure AD's shape: ``error``, ``error_description`` starting ``AADSTS<code>:`` and
ending with trace and correlation IDs and a timestamp, ``error_codes``, ``timestamp``,
``trace_id``, ``correlation_id``, ``error_uri``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

from podidentity.testing._http import (
    HTTPError,
    Request,
    Response,
    error_boundary,
    read_request,
)
from podidentity.testing._jwt import InvalidToken, verify
from podidentity.testing.azure._aad import _assertions
from podidentity.testing.azure._aad._assertions import InvalidAssertion, ParsedAssertion
from podidentity.testing.azure._aad._federation import IssuerUnreachable, OidcKeys
from podidentity.testing.azure._http import (
    Receive,
    Scope,
    Send,
    json_response,
    send_json,
)
from podidentity.testing.azure._tokens import TokenIssuer, resource_from_scope
from podidentity.testing.azure._world import AzureWorld, FederatedCredential, Principal

__all__ = ["AadError", "AadService", "aad_error_body"]

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Clock skew Azure AD tolerates on client assertions.
ASSERTION_LEEWAY = 60.0
_TOKEN_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/(?P<v2>v2\.0/)?token/?$", re.IGNORECASE)
_DISCOVERY_PATH = re.compile(
    r"^/(?P<tenant>[^/]+)/(?P<v2>v2\.0/)?\.well-known/openid-configuration/?$", re.IGNORECASE
)
_KEYS_PATH = re.compile(r"^/(?P<tenant>[^/]+)/discovery/(v2\.0/)?keys/?$", re.IGNORECASE)
_INSTANCE_DISCOVERY_PATH = re.compile(r"^/common/discovery/instance/?$", re.IGNORECASE)
_GENERIC_TENANTS = frozenset({"common", "organizations", "consumers"})


class AadError(HTTPError):
    """An Azure AD error answer: HTTP status, OAuth ``error`` and the AADSTS code.

    ``now`` is the time the answer is stamped with; the service sets it from the tenant's
    clock (the wall clock when unset).
    """

    log_level = logging.INFO

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(status, f"AADSTS{code}: {description}")
        self.error = error
        self.code = code
        self.description = description
        self.now: float | None = None

    def response(self) -> Response:
        """The OAuth error body Azure AD sends."""
        return json_response(
            self.status, self.payload(time.time() if self.now is None else self.now)
        )

    def payload(self, now: float) -> dict[str, Any]:
        """The JSON body, stamped with ``now`` and fresh trace and correlation IDs."""
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} Correlation ID:"
                f" {correlation_id} Timestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


def aad_error_body(status: int, message: str) -> tuple[bytes, str]:
    """Azure AD's error shape for an injected fault."""
    error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
    payload = AadError(status, error, 50000 if status >= 500 else 90000, message).payload(
        time.time()
    )
    return json.dumps(payload).encode(), "application/json; charset=utf-8"


def _no_cache(scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
    # Every answer, errors included, forbids caching, as Azure AD's do.
    return ((b"cache-control", b"no-store, no-cache"),)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


class AadService:
    """The Azure AD of one tenant: discovery documents and the client-credentials token flow.

    Args:
        world: the tenant's applications, identities and federated credentials.
        issuer: signs access tokens.
        oidc: fetches federated issuers' keys.
    """

    def __init__(self, world: AzureWorld, issuer: TokenIssuer, oidc: OidcKeys) -> None:
        self.world = world
        self.issuer = issuer
        self.oidc = oidc
        self.token_lifetime = 3599
        self._app = error_boundary(self._serve, headers=_no_cache)

    def __repr__(self) -> str:
        return f"AadService(tenant_id={self.world.tenant_id!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if scope["type"] != "http":
            return
        await self._app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = await read_request(scope, receive)
        try:
            status, payload = await self._dispatch(request)
        except AadError as err:
            # Stamped with the tenant's clock, which a test may drive; the boundary answers.
            err.now = self.world.clock()
            raise
        await send_json(send, status, payload)

    async def _dispatch(self, request: Request) -> tuple[int, Any]:
        if match := _TOKEN_PATH.match(request.path):
            if request.method != "POST":
                raise AadError(405, "invalid_request", 900561, "The endpoint only accepts POST.")
            return 200, await self._token(request, match["tenant"], v2=bool(match["v2"]))
        if request.method != "GET":
            return 405, {"error": "method not allowed"}
        if _INSTANCE_DISCOVERY_PATH.match(request.path):
            return 200, self._instance_discovery(request)
        if match := _DISCOVERY_PATH.match(request.path):
            return 200, self._openid_configuration(request, match["tenant"], bool(match["v2"]))
        if match := _KEYS_PATH.match(request.path):
            self._check_tenant(match["tenant"], allow_generic=True)
            return 200, self.issuer.signer.jwks()
        return 404, {"error": "not_found", "error_description": f"no such endpoint {request.path}"}

    # -- discovery ---------------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        return f"https://{request.host or 'login.microsoftonline.com'}"

    def _check_tenant(self, tenant: str, *, allow_generic: bool = False) -> None:
        if tenant.lower() == self.world.tenant_id.lower():
            return
        if allow_generic and tenant.lower() in _GENERIC_TENANTS:
            return
        raise AadError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and"
            " are signing into the correct cloud.",
        )

    def _openid_configuration(self, request: Request, tenant: str, v2: bool) -> dict[str, Any]:
        self._check_tenant(tenant, allow_generic=True)
        tid = self.world.tenant_id if tenant.lower() not in _GENERIC_TENANTS else "{tenantid}"
        base = f"{self._base(request)}/{tenant}"
        suffix = "/v2.0" if v2 else ""
        return {
            "token_endpoint": f"{base}/oauth2{suffix}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery{suffix}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": (
                f"https://login.microsoftonline.com/{tid}/v2.0"
                if v2
                else f"https://sts.windows.net/{tid}/"
            ),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2{suffix}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2{suffix}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2{suffix}/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _instance_discovery(self, request: Request) -> dict[str, Any]:
        authorize = request.query.get("authorization_endpoint", "")
        match = re.match(r"^https://[^/]+/([^/]+)/", authorize)
        tenant = match.group(1) if match else "common"
        host = request.host or "login.microsoftonline.com"
        return {
            "tenant_discovery_endpoint": (
                f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        "login.microsoftonline.com",
                        "login.windows.net",
                        "login.microsoft.com",
                        "sts.windows.net",
                    ],
                }
            ],
        }

    # -- the token endpoint ------------------------------------------------------------------

    async def _token(self, request: Request, tenant: str, *, v2: bool) -> dict[str, Any]:
        self._check_tenant(tenant)
        form = request.form()
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "client_credentials":
            raise AadError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            raise _missing("client_id")
        principal = self.world.principal_for_client(client_id)
        if principal is None:
            raise AadError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory"
                f" '{self.world.tenant_id}'. This can happen if the application has not been"
                " installed by the administrator of the tenant or consented to by any user in the"
                " tenant. You may have sent your authentication request to the wrong tenant.",
            )
        resource = self._resource(form, v2=v2)
        await self._authenticate(request, form, principal, tenant)
        token = self.issuer.issue(principal, resource, lifetime=self.token_lifetime)
        logger.info(
            "Azure AD issued a token for %s (client %s) to %s",
            principal.display_name,
            principal.client_id,
            resource,
        )
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "ext_expires_in": token.expires_in,
            "access_token": token.access_token,
        }
        if not v2:
            answer.update(
                expires_in=str(token.expires_in),
                ext_expires_in=str(token.expires_in),
                expires_on=str(token.expires_on),
                not_before=str(token.not_before),
                resource=resource,
            )
        return answer

    def _resource(self, form: dict[str, str], *, v2: bool) -> str:
        if not v2:
            resource = form.get("resource", "")
            if not resource:
                raise _missing("resource")
        else:
            scopes = form.get("scope", "").split()
            if not scopes:
                raise _missing("scope")
            defaults = [s for s in scopes if s.endswith("/.default")]
            if not defaults:
                raise AadError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {' '.join(scopes)} is not valid. Client"
                    " credential flows must have a scope value with /.default suffixed to the"
                    " resource identifier (application ID URI).",
                )
            resource = resource_from_scope(defaults[0])
        if not self.world.knows_resource(resource):
            raise AadError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named"
                f" {self.world.tenant_id}. This can happen if the application has not been"
                " installed by the administrator of the tenant or consented to by any user in the"
                " tenant. You might have sent your authentication request to the wrong tenant.",
            )
        return resource

    async def _authenticate(
        self, request: Request, form: dict[str, str], principal: Principal, tenant: str
    ) -> None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None:
            self._check_secret(principal, secret)
            return
        if assertion is None:
            raise AadError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or"
                " 'client_secret'.",
            )
        if form.get("client_assertion_type") != JWT_BEARER:
            raise AadError(
                400,
                "invalid_request",
                700025,
                f"The client_assertion_type must be '{JWT_BEARER}'.",
            )
        try:
            parsed = _assertions.parse(assertion)
        except InvalidAssertion as err:
            raise AadError(400, "invalid_client", 50027, "Invalid JWT token. " + str(err)) from err
        if parsed.claims.get("iss") == principal.client_id:
            self._check_certificate_assertion(request, parsed, principal, tenant)
        else:
            await self._check_federated_assertion(assertion, parsed, principal)

    def _check_secret(self, principal: Principal, secret: str) -> None:
        app = self.world.service_principal(principal.client_id)
        registered = app.secrets if app is not None else ()
        # compare_digest for every registered secret: no early exit that leaks which matched.
        matches = [hmac.compare_digest(secret.encode(), s.encode()) for s in registered]
        if not any(matches):
            raise AadError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is"
                " the client secret value, not the client secret ID, for a secret added to app"
                f" '{principal.client_id}'.",
            )

    def _check_certificate_assertion(
        self, request: Request, parsed: ParsedAssertion, principal: Principal, tenant: str
    ) -> None:
        app = self.world.service_principal(principal.client_id)
        certificate = _assertions.find_certificate(parsed, app.certificates if app else ())
        if certificate is None:
            raise AadError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The key was not found.,"
                f" Thumbprint of key used by client: '{_assertions.thumbprint_hex(parsed)}']",
            )
        try:
            _assertions.verify_signature(parsed, certificate)
        except InvalidAssertion as err:
            raise AadError(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. [Reason - {err}]",
            ) from err
        if parsed.claims.get("sub") != principal.client_id:
            raise AadError(
                400,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer or the subject is"
                " not the client ID.",
            )
        accepted = {
            f"{base}/{t}/oauth2/{v}token".lower()
            for base in ("https://login.microsoftonline.com", self._base(request))
            for t in (tenant, self.world.tenant_id)
            for v in ("v2.0/", "")
        }
        if not any(a.rstrip("/").lower() in accepted for a in parsed.audiences):
            raise AadError(
                400,
                "invalid_client",
                700021,
                f"Client assertion audience claim does not match Realm issuer. Review the"
                f" documentation. Audience claim: {parsed.audiences!r}.",
            )
        self._check_lifetime(parsed.claims)

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = self.world.clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, (int, float)):
            raise AadError(400, "invalid_client", 50027, "Invalid JWT token. No exp claim.")
        starts = nbf if isinstance(nbf, (int, float)) else exp
        if now > exp + ASSERTION_LEEWAY or now + ASSERTION_LEEWAY < starts:
            raise AadError(
                400,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time:"
                f" {_iso(now)}, assertion valid from {_iso(starts)}, expiry time of assertion"
                f" {_iso(exp)}.",
            )

    async def _check_federated_assertion(
        self, token: str, parsed: ParsedAssertion, principal: Principal
    ) -> None:
        issuer, subject = parsed.claims.get("iss"), parsed.claims.get("sub")
        audiences = parsed.audiences
        credentials = self.world.federated_credentials(principal.client_id)
        by_issuer = [c for c in credentials if c.issuer == issuer]
        if not by_issuer:
            raise AadError(
                400,
                "invalid_client",
                700211,
                f"No matching federated identity record found for presented assertion issuer"
                f" '{issuer}'. Please note that the matching is done using a case-sensitive"
                " comparison. Check your federated identity credential Subject, Audience and"
                " Issuer against the presented assertion.",
            )
        by_subject = [c for c in by_issuer if c.subject == subject]
        if not by_subject:
            folded = str(subject).casefold()
            if any(c.subject.casefold() == folded for c in by_issuer):
                raise AadError(
                    400,
                    "invalid_request",
                    7002138,
                    f"No matching federated identity record found for presented assertion"
                    f" subject '{subject}'. A federated identity credential's subject differs"
                    " from it only in letter case; the comparison is case-sensitive. Check your"
                    " federated identity credential Subject, Audience and Issuer against the"
                    " presented assertion.",
                )
            raise AadError(
                400,
                "invalid_request",
                700213,
                f"No matching federated identity record found for presented assertion subject"
                f" '{subject}'. Check your federated identity credential Subject, Audience and"
                f" Issuer against the presented assertion. Assertion Issuer: '{issuer}'."
                f" Assertion Audience: '{','.join(audiences)}'.",
            )
        matching = [c for c in by_subject if set(c.audiences) & set(audiences)]
        if not matching:
            raise AadError(
                400,
                "invalid_request",
                700212,
                f"No matching federated identity record found for presented assertion audience"
                f" '{','.join(audiences)}'.",
            )
        self._check_lifetime(parsed.claims)
        await self._verify_with_issuer_keys(token, matching[0])

    async def _verify_with_issuer_keys(self, token: str, credential: FederatedCredential) -> None:
        for refresh in (False, True):
            try:
                jwks = await self.oidc.jwks(credential.issuer, refresh=refresh)
            except IssuerUnreachable as err:
                logger.info("Azure AD could not fetch keys of %s: %s", credential.issuer, err)
                raise AadError(
                    400,
                    "invalid_request",
                    90061,
                    f"Request to External OIDC endpoint failed. Issuer: '{credential.issuer}'.",
                ) from err
            try:
                verify(
                    token,
                    jwks,
                    audiences=credential.audiences,
                    issuer=credential.issuer,
                    now=self.world.clock(),
                    leeway=ASSERTION_LEEWAY,
                )
                return
            except InvalidToken as err:
                if err.reason in ("unknown_key", "signature") and not refresh:
                    continue  # the issuer may have rotated its keys: fetch them again
                if err.reason in ("expired", "not_yet_valid"):
                    raise AadError(
                        400,
                        "invalid_client",
                        700024,
                        "Client assertion is not within its valid time range.",
                    ) from err
                raise AadError(
                    400,
                    "invalid_client",
                    50013,
                    f"Assertion failed signature validation. [Reason - {err}]",
                ) from err


def _missing(parameter: str) -> AadError:
    return AadError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )
