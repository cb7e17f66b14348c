"""What a request to the token proxy asks for: pure parsing and validation, no I/O.

The proxy answers on a node where traffic to IMDS is redirected to it, so every path that IMDS
would answer as its token endpoint must be caught here, never passed through to IMDS (which
would hand out the node's identities). IMDS runs on IIS: it matches paths case-insensitively
and reads a backslash as a slash. Rather than re-implement every normalisation IIS does, the
proxy refuses (400) any ``/metadata`` or ``/host`` path that needs normalising at all: percent
escapes, backslashes, ``.``/``..`` or empty segments, ``;`` parameters, non-ASCII bytes. Only
clean paths are routed; ``/metadata/identity/...`` paths other than the token path are refused
too (IMDS may grow answers there), and the rest of ``/metadata/`` is forwarded.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from urllib.parse import unquote, unquote_plus

import attrs

from podidentity.errors import BadTokenRequestError, TokenRequestRefusedError

__all__ = [
    "IDENTITY_PARAMETERS",
    "HostTokenRequest",
    "InstanceMetadataBlockedError",
    "MethodNotAllowedError",
    "PathNotFoundError",
    "Route",
    "TokenQuery",
    "classify_path",
    "parse_host_token_request",
    "parse_token_query",
]

IDENTITY_PARAMETERS = ("client_id", "object_id", "msi_res_id", "mi_res_id", "resource_id")
"""Query parameters that name an identity (the SDKs send ``mi_res_id`` or ``resource_id``)."""

_ALIASES = {"resource_id": "msi_res_id"}
# azure-identity's aio client sends ``resource_id``, which IMDS ignores (it would answer with the
# node's default identity): the proxy reads it as the ``msi_res_id`` it means.

METADATA_HEADER_MISSING = "Required metadata header not specified"
RESOURCE_MISSING = "Required audience parameter not specified"
API_VERSION_MISSING = (
    "Bad request. api-version is invalid or was not specified in the request. For more"
    " information refer to aka.ms/azureimds"
)


class PathNotFoundError(TokenRequestRefusedError):
    """No such path on the token proxy (404)."""


class MethodNotAllowedError(BadTokenRequestError):
    """The token endpoints answer GET only (405, as IMDS)."""


class InstanceMetadataBlockedError(TokenRequestRefusedError):
    """``/metadata/instance`` is blocked on this node (403)."""


class Route(enum.Enum):
    """Where a request goes."""

    TOKEN = "token"  # noqa: S105 - a route name
    """``/metadata/identity/oauth2/token``: a token for the calling pod."""
    HOST_TOKEN = "host-token"  # noqa: S105 - a route name
    """``/host/token``: a token for a named pod, for callers on the node itself."""
    INSTANCE = "instance"
    """``/metadata/instance...``: forwarded, or refused when blocking is on."""
    FORWARD = "forward"
    """Any other ``/metadata/...`` path: forwarded to the node's IMDS as it came."""


_TOKEN_PATHS = ("/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token/")
_HOST_TOKEN_PATHS = ("/host/token", "/host/token/")
_GUARDED_PREFIXES = ("/metadata", "/host")


def _needs_normalising(path: str) -> bool:
    if any(c in path for c in "%\\;") or not path.isascii() or not path.isprintable():
        return True
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash is fine
    return any(s in ("", ".", "..") for s in segments)


# Pods ask with the same few paths and query strings over and over: the checks of the cached
# token path are remembered per exact raw input (bounded; refusals are never remembered, so
# odd input costs the full check every time and cannot crowd out the common answers).
_PARSED_CACHE_SIZE = 1024


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def classify_path(raw_path: bytes) -> Route:
    """The route for a request's raw path (bytes as sent, before any decoding).

    Raises:
        BadTokenRequestError: a ``/metadata`` or ``/host`` path that would need normalising,
            or an identity path other than the token path.
        PathNotFoundError: any other path.
    """
    path = raw_path.decode("latin-1")
    lowered = path.lower()
    decoded_lower = unquote(path, encoding="latin-1").replace("\\", "/").lower()
    if _needs_normalising(path):
        if any(decoded_lower.lstrip("/").startswith(p[1:]) for p in _GUARDED_PREFIXES):
            raise BadTokenRequestError(
                f"malformed path {path[:120]!r}: percent escapes, backslashes, dot or empty "
                "segments are not accepted on /metadata and /host paths"
            )
        raise PathNotFoundError(f"no such path: {path[:120]!r}")
    if lowered in _TOKEN_PATHS:
        return Route.TOKEN
    if lowered == "/metadata/identity" or lowered.startswith("/metadata/identity/"):
        raise BadTokenRequestError(
            f"malformed token path {path[:120]!r}: the token endpoint is "
            "/metadata/identity/oauth2/token"
        )
    if lowered in _HOST_TOKEN_PATHS:
        return Route.HOST_TOKEN
    if lowered == "/metadata/instance" or lowered.startswith("/metadata/instance/"):
        return Route.INSTANCE
    if lowered.startswith("/metadata/"):
        return Route.FORWARD
    raise PathNotFoundError(f"no such path: {path[:120]!r}")


