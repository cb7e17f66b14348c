"""The HTTP face of the API server: a lean raw-ASGI app over :class:`APIServer`.

Routing is by path segments, not a router framework, because every list, watch and write
passes through here; responses reuse the store's cached JSON bytes. Watches stream chunked
newline-delimited JSON until ``timeoutSeconds``, a client disconnect, ``drop_watches`` or an
overflow of the watcher's queue (then a 410 ``Expired`` ERROR event).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import yaml

from podidentity.testing._asgi import Receive, Scope, Send
from podidentity.testing._http import Request, error_boundary, read_request

from . import _authz, _decode, _discovery, _managed_fields, _openapi, _protobuf
from ._apiserver import ADMIN_USER, APIRequest, APIServer, UserInfo
from ._errors import APIError, status_body
from ._listoptions import EXACT, ListOptions, too_large_resource_version
from ._resources import ResourceType
from ._store import Event, Stored, Watcher, encode
from ._table import table

__all__ = ["RestApp", "decode_body", "query_flag"]

_JSON = [(b"content-type", b"application/json")]
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}
_VERB_OF_METHOD = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_CHUNK_LIMIT = 1 << 20


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    token = json.dumps({"rv": rv, "start": list(key)}).encode()
    return base64.urlsafe_b64encode(token).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as err:
        raise APIError.bad_request(f"invalid continue token: {err}") from err


def _list_body(resource: ResourceType, metadata: Mapping[str, Any], items: list[bytes]) -> bytes:
    # Splice the objects' stored bytes into the list instead of decoding and re-encoding them.
    head = (
        b'{"kind":"'
        + resource.list_kind.encode()
        + b'","apiVersion":"'
        + resource.api_version.encode()
        + b'","metadata":'
        + encode(metadata)
        + b',"items":['
    )
    return head + b",".join(items) + b"]}"


def query_flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter read like the API server does.

    Only an absent parameter, ``0`` or ``false`` (any case) are false: ``watch=True`` from the
    Python client, ``watch=1`` and a bare ``?watch`` are all watches.
    """
    value = query.get(name)
    return value is not None and value != "0" and value.lower() != "false"


def _verb(request: Request, name: str | None) -> str:
    """The API verb of a request to a resource or one object (``""`` if none fits)."""
    if name is not None:
        return _VERB_OF_METHOD.get(request.method, "")
    if request.method == "GET":
        return "watch" if query_flag(request.query, "watch") else "list"
    return {"POST": "create", "DELETE": "deletecollection"}.get(request.method, "")


_PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


@attrs.frozen
class _DeleteOptions:
    """``DeleteOptions`` of a delete or deletecollection: the body's, else the query's."""

    dry_run: bool
    grace_period_seconds: int | None
    preconditions: Mapping[str, Any] | None
    propagation_policy: str | None
    #: ``orphanDependents`` as given (deprecated; ``False`` asks for a 202 on lingering).
    orphan_dependents: bool | None = None

    @classmethod
    def read(cls, query: Mapping[str, str], body: Any) -> _DeleteOptions:
        # The clients send DeleteOptions either way (kubectl and `body=V1DeleteOptions(...)` in
        # the body, keyword arguments of the Python client in the query); the body wins.
        options = body if isinstance(body, Mapping) else {}
        grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        policy = options.get("propagationPolicy", query.get("propagationPolicy"))
        orphan = options.get("orphanDependents", query.get("orphanDependents"))
        if orphan is not None and policy is not None:
            raise APIError.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "propagationPolicy",
                        "message": f'Invalid value: "{policy}": orphanDependents and '
                        "deletionPropagation cannot be both set",
                    }
                ],
            )
        if orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy is not None and policy not in _PROPAGATION_POLICIES:
            supported = ", ".join(f'"{p}"' for p in (*_PROPAGATION_POLICIES, "nil"))
            raise APIError.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    {
                        "reason": "FieldValueNotSupported",
                        "field": "propagationPolicy",
                        "message": f'Unsupported value: "{policy}": supported values: {supported}',
                    }
                ],
            )
        try:
            grace_seconds = int(grace) if grace is not None else None
        except (TypeError, ValueError) as err:
            raise APIError.bad_request(
                f'invalid gracePeriodSeconds "{grace}": must be an integer'
            ) from err
        return cls(
            dry_run=options.get("dryRun") == ["All"] or query.get("dryRun") == "All",
            grace_period_seconds=grace_seconds,
            preconditions=options.get("preconditions"),
            propagation_policy=policy,
            orphan_dependents=None if orphan is None else str(orphan).lower() == "true",
        )


