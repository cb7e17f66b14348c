"""Authorizing HTTP requests: what a request asks (its attributes), impersonation, and the 403.

kube-apiserver decides from the URL alone, before it looks for the resource, so a request the
user may not make is refused even for a resource that does not exist. :func:`attributes_of`
follows its ``RequestInfoFactory``: ``GET`` of a collection is ``list`` or ``watch``, ``DELETE``
of one is ``deletecollection``, ``/api/v1/namespaces/x`` is the namespace ``x`` in the
namespace ``x``, a ``fieldSelector`` of ``metadata.name=y`` names the object ``y``, and paths
outside ``/api`` and ``/apis`` are checked as non-resource URLs with the lower-case HTTP
method as the verb. :func:`forbidden` words the 403 exactly as the real server does.

Impersonation (``Impersonate-User``, ``Impersonate-Group``, ``Impersonate-Uid`` headers, what
``kubectl --as`` sends) needs the ``impersonate`` verb on ``users`` (or ``serviceaccounts``),
``groups`` and ``uids``, and then acts as that user, as the real server's filter does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import APIError
from ._rbac import PRIVILEGED_GROUP, Attributes, Decision, RBACAuthorizer

if TYPE_CHECKING:
    from ._apiserver import APIServer, UserInfo

__all__ = ["attributes_of", "authorize_request", "forbidden", "forbidden_message"]

_VERB_OF_METHOD = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
#: A namespace's own subresources: ``/api/v1/namespaces/x/status`` is not a resource "status".
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_SA_PREFIX = "system:serviceaccount:"
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"


def _name_from_field_selector(selector: str) -> str:
    """The name a ``metadata.name=x`` (or ``==``) term pins a list or watch to, if any."""
    for term in selector.split(","):
        for operator in ("==", "="):
            key, found, value = term.partition(operator)
            if found and key.strip() == "metadata.name" and "!" not in key:
                value = value.strip()
                # Only a valid path segment names an object (IsValidPathSegmentName).
                if value and value not in (".", "..") and "/" not in value and "%" not in value:
                    return value
                return ""
    return ""


def attributes_of(
    user: UserInfo, method: str, path: str, query: Mapping[str, str], *, watch: bool
) -> Attributes:
    """What a request asks, as kube-apiserver's ``RequestInfoFactory`` reads it.

    Args:
        user: who asks.
        method: the HTTP method.
        path: the URL path.
        query: the query parameters (``fieldSelector`` may name the object).
        watch: whether the ``watch`` parameter is true (read as the server reads booleans).
    """
    parts = path.strip("/").split("/") if path.strip("/") else []
    non_resource = Attributes(user=user, verb=method.lower(), resource_request=False, path=path)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 2:
            return non_resource
        group, rest = rest[0], rest[1:]
    if len(rest) < 2:
        return non_resource
    version, rest = rest[0], rest[1:]
    verb = _VERB_OF_METHOD.get(method.upper(), "")
    if rest[0] == "watch" and len(rest) > 1:
        # The deprecated /watch/ paths; the emulator does not serve them, but decides them.
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if watch else "list"
        name = _name_from_field_selector(query.get("fieldSelector", ""))
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user=user,
        verb=verb,
        namespace=namespace,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        name=name,
        path=path,
    )


def forbidden_message(attributes: Attributes) -> str:
    """The real server's ``User "x" cannot VERB resource ...`` sentence."""
    user = attributes.user.username
    if not attributes.resource_request:
        return f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    where = (
        f'in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else "at the cluster scope"
    )
    return (
        f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group '
        f'"{attributes.api_group}" {where}'
    )


def forbidden(attributes: Attributes, reason: str = "") -> APIError:
    """403 ``Forbidden`` for a denied request, in the real ``Status`` shape and words."""
    sentence = forbidden_message(attributes)
    if reason:
        sentence = f"{sentence}: {reason}"
    if not attributes.resource_request:
        return APIError(403, "Forbidden", f"forbidden: {sentence}")
    group, resource, name = attributes.api_group, attributes.resource, attributes.name
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", resource)) if v}
    return APIError(403, "Forbidden", f"{subject} is forbidden: {sentence}", details)