@attrs.frozen
class TokenQuery:
    """A validated token request.

    Attributes:
        resource: the audience asked for.
        parameter: the identity named, as ``(name, value)`` with the name lower-case
            (``("client_id", "...")``; ``resource_id`` is read as ``msi_res_id``), or ``None``
            when the caller named none.
        api_version: the ``api-version`` the caller sent.
    """

    resource: str
    parameter: tuple[str, str] | None
    api_version: str


def _query(query_string: bytes) -> dict[str, list[str]]:
    # parse_qsl's rules (``&`` separated, ``+`` is a space, blank values kept), without its
    # cost on the hot path: most queries need no unquoting at all.
    values: dict[str, list[str]] = {}
    for pair in query_string.decode("latin-1").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            name, value = unquote_plus(name), unquote_plus(value)
        values.setdefault(name.lower(), []).append(value)
    return values


def _single(values: dict[str, list[str]], name: str) -> str:
    given = values.get(name, [])
    if len(given) > 1:
        # Two values for one parameter: whichever the proxy checked, an upstream could use the
        # other. Refuse rather than pick.
        raise BadTokenRequestError(f"the query parameter {name} is given {len(given)} times")
    return given[0] if given else ""


def parse_token_query(
    method: str,
    query_string: bytes,
    headers: Mapping[str, str],
    *,
    metadata_header_required: bool = True,
) -> TokenQuery:
    """Validate a token request in IMDS's order: method, ``Metadata`` header, parameters.

    Args:
        method: the HTTP method.
        query_string: the raw query string.
        headers: request headers, names lower-case.
        metadata_header_required: whether ``Metadata: true`` is required.

    Raises:
        MethodNotAllowedError: not a GET.
        BadTokenRequestError: missing header, ``api-version`` or ``resource``; more than one
            identity parameter; a parameter given twice.
    """
    if method != "GET":
        raise MethodNotAllowedError("Only GET is supported")
    if metadata_header_required and headers.get("metadata", "").lower() != "true":
        raise BadTokenRequestError(METADATA_HEADER_MISSING)
    return _token_query(query_string)


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _token_query(query_string: bytes) -> TokenQuery:
    values = _query(query_string)
    api_version = _single(values, "api-version")
    if not api_version:
        raise BadTokenRequestError(API_VERSION_MISSING)
    resource = _single(values, "resource")
    if not resource:
        raise BadTokenRequestError(RESOURCE_MISSING)
    named = [(p, _single(values, p)) for p in IDENTITY_PARAMETERS if p in values]
    if any(not value for _, value in named):
        empty = next(p for p, value in named if not value)
        raise BadTokenRequestError(f"the query parameter {empty} is empty")
    if len(named) > 1:
        raise BadTokenRequestError(
            "Only one of client_id, object_id, msi_res_id, mi_res_id may be specified"
        )
    parameter = (_ALIASES.get(named[0][0], named[0][0]), named[0][1]) if named else None
    return TokenQuery(resource=resource, parameter=parameter, api_version=api_version)


@attrs.frozen
class HostTokenRequest:
    """A ``/host/token`` request: a token for the pod named in the ``podname``/``podns`` headers."""

    pod_name: str
    pod_namespace: str
    query: TokenQuery


def parse_host_token_request(
    method: str, query_string: bytes, headers: Mapping[str, str]
) -> HostTokenRequest:
    """Validate a ``/host/token`` request (headers ``podname``, ``podns``; ``resource``).

    Raises:
        MethodNotAllowedError: not a GET.
        BadTokenRequestError: a header or ``resource`` is missing.
    """
    if method != "GET":
        raise MethodNotAllowedError("Only GET is supported")
    name, namespace = headers.get("podname", ""), headers.get("podns", "")
    if not name or not namespace:
        raise BadTokenRequestError("/host/token needs the headers podname and podns")
    values = _query(query_string)
    resource = _single(values, "resource")
    if not resource:
        raise BadTokenRequestError(RESOURCE_MISSING)
    client_id = _single(values, "clientid") or _single(values, "client_id")
    parameter = ("client_id", client_id) if client_id else None
    return HostTokenRequest(
        pod_name=name,
        pod_namespace=namespace,
        query=TokenQuery(resource=resource, parameter=parameter, api_version=""),
    )