def decode_body(request: Request, *, yaml_ok: bool = False) -> Any:
    """The body as the API server decodes it; ``None`` when empty, 400/415 when undecodable.

    JSON, YAML (server-side apply, ``application/yaml``) or the protobuf access reviews kubectl
    posts.
    """
    raw = request.body
    if not raw:
        return None
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if "protobuf" in content_type:
        # Only the access reviews kubectl posts as protobuf are understood (else 415).
        return _protobuf.decode_review(raw)
    try:
        if yaml_ok or content_type == "application/yaml":
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as err:
        raise APIError.bad_request(f"the body of the request could not be decoded: {err}") from err


def _wants_table(request: Request) -> bool:
    return "as=table" in request.headers.get("accept", "").lower().replace(" ", "")


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or _JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _warnings(scope: Scope) -> list[tuple[bytes, bytes]]:
    return [(b"warning", value) for value in _decode.current_warning_headers()]


class RestApp:
    """ASGI app serving an :class:`APIServer`.

    Args:
        apiserver: what to serve.
        admin_token: the bearer token that is always accepted (as ``kubernetes-admin``).
        require_auth: reject requests without a valid bearer token with 401.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
    """

    def __init__(
        self,
        apiserver: APIServer,
        *,
        admin_token: str,
        require_auth: bool,
        bookmark_interval: float = 5.0,
    ) -> None:
        self.apiserver = apiserver
        self.admin_token = admin_token
        self.require_auth = require_auth
        self.bookmark_interval = bookmark_interval
        self.address = "127.0.0.1:0"
        self._guarded = error_boundary(self._serve, headers=_warnings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # The warnings of a request go out with whatever answer it gets, a refusal's too: the
        # scope spans the error boundary, which adds them.
        with _decode.warning_scope():
            await self._guarded(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = await read_request(scope, receive)
        _decode.set_field_validation(request.query.get("fieldValidation", ""))
        await self._dispatch(request, receive, send)

    async def _authenticate(self, request: Request, anonymous: bool) -> UserInfo | None:
        token = request.bearer_token() or ""
        user = await self.apiserver.authenticate(token, self.admin_token) if token else None
        # A token that does not authenticate is refused even when tokens are optional.
        if user is None and (self.require_auth or token) and not anonymous:
            raise APIError(401, "Unauthorized", "Unauthorized")
        return user if user is not None else (None if anonymous else ADMIN_USER)

    async def _dispatch(self, request: Request, receive: Receive, send: Send) -> None:
        route = self.apiserver.routes.get((request.method, request.path))
        anonymous = route is not None and route[1]
        user = await self._authenticate(request, anonymous=anonymous)
        if user is not None and not anonymous:
            user = _authz.authorize_request(
                self.apiserver,
                user,
                request.method,
                request.path,
                request.query,
                request.raw_headers,
                watch=query_flag(request.query, "watch"),
            )
        if route is not None:
            body = decode_body(request) if request.method in ("POST", "PUT", "PATCH") else None
            plain = APIRequest(
                request.method, request.path, request.query, request.headers, body, user
            )
            await self._send_result(send, await route[0](plain))
            return
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            await self._misc(request, parts, send)
            return
        if parts[0] == "api":
            if len(parts) == 1:
                await self._json(send, 200, _discovery.api_versions(self.address))
                return
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                await self._json(send, 200, _discovery.api_group_list(self.apiserver.resources))
                return
            if len(parts) == 2:
                versions = _discovery.group_versions(self.apiserver.resources, parts[1])
                if not versions:
                    raise APIError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                await self._json(send, 200, _discovery.api_group(parts[1], versions))
                return
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            extra = [
                (p, s, _VERB_OF_METHOD.get(m, m.lower()))
                for (g, p, s, m) in self.apiserver.subresource_handlers
                if g == group
            ]
            doc = _discovery.api_resource_list(self.apiserver.resources, group, version, extra)
            if doc is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            await self._json(send, 200, doc)
            return
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.apiserver.find(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        resource = self.apiserver.find(group, version, rest[0])
        if resource is None or len(rest) > 3:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        await self._resource(request, user, receive, send, resource, namespace, name, subresource)

    async def _misc(self, request: Request, parts: list[str], send: Send) -> None:
        path = "/".join(parts)
        if path == "version":
            await self._json(send, 200, _discovery.version_info())
        elif path == "openapi/v3":
            await self._json(send, 200, _openapi.openapi_index(self.apiserver.resources))
        elif path.startswith("openapi/v3/"):
            doc = _openapi.openapi_group_version(
                self.apiserver.resources, path[len("openapi/v3/") :]
            )
            if doc is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            await self._json(send, 200, doc)
        elif path in ("healthz", "livez", "readyz"):
            await _respond(send, 200, b"ok", [(b"content-type", b"text/plain")])
        else:
            raise APIError(404, "NotFound", "the server could not find the requested resource")

    async def _send_table(
        self,
        send: Send,
        request: Request,
        resource: ResourceType,
        objects: list[dict[str, Any]],
        rv: int,
        **options: Any,
    ) -> None:
        """Answer with a server-side ``Table`` (what kubectl ``get`` asks for)."""
        doc = table(
            resource,
            objects,
            resource_version=str(rv),
            include_object=request.query.get("includeObject", "Metadata"),
            **options,
        )
        await self._json(send, 200, doc)

    async def _json(self, send: Send, status: int, payload: Any) -> None:
        await _respond(send, status, encode(payload))

    async def _send_result(self, send: Send, result: tuple[int, Any]) -> None:
        status, body = result
        await _respond(send, status, body if isinstance(body, bytes) else encode(body))

    # ------------------------------------------------------------------ resources

    async def _resource(
        self,
        request: Request,
        authenticated: UserInfo | None,
        receive: Receive,
        send: Send,
        resource: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> None:
        api = self.apiserver
        method = request.method
        user = authenticated or ADMIN_USER
        handler = api.subresource_handlers.get(
            (resource.group, resource.plural, subresource or "", method)
        )
        if handler is not None and (subresource or resource.virtual):
            body = decode_body(request) if method in ("POST", "PUT", "PATCH") else None
            plain = APIRequest(
                method,
                request.path,
                request.query,
                request.headers,
                body,
                authenticated,
                namespace,
                name,
                resource,
                subresource,
            )
            await self._send_result(send, await handler(plain))
            return
        if resource.virtual or (subresource and subresource not in resource.subresources):
            raise APIError(
                405 if resource.virtual else 404,
                "MethodNotAllowed" if resource.virtual else "NotFound",
                "the server does not allow this method on the requested resource"
                if resource.virtual
                else "the server could not find the requested resource",
            )
        if subresource is None and _verb(request, name) not in resource.verbs:
            # What discovery does not advertise is not served (DELETE /api/v1/namespaces).
            raise APIError.method_not_allowed()
        dry_run = request.query.get("dryRun") == "All"
        strict = request.query.get("fieldValidation") == "Strict"
        # The manager of this write: the fieldManager parameter, else the user agent's product
        # (kubectl names its own: kubectl-create, kubectl-client-side-apply, kubectl, ...).
        manager = request.query.get("fieldManager")
        if manager is not None:
            kind = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(method, "PatchOptions")
            _managed_fields.validate_field_manager(manager, kind)
        default_manager = manager or _managed_fields.manager_from_user_agent(
            request.headers.get("user-agent", "")
        )
        if name is None:
            if method == "GET":
                if query_flag(request.query, "watch"):
                    await self._watch(request, receive, send, resource, namespace)
                else:
                    await self._list(request, send, resource, namespace)
            elif method == "POST":
                body = decode_body(request)
                stored = await api.create_stored(
                    resource,
                    body,
                    namespace=namespace,
                    user=user,
                    dry_run=dry_run,
                    strict=strict,
                    field_manager=default_manager,
                )
                await _respond(send, 201, stored.raw)
            elif method == "DELETE":
                options = _DeleteOptions.read(request.query, decode_body(request))
                await self._delete_collection(request, send, resource, namespace, user, options)
            else:
                raise APIError.method_not_allowed()
            return
        if method == "GET":
            self._check_not_future(request.query.get("resourceVersion", ""))
            stored = api.get_stored(resource, name, namespace)
            if _wants_table(request):
                await self._send_table(send, request, resource, [stored.obj], stored.rv)
            else:
                await _respond(send, 200, stored.raw)
        elif method == "PUT":
            body = decode_body(request)
            stored = await api.update_stored(
                resource,
                name,
                namespace,
                body,
                subresource=subresource,
                user=user,
                dry_run=dry_run,
                strict=strict,
                field_manager=default_manager,
            )
            await _respond(send, 200, stored.raw)
        elif method == "PATCH":
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            patch_type = _PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise APIError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted "
                    f"media types include: {', '.join(_PATCH_TYPES)}",
                )
            body = decode_body(request, yaml_ok=patch_type == "apply")
            existed = api._key(resource, namespace, name) in api.store.of(resource).objects
            stored = await api.patch_stored(
                resource,
                name,
                namespace,
                body,
                patch_type=patch_type,
                subresource=subresource,
                user=user,
                dry_run=dry_run,
                strict=strict,
                field_manager=manager if patch_type == "apply" else default_manager,
                force=query_flag(request.query, "force"),
            )
            await _respond(send, 200 if existed else 201, stored.raw)
        elif method == "DELETE":
            options = _DeleteOptions.read(request.query, decode_body(request))
            dry_run = options.dry_run
            stored = await api.delete_stored(
                resource,
                name,
                namespace,
                preconditions=options.preconditions,
                grace_period_seconds=options.grace_period_seconds,
                propagation_policy=options.propagation_policy,
                user=user,
                dry_run=dry_run,
            )
            lingering = bool(stored.obj["metadata"].get("deletionTimestamp")) and (
                api._key(resource, namespace, name) in api.store.of(resource).objects
            )
            # 200 even when the object lingers (finalizers, a pod's grace period): upstream
            # keeps 202 for the deprecated orphanDependents=false only, for old clients' sake.
            accepted = lingering and not dry_run and options.orphan_dependents is False
            await _respond(send, 202 if accepted else 200, stored.raw)
        else:
            raise APIError.method_not_allowed()

    def _check_not_future(self, rv_text: str) -> None:
        """A resourceVersion the store has not reached is a 504, as from the watch cache."""
        if rv_text.isdigit() and int(rv_text) > self.apiserver.store.rv:
            raise too_large_resource_version(int(rv_text), self.apiserver.store.rv)

    def _selected(self, request: Request, resource: ResourceType, namespace: str | None) -> Any:
        return self.apiserver.select(
            resource,
            label_selector=request.query.get("labelSelector", ""),
            field_selector=request.query.get("fieldSelector", ""),
        )

    async def _list(
        self, request: Request, send: Send, resource: ResourceType, namespace: str | None
    ) -> None:
        options = ListOptions.parse(request.query, watch=False)
        self._check_not_future(options.resource_version)
        predicate = self._selected(request, resource, namespace)
        store = self.apiserver.store.of(resource)
        limit = options.limit
        token = options.continue_token
        list_rv = self.apiserver.store.rv
        objects: Mapping[tuple[str, str], Stored] = store.objects
        keys = store.sorted_keys()
        if options.resource_version_match == EXACT:
            # The list as it was at that resourceVersion, rebuilt from the event history.
            list_rv = int(options.resource_version)
            exact = store.snapshot(list_rv)
            if exact is None:
                raise APIError.gone("The resourceVersion for the provided list is too old.")
            objects, keys = exact
        if token:
            # Later pages come from the first page's snapshot, as etcd serves them at the
            # list's resourceVersion: nothing is skipped or seen twice while writers run.
            list_rv, start = _decode_continue(token)
            snapshot = store.snapshot(list_rv)
            if snapshot is None:
                raise APIError.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list."
                )
            objects, keys = snapshot
            keys = keys[bisect.bisect_right(keys, start) :]
        selected: list[Any] = []
        next_key: tuple[str, str] | None = None
        remaining = 0
        for index, key in enumerate(keys):
            if namespace and key[0] != namespace:
                continue
            stored = objects[key]
            if predicate is not None and not predicate(stored.obj):
                continue
            if limit and len(selected) >= limit:
                next_key = selected[-1][0]
                remaining = sum(
                    1
                    for k in keys[index:]
                    if (not namespace or k[0] == namespace)
                    and (predicate is None or predicate(objects[k].obj))
                )
                break
            selected.append((key, stored))
        continue_token = _encode_continue(list_rv, next_key) if next_key else ""
        if _wants_table(request):
            await self._send_table(
                send,
                request,
                resource,
                [s.obj for _, s in selected],
                list_rv,
                continue_token=continue_token,
                headers=not token,
            )
            return
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if continue_token:
            meta["continue"] = continue_token
            if predicate is None:
                # Counted only when nothing is selected out, as etcd's list does.
                meta["remainingItemCount"] = remaining
        await _respond(send, 200, _list_body(resource, meta, [s.raw for _, s in selected]))

    async def _delete_collection(
        self,
        request: Request,
        send: Send,
        resource: ResourceType,
        namespace: str | None,
        user: UserInfo,
        options: _DeleteOptions,
    ) -> None:
        predicate = self._selected(request, resource, namespace)
        store = self.apiserver.store.of(resource)
        deleted = []
        for key in list(store.sorted_keys()):
            if namespace and key[0] != namespace:
                continue
            stored = store.objects.get(key)
            if stored is None or (predicate is not None and not predicate(stored.obj)):
                continue
            result = await self.apiserver.delete_stored(
                resource,
                key[1],
                key[0] or None,
                grace_period_seconds=options.grace_period_seconds,
                propagation_policy=options.propagation_policy,
                user=user,
                dry_run=options.dry_run,
            )
            deleted.append(result.raw)
        meta = {"resourceVersion": str(self.apiserver.store.rv)}
        await _respond(send, 200, _list_body(resource, meta, deleted))

    # ------------------------------------------------------------------ watch

    async def _watch(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        resource: ResourceType,
        namespace: str | None,
    ) -> None:
        api = self.apiserver
        query = request.query
        options = ListOptions.parse(query, watch=True)
        predicate = self._selected(request, resource, namespace)
        store = api.store.of(resource)
        rv_text = options.resource_version
        bookmarks = options.allow_bookmarks
        send_initial = bool(options.send_initial_events)
        timeout = options.timeout
        too_large = rv_text.isdigit() and int(rv_text) > api.store.rv
        watcher = Watcher(
            namespace=namespace if resource.namespaced else None,
            predicate=predicate,
            max_queue=api.watch_queue_size,
        )
        initial: list[tuple[Event, str]] = []
        expired = False
        if too_large:
            pass  # reported on the stream below
        elif options.initial_events:
            for key in store.sorted_keys():
                stored = store.objects[key]
                if watcher._visible(stored.obj):
                    initial.append((Event("ADDED", stored.rv, stored.obj, stored.raw), "ADDED"))
        elif rv_text not in ("", "0"):
            # Every change after that resourceVersion (sendInitialEvents=false, or legacy).
            replay = store.events_after(int(rv_text))
            if replay is None:
                expired = True
            else:
                for event in replay:
                    watcher.offer(event)
        initial_end_rv = api.store.rv
        if not expired and not too_large:
            store.watchers.add(watcher)
        table_mode = _wants_table(request)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"transfer-encoding", b"chunked"),
                ],
            }
        )
        disconnect = asyncio.ensure_future(self._wait_disconnect(receive, watcher))
        try:
            if too_large:
                # Once the request is accepted, the watch cache reports errors as an event.
                error = too_large_resource_version(int(rv_text), api.store.rv)
                await self._send_chunk(
                    send, b'{"type":"ERROR","object":' + encode(status_body(error)) + b"}\n"
                )
                return
            if expired:
                await self._send_chunk(
                    send,
                    self._expired_line(
                        f"too old resource version: {rv_text} ({store.window_start + 1})"
                    ),
                )
                return
            first = [True]
            render = self._renderer(
                resource, table_mode, first, query.get("includeObject", "Metadata")
            )
            if initial:
                await self._send_chunk(send, b"".join(render(e, k) for e, k in initial))
            if send_initial and bookmarks:
                await self._send_chunk(send, self._bookmark(resource, initial_end_rv, True))
            await self._stream(send, watcher, resource, render, timeout, bookmarks)
        finally:
            store.watchers.discard(watcher)
            disconnect.cancel()
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _renderer(
        self, resource: ResourceType, table_mode: bool, first: list[bool], include_object: str
    ) -> Callable[[Event, str], bytes]:
        if not table_mode:
            return Watcher.line

        def render(event: Event, kind: str) -> bytes:
            doc = table(
                resource,
                [event.obj],
                resource_version=str(event.rv),
                include_object=include_object,
                headers=first[0],
            )
            first[0] = False
            return b'{"type":"' + kind.encode() + b'","object":' + encode(doc) + b"}\n"

        return render

    async def _stream(
        self,
        send: Send,
        watcher: Watcher,
        resource: ResourceType,
        render: Callable[[Event, str], bytes],
        timeout: float,
        bookmarks: bool,
    ) -> None:
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if watcher.overflowed:
                await self._send_chunk(
                    send,
                    self._expired_line(
                        "the watcher fell too far behind and its queue overflowed; re-list and "
                        "watch again"
                    ),
                )
                return
            if watcher.queue:
                chunk: list[bytes] = []
                size = 0
                for event, kind in watcher.drain():
                    line = render(event, kind)
                    chunk.append(line)
                    size += len(line)
                    if size > _CHUNK_LIMIT:
                        break
                await self._send_chunk(send, b"".join(chunk))
                continue
            if watcher.closed:
                # Only after the queue: a CRD's deletion queues its objects' DELETED events
                # and then closes their watches, and clients must see those events.
                return
            if bookmarks and (now >= next_bookmark or watcher.bookmark_requested):
                watcher.bookmark_requested = False
                next_bookmark = now + self.bookmark_interval
                await self._send_chunk(send, self._bookmark(resource, self.apiserver.store.rv))
                continue
            watcher.wakeup.clear()
            wait = deadline - now
            if bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(watcher.wakeup.wait(), timeout=wait)

    async def _wait_disconnect(self, receive: Receive, watcher: Watcher) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                watcher.close()
                return

    @staticmethod
    async def _send_chunk(send: Send, body: bytes) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})

    @staticmethod
    def _expired_line(message: str) -> bytes:
        status = status_body(APIError.gone(message))
        return b'{"type":"ERROR","object":' + encode(status) + b"}\n"

    @staticmethod
    def _bookmark(resource: ResourceType, rv: int, initial_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}
        return b'{"type":"BOOKMARK","object":' + encode(obj) + b"}\n"


def bookmark_all(watchers: Mapping[Any, Watcher]) -> None:
    """Ask every watcher for a BOOKMARK now."""
    for watcher in watchers.values():
        watcher.bookmark_requested = True
        watcher.wakeup.set()