def _check(apiserver: APIServer, attributes: Attributes) -> None:
    authorizer = apiserver.authorizer
    if authorizer is None:
        return
    decision: Decision = authorizer(attributes)
    if not decision.allowed:
        raise forbidden(attributes, decision.reason)


def _impersonate(
    apiserver: APIServer, user: UserInfo, headers: Mapping[str, str], multi: Mapping[str, Any]
) -> UserInfo:
    """The user a request acts as after its ``Impersonate-*`` headers are checked."""
    from ._apiserver import UserInfo

    username = headers.get("impersonate-user", "")
    groups = [g for g in multi.get("impersonate-group", ()) if g]
    uid = headers.get("impersonate-uid", "")
    extra_keys = [k for k in headers if k.startswith("impersonate-extra-")]
    if not username:
        if groups or uid or extra_keys:
            raise APIError.bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user"
            )
        return user

    def acting(
        resource: str, name: str, namespace: str = "", group: str = "", subresource: str = ""
    ) -> Attributes:
        return Attributes(
            user=user,
            verb="impersonate",
            namespace=namespace,
            api_group=group,
            resource=resource,
            subresource=subresource,
            name=name,
        )

    if username.startswith(_SA_PREFIX) and username.count(":") == 3:
        namespace, name = username[len(_SA_PREFIX) :].split(":")
        _check(apiserver, acting("serviceaccounts", name, namespace=namespace))
        if not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        _check(apiserver, acting("users", username))
    for group in multi.get("impersonate-group", ()):
        _check(apiserver, acting("groups", group))
    if uid:
        _check(
            apiserver,
            acting("uids", uid, group="authentication.k8s.io"),
        )
    extra: dict[str, tuple[str, ...]] = {}
    for header in extra_keys:
        key = header[len("impersonate-extra-") :]
        values = tuple(multi.get(header, (headers[header],)))
        for value in values:
            _check(
                apiserver,
                acting("userextras", value, group="authentication.k8s.io", subresource=key),
            )
        extra[key] = values
    if username != "system:anonymous" and not {_AUTHENTICATED, _UNAUTHENTICATED} & set(groups):
        groups.append(_AUTHENTICATED)
    return UserInfo(username, tuple(groups), uid, extra)


def authorize_request(
    apiserver: APIServer,
    user: UserInfo,
    method: str,
    path: str,
    query: Mapping[str, str],
    raw_headers: Iterable[tuple[bytes, bytes]],
    *,
    watch: bool,
) -> UserInfo:
    """Impersonate if asked, then authorize the request; returns the user it acts as.

    Args:
        apiserver: whose authorizer decides (none: everything is allowed).
        user: the authenticated user.
        method: the HTTP method.
        path: the URL path.
        query: the query parameters.
        raw_headers: the request's headers as ASGI gives them (repeated ones included).
        watch: whether the request's ``watch`` parameter is true.

    Raises:
        APIError: 403 ``Forbidden`` (or 400 for a malformed impersonation request).
    """
    multi: dict[str, list[str]] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        if name.startswith("impersonate-"):
            multi.setdefault(name, []).append(raw_value.decode("latin-1"))
    if multi:
        headers = {name: values[-1] for name, values in multi.items()}
        user = _impersonate(apiserver, user, headers, multi)
    authorizer = apiserver.authorizer
    if authorizer is None:
        return user
    if isinstance(authorizer, RBACAuthorizer) and PRIVILEGED_GROUP in user.groups:
        # The privileged-group authorizer runs first and allows everything: skip the parsing.
        return user
    _check(apiserver, attributes_of(user, method, path, query, watch=watch))
    return user
