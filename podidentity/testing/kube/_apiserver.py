"""The API server's brain: resources, objects, write semantics, and the plug-in points.

:class:`APIServer` is what :class:`~podidentity.testing.kube.KubeEmulator` serves over HTTP and
what plug-ins (the scheduler/kubelet in ``_cluster.py``, token issuance in ``_tokens.py``)
extend. Everything here runs on the emulator's serving loop: the HTTP layer calls it there, and
the emulator's sync helpers hop onto the loop with ``ServerThread.call``.

Plug-in contract (stable):

* :meth:`APIServer.add_admission` — ``hook(request: AdmissionRequest)``, sync or async, runs
  before every CREATE / UPDATE / DELETE is persisted (HTTP and Python-level alike). It may
  mutate ``request.object`` in place or raise :class:`APIError` to refuse.
* :meth:`APIServer.add_observer` — ``callback(event_type, resource, obj)``, sync or async,
  called after each committed change, in commit order, from one background task. It may write
  through the Python-level API (:meth:`create`, :meth:`update`, :meth:`patch`, ...): those
  writes are queued behind the current notification, never re-entered.
  :meth:`settle` waits until every notification has been handled.
* :meth:`APIServer.add_subresource`, :meth:`APIServer.add_virtual_resource`,
  :meth:`APIServer.add_route` — async handlers ``handler(request: APIRequest) -> (status,
  body)`` where body is JSON-serialisable (or ``bytes``, sent as JSON as is).
* :meth:`APIServer.set_authenticator` — ``fn(token) -> UserInfo | None`` (sync or async).
* :meth:`APIServer.set_authorizer` — ``fn(attributes) -> Decision`` (sync): RBAC by default.

Installers: :class:`~podidentity.testing.kube.KubeEmulator` imports the sibling modules
``_cluster`` and ``_tokens`` when they exist and calls their ``install(emulator)`` (sync or
async, run on the serving loop) once the server listens, so ``emulator.url``,
``emulator.token``, ``emulator.workdir`` and ``emulator.apiserver`` are all available. The
namespaces ``default``, ``kube-system``, ``kube-public`` and ``kube-node-lease`` exist from the
start (the real API server creates them too); service accounts are the plug-ins' business.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from podidentity.models._time import format_kube_time
from podidentity.testing._clock import Clock, system_clock

from . import (
    _crd,
    _decode,
    _gc,
    _lifecycle,
    _managed_fields,
    _rbac,
    _rbac_policy,
    _rbac_validation,
    _reviews,
    _update_rules,
)
from ._builtin_validation import builtin_problems, builtin_update_problems
from ._errors import APIError
from ._event_conversion import to_core_event, to_events_v1_event
from ._fields import FieldSelector
from ._labels import parse_label_selector
from ._patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from ._resources import BUILTIN_RESOURCES, ResourceType
from ._schema import prune, validate
from ._store import SharedStorage, Store, Stored, encode
from ._timers import Timers
from ._validation import finalizer_warnings, metadata_problems
from ._workloads import WORKLOAD_RESOURCES, builtin_defaults

__all__ = [
    "ADMIN_USER",
    "APIRequest",
    "APIServer",
    "AdmissionRequest",
    "Handler",
    "UserInfo",
]

_log = logging.getLogger(__name__)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: Names tried for a ``generateName`` create before a collision is a 409, as upstream
#: (``maxNameGenerationCreateAttempts``).
_GENERATE_ATTEMPTS = 8
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
_NAMESPACE_KEY = ("", "namespaces")

PATCH_TYPES = ("json", "merge", "strategic", "apply")
#: The field manager of Python-level writes that name none (HTTP requests default to the
#: user agent's product, as on the real server).
DEFAULT_FIELD_MANAGER = "kube-emulator"


@attrs.frozen
class UserInfo:
    """Who made a request (what TokenReview reports)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


ADMIN_USER = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))


@attrs.define
class AdmissionRequest:
    """What an admission hook sees; ``object`` is the mutable new object (``None`` on DELETE).

    Attributes:
        operation: ``CREATE``, ``UPDATE`` or ``DELETE``.
        resource: the resource type written.
        object: the object about to be stored (mutate in place), or ``None`` for DELETE.
        old_object: the stored object before the change (read-only), or ``None`` for CREATE.
        namespace: the object's namespace, ``None`` for cluster-scoped resources.
        name: the object's name (after ``generateName``).
        subresource: ``"status"`` for status writes, else ``None``.
        user: who asked.
        dry_run: the change will not be persisted.
    """

    operation: str
    resource: ResourceType
    object: dict[str, Any] | None
    old_object: Mapping[str, Any] | None
    namespace: str | None
    name: str
    subresource: str | None
    user: UserInfo
    dry_run: bool = False


@attrs.frozen
class APIRequest:
    """An HTTP request routed to a plug-in handler.

    Attributes:
        method: ``GET``, ``POST``, ...
        path: the URL path.
        query: query parameters (the first of repeated values wins).
        headers: lower-cased header names.
        body: the decoded JSON body, or ``None``.
        user: the authenticated user (``None`` only for anonymous routes).
        namespace: for subresources and virtual resources.
        name: for subresources.
        resource: the resource type, for subresources and virtual resources.
        subresource: the subresource name.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    user: UserInfo | None
    namespace: str | None = None
    name: str | None = None
    resource: ResourceType | None = None
    subresource: str | None = None


#: A plug-in HTTP handler: returns (status code, JSON-able body or raw JSON bytes).
Handler = Callable[[APIRequest], Awaitable[tuple[int, Any]]]
AdmissionHook = Callable[[AdmissionRequest], "Awaitable[None] | None"]
Observer = Callable[[str, ResourceType, dict[str, Any]], "Awaitable[None] | None"]
Authenticator = Callable[[str], "UserInfo | Awaitable[UserInfo | None] | None"]
#: Decides one request from its attributes (see ``_rbac.RBACAuthorizer``).
Authorizer = Callable[[_rbac.Attributes], _rbac.Decision]


def name_suffix() -> str:
    """A random ``generateName`` suffix: five characters of upstream's alphabet."""
    return "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))  # noqa: S311


def now_rfc3339() -> str:
    """The current UTC time as the API server writes timestamps (second precision)."""
    return format_kube_time(time.time())


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class APIServer:
    """Resources, objects and write semantics of the emulated API server.

    Args:
        history_size: events kept per resource for watch resumes; older resumes get 410.
        watch_queue_size: events a watcher may fall behind before its stream is closed with 410.
        clock: epoch seconds for grace periods and ``deletionTimestamp`` (default: the wall
            clock; pass a ``ManualClock`` to move time in tests).
    """

    def __init__(
        self,
        *,
        history_size: int = 10_000,
        watch_queue_size: int = 50_000,
        clock: Clock | None = None,
    ) -> None:
        self.store = Store(history_size=history_size)
        self.clock: Clock = clock or system_clock
        #: Deadlines on :attr:`clock` (grace periods); see ``_timers.py``.
        self.timers = Timers(self.clock)
        #: Owner references and cascading deletion; see ``_gc.py``.
        self.gc = _gc.GarbageCollector(self)
        #: uid -> when (on :attr:`clock`) a graceful deletion's grace period ends.
        self.grace_deadlines: dict[str, float] = {}
        self.watch_queue_size = watch_queue_size
        self._resources: dict[tuple[str, str], ResourceType] = {}
        self._admission: list[tuple[tuple[str, str] | None, AdmissionHook]] = []
        self._observers: list[Observer] = []
        self.subresource_handlers: dict[tuple[str, str, str, str], Handler] = {}
        self.routes: dict[tuple[str, str], tuple[Handler, bool]] = {}
        self.authenticator: Authenticator | None = None
        self.authorizer: Authorizer | None = None
        self._notifications: asyncio.Queue[tuple[str, ResourceType, bytes]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._reaping: set[str] = set()
        for resource in (*BUILTIN_RESOURCES, *WORKLOAD_RESOURCES, *_rbac.RBAC_RESOURCES):
            self.add_resource(resource)
        _lifecycle.install_binding(self, now_rfc3339)
        _rbac_validation.install(self)
        _reviews.install(self)
        # One set of events behind both event APIs, stored in core form like the real server.
        self.store.share(
            SharedStorage(
                storage=("", "events"),
                view=("events.k8s.io", "events"),
                to_view=to_events_v1_event,
                to_storage=to_core_event,
            )
        )
        stamp = now_rfc3339()
        for name in _SYSTEM_NAMESPACES:
            self._commit(
                self.resource("namespaces"),
                "ADDED",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "uid": str(uuid.uuid4()),
                        "creationTimestamp": stamp,
                        "labels": {"kubernetes.io/metadata.name": name},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
                None,
                dry_run=False,
            )
        for resource, obj in _rbac_policy.bootstrap_objects(stamp):
            self._commit(resource, "ADDED", obj, None, dry_run=False)

    # ------------------------------------------------------------------ registry

    def add_resource(self, resource: ResourceType) -> None:
        """Serve ``resource`` (replacing a resource with the same group and plural)."""
        self._resources[(resource.group, resource.plural)] = resource
        if not resource.virtual:
            self.store.add_resource(resource)

    def remove_resource(self, resource: ResourceType) -> None:
        """Stop serving ``resource``."""
        self._resources.pop((resource.group, resource.plural), None)
        self.store.remove_resource(resource)

    @property
    def resources(self) -> list[ResourceType]:
        """Every served resource."""
        return list(self._resources.values())

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at ``/apis/group/version/plural`` (``/api/v1`` for core)."""
        resource = self._resources.get((group, plural))
        if resource is None or resource.version != version:
            return None
        return resource

    def resource(self, spec: str | ResourceType) -> ResourceType:
        """Resolve ``pods``, ``po``, ``pod``, ``Pod`` or ``leases.coordination.k8s.io``."""
        if isinstance(spec, ResourceType):
            return spec
        if spec in ("", "namespaces") or "." not in spec:
            candidates = [r for r in self._resources.values() if r.group == ""] + [
                r for r in self._resources.values() if r.group != ""
            ]
            name = spec
        else:
            name, group = spec.split(".", 1)
            candidates = [r for r in self._resources.values() if r.group == group]
        lowered = name.lower()
        for match in (
            lambda r: r.plural == lowered,
            lambda r: r.singular == lowered or r.kind.lower() == lowered,
            lambda r: lowered in r.short_names,
        ):
            for resource in candidates:
                if match(resource):
                    return resource
        raise APIError(404, "NotFound", f'the server doesn\'t have a resource type "{spec}"')

    def resource_for_kind(self, api_version: str, kind: str) -> ResourceType:
        """The resource that stores objects of ``apiVersion`` / ``kind``."""
        for resource in self._resources.values():
            if resource.api_version == api_version and resource.kind == kind:
                return resource
        raise APIError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    # ------------------------------------------------------------------ plug-in points

    def add_admission(self, resource: str, hook: AdmissionHook, *, group: str = "") -> None:
        """Run ``hook`` before every write of ``resource`` (plural; ``"*"`` for all).

        The hook gets an :class:`AdmissionRequest`; it may mutate ``request.object`` or raise
        :class:`APIError`. Hooks run in the order they were added, on the serving loop, for
        HTTP and Python-level writes, but not for the server's own cascading deletions.
        """
        self._admission.append((None if resource == "*" else (group, resource), hook))

    def add_observer(self, callback: Observer) -> None:
        """Call ``callback(event_type, resource, obj)`` after each committed change.

        ``event_type`` is ``ADDED``, ``MODIFIED`` or ``DELETED``; ``obj`` is a private copy.
        Callbacks run one at a time in commit order from a background task on the serving
        loop; their own writes are notified after the current callback returns. Exceptions are
        logged and do not stop later notifications.
        """
        self._observers.append(callback)

    def add_subresource(
        self, resource: str, subresource: str, method: str, handler: Handler, *, group: str = ""
    ) -> None:
        """Serve ``METHOD .../{resource}/{name}/{subresource}`` with ``handler``.

        The handler gets an :class:`APIRequest` with ``namespace``, ``name``, ``body`` (decoded
        JSON) and ``user``; it returns ``(status, body)``. The subresource appears in discovery
        as ``{resource}/{subresource}``.
        """
        self.subresource_handlers[(group, resource, subresource, method.upper())] = handler

    def add_virtual_resource(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        *,
        namespaced: bool,
        verbs: Iterable[str] = ("create",),
        handler: Handler,
    ) -> ResourceType:
        """Serve a resource that is never stored (TokenReview): ``POST`` calls ``handler``."""
        resource = ResourceType(
            group=group,
            version=version,
            plural=plural,
            kind=kind,
            namespaced=namespaced,
            singular=kind.lower(),
            verbs=tuple(verbs),
            virtual=True,
        )
        self.add_resource(resource)
        self.subresource_handlers[(group, plural, "", "POST")] = handler
        return resource

    def add_route(
        self, method: str, path: str, handler: Handler, *, anonymous: bool = False
    ) -> None:
        """Serve an exact raw ``path`` (OIDC discovery, JWKS).

        ``anonymous=True`` serves it without authentication (``request.user`` may be None).
        """
        self.routes[(method.upper(), path)] = (handler, anonymous)

    def set_authenticator(self, fn: Authenticator) -> None:
        """Map bearer tokens other than the admin token to users (``None``: reject, 401)."""
        self.authenticator = fn

    def set_authorizer(self, fn: Authorizer | None) -> None:
        """Decide every HTTP request with ``fn`` (``None``: allow everything).

        ``fn(attributes)`` returns a ``Decision``; a denial is answered with 403 before the
        request reaches its resource. :class:`KubeEmulator` installs RBAC here by default.
        """
        self.authorizer = fn

    async def authenticate(self, token: str, admin_token: str) -> UserInfo | None:
        """The user behind a bearer token, or ``None``."""
        if token == admin_token:
            return ADMIN_USER
        if self.authenticator is None:
            return None
        result = await _maybe_await(self.authenticator(token))
        return result if isinstance(result, UserInfo) else None

    # ------------------------------------------------------------------ notifications

    def _notify(self, kind: str, resource: ResourceType, raw: bytes) -> None:
        if not self._observers:
            return
        if self._notifications is None:
            self._notifications = asyncio.Queue()
            self._pump = asyncio.get_running_loop().create_task(self._run_observers())
        self._notifications.put_nowait((kind, resource, raw))

    async def _run_observers(self) -> None:
        assert self._notifications is not None
        queue = self._notifications
        while True:
            kind, resource, raw = await queue.get()
            try:
                obj = json.loads(raw)
                for observer in list(self._observers):
                    try:
                        await _maybe_await(observer(kind, resource, obj))
                    except Exception:
                        _log.exception(
                            "observer %r failed on %s %s", observer, kind, resource.plural
                        )
            finally:
                queue.task_done()

    async def settle(self) -> None:
        """Wait until observers have handled every change so far (and what they wrote).

        Deadlines that :attr:`clock` has passed (grace periods) fire first, and the garbage
        collector finishes its work, so a test that advanced a manual clock sees the result.
        """
        while True:
            await self.timers.run_due()
            if self._notifications is not None:
                await self._notifications.join()
            await self.gc.join()
            await asyncio.sleep(0)
            if (self._notifications is None or self._notifications.empty()) and self.gc.idle:
                return

    # ------------------------------------------------------------------ commits

    def _after_commit(self, kind: str, resource: ResourceType, stored: Stored) -> None:
        key = (resource.group, resource.plural)
        if key == _CRD_KEY:
            self._crd_changed(kind, stored.obj)
        self.gc.committed(kind, resource, stored.obj)
        if kind == "DELETED":
            self.grace_deadlines.pop(stored.obj["metadata"].get("uid", ""), None)
        self._notify(kind, resource, stored.raw)
        if kind == "DELETED" and resource.namespaced:
            namespace = stored.obj["metadata"].get("namespace", "")
            if namespace in self._reaping:
                self._reap_namespace(namespace)

    def _commit(
        self,
        resource: ResourceType,
        kind: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        dry_run: bool,
    ) -> Stored:
        if dry_run:
            obj = self.store.normalized(resource, obj)
            return Stored(obj, encode(obj), self.store.rv)
        stored = self.store.commit(resource, kind, obj, old)
        self._after_commit(kind, resource, stored)
        return stored

    def commit(
        self, resource: ResourceType, kind: str, obj: dict[str, Any], old: dict[str, Any]
    ) -> Stored:
        """Commit a change the server makes itself, past admission and validation (bindings)."""
        return self._commit(resource, kind, obj, old, dry_run=False)

    def _crd_changed(self, kind: str, crd: Mapping[str, Any]) -> None:
        served = _crd.crd_resource(crd)
        if kind == "DELETED":
            existing = self._resources.get((served.group, served.plural))
            if existing is not None:
                store = self.store.of(existing)
                for stored in list(store.objects.values()):
                    obj = stored.copy()
                    self._commit(existing, "DELETED", obj, stored.obj, dry_run=False)
                self.remove_resource(existing)
        else:
            self.add_resource(served)

    # ------------------------------------------------------------------ lookups

    def _key(self, resource: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if resource.namespaced else "", name)

    def get_stored(self, resource: ResourceType, name: str, namespace: str | None) -> Stored:
        """The committed object, or 404."""
        if resource.virtual:
            raise APIError.method_not_allowed()
        stored = self.store.of(resource).objects.get(self._key(resource, namespace, name))
        if stored is None:
            raise APIError.not_found(resource.group, resource.plural, name)
        return stored

    def _check_namespace(self, resource: ResourceType, namespace: str | None) -> None:
        if not resource.namespaced:
            return
        if not namespace:
            raise APIError.bad_request("the namespace of the object is required")
        stored = self.store.of(self.resource("namespaces")).objects.get(("", namespace))
        if stored is None:
            raise APIError.not_found("", "namespaces", namespace)
        if stored.obj.get("metadata", {}).get("deletionTimestamp"):
            raise APIError(
                403,
                "Forbidden",
                f'{resource.plural} "{namespace}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {
                    "name": namespace,
                    "kind": resource.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "field": "metadata.namespace",
                            "message": f"namespace {namespace} is being terminated",
                        }
                    ],
                },
            )

    async def _admit(self, request: AdmissionRequest) -> None:
        key = (request.resource.group, request.resource.plural)
        for scope, hook in list(self._admission):
            if scope is None or scope == key:
                await _maybe_await(hook(request))

    # ------------------------------------------------------------------ validation

    def _validate(
        self,
        resource: ResourceType,
        obj: dict[str, Any],
        name: str,
        *,
        strict: bool = False,
        old: Mapping[str, Any] | None = None,
    ) -> None:
        """Prune (CRDs) and validate ``obj``; raise 422 naming every problem.

        ``strict`` (``fieldValidation=Strict``) turns pruned unknown fields into a 400.
        """
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            raise APIError.bad_request("metadata must be an object")
        problems = metadata_problems(metadata, resource.name_rule)
        problems.extend(_gc.owner_reference_problems(metadata))
        if resource.schema is not None:
            dropped: list[str] = []
            prune(resource.schema, obj, dropped=dropped)
            if strict and dropped:
                raise APIError.bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{d}"' for d in dropped)
                )
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            problems.extend(validate(resource.schema, body))
        elif (resource.group, resource.plural) == _CRD_KEY:
            problems.extend(_crd.crd_problems(obj))
        else:
            problems.extend(
                builtin_problems(resource.group, resource.plural, obj, updating=old is not None)
            )
            if old is not None:
                problems.extend(builtin_update_problems(resource.group, resource.plural, obj, old))
        for text in finalizer_warnings(metadata):
            _decode.warn(text)
        if problems:
            raise APIError.invalid(resource.kind, resource.group, str(name), problems)

    def _prepare_body(
        self,
        resource: ResourceType,
        obj: dict[str, Any],
        namespace: str | None,
        *,
        strict: bool = False,
        previous: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise APIError.bad_request("the body of the request must be a JSON object")
        api_version = obj.setdefault("apiVersion", resource.api_version)
        kind = obj.setdefault("kind", resource.kind)
        if api_version != resource.api_version or kind != resource.kind:
            raise APIError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({resource.api_version})"
                if api_version != resource.api_version
                else f"the kind in the data ({kind}) does not match the expected kind "
                f"({resource.kind})"
            )
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise APIError.bad_request("metadata must be an object")
        if resource.namespaced:
            body_ns = metadata.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise APIError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace or body_ns or ""
        else:
            metadata.pop("namespace", None)
        if resource.schema is None and not resource.virtual:
            # Built-in kinds are decoded into their Go types on a real server: unknown fields
            # dropped (warned, or 400 under Strict), wrong types refused, defaults set.
            _decode.decode(
                resource.api_version, resource.kind, obj, strict=strict, previous=previous
            )
            builtin_defaults(resource.group, resource.plural, obj)
        return obj

    # ------------------------------------------------------------------ writes

    async def create(
        self,
        resource: str | ResourceType,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        user: UserInfo = ADMIN_USER,
        dry_run: bool = False,
        keep_status: bool = False,
        field_manager: str = DEFAULT_FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Create an object (as ``POST``); returns the stored object.

        ``keep_status=True`` keeps a ``status`` the real server would reset on create (test
        setup: a Running pod with an IP). ``namespace`` defaults to ``metadata.namespace``.
        """
        stored = await self.create_stored(
            self.resource(resource),
            copy.deepcopy(dict(obj)),
            namespace=namespace,
            user=user,
            dry_run=dry_run,
            keep_status=keep_status,
            field_manager=field_manager,
        )
        return stored.copy()

    async def create_stored(
        self,
        resource: ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str | None,
        user: UserInfo,
        dry_run: bool = False,
        keep_status: bool = False,
        strict: bool = False,
        field_manager: str | None = DEFAULT_FIELD_MANAGER,
    ) -> Stored:
        """:meth:`create` taking ownership of ``obj`` and returning the committed record.

        ``field_manager`` is recorded as an ``Update`` in ``managedFields``; ``None`` keeps the
        ``managedFields`` the body carries (server-side apply records its own).
        """
        if resource.virtual:
            raise APIError.method_not_allowed()
        obj = self._prepare_body(resource, obj, namespace, strict=strict)
        metadata = obj["metadata"]
        namespace = metadata.get("namespace") if resource.namespaced else None
        generated = not metadata.get("name") and bool(metadata.get("generateName"))
        if generated:
            metadata["name"] = f"{metadata['generateName']}{name_suffix()}"
        name = str(metadata.get("name") or "")
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(field, None)
        if resource.has_status and not keep_status:
            obj.pop("status", None)
        self._defaults(resource, obj)
        await self._admit(
            AdmissionRequest("CREATE", resource, obj, None, namespace, name, None, user, dry_run)
        )
        self._validate(resource, obj, name, strict=strict)
        self._check_namespace(resource, namespace)
        objects = self.store.of(resource).objects
        if generated:
            # A taken generated name is retried with new suffixes, as upstream does, before
            # the client hears of it.
            for _ in range(_GENERATE_ATTEMPTS - 1):
                if self._key(resource, namespace, name) not in objects:
                    break
                name = metadata["name"] = f"{metadata['generateName']}{name_suffix()}"
            else:
                if self._key(resource, namespace, name) in objects:
                    raise APIError.generate_name_conflict(
                        resource.group, resource.plural, metadata["generateName"]
                    )
        if self._key(resource, namespace, name) in objects:
            raise APIError.already_exists(resource.group, resource.plural, name)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if _update_rules.has_generation(resource):
            metadata["generation"] = 1
        if (resource.group, resource.plural) == _CRD_KEY:
            obj["status"] = _crd.crd_status(obj, metadata["creationTimestamp"])
        if field_manager is not None:
            self._record_update(resource, obj, None, field_manager, None)
        return self._commit(resource, "ADDED", obj, None, dry_run=dry_run)

    def _record_update(
        self,
        resource: ResourceType,
        obj: dict[str, Any],
        old: Mapping[str, Any] | None,
        field_manager: str,
        subresource: str | None,
    ) -> None:
        _managed_fields.record_update(
            obj,
            old,
            manager=field_manager,
            api_version=resource.api_version,
            subresource=subresource,
            has_status=resource.has_status,
            by_key=resource.schema is None,
            now=now_rfc3339(),
        )

    def _defaults(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        key = (resource.group, resource.plural)
        if key == _NAMESPACE_KEY:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            name = obj["metadata"].get("name")
            if isinstance(name, str):
                obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        elif key == ("", "pods"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
            spec.setdefault("securityContext", {})
            for container in spec.get("containers") or ():
                if isinstance(container, dict):
                    image = str(container.get("image", ""))
                    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
                    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
                    container.setdefault("terminationMessagePath", "/dev/termination-log")
                    container.setdefault("terminationMessagePolicy", "File")
                    container.setdefault("resources", {})
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            obj["status"].setdefault("qosClass", "BestEffort")
        elif key == ("", "secrets"):
            obj.setdefault("type", "Opaque")

    async def update(
        self,
        resource: str | ResourceType,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        user: UserInfo = ADMIN_USER,
        dry_run: bool = False,
        field_manager: str = DEFAULT_FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Replace an object (as ``PUT``); a stale ``resourceVersion`` is a 409 Conflict."""
        rtype = self.resource(resource)
        body = copy.deepcopy(dict(obj))
        name = str(body.get("metadata", {}).get("name", ""))
        ns = namespace or body.get("metadata", {}).get("namespace")
        stored = await self.update_stored(
            rtype,
            name,
            ns,
            body,
            subresource=subresource,
            user=user,
            dry_run=dry_run,
            field_manager=field_manager,
        )
        return stored.copy()

    async def update_stored(
        self,
        resource: ResourceType,
        name: str,
        namespace: str | None,
        obj: dict[str, Any],
        *,
        subresource: str | None,
        user: UserInfo,
        dry_run: bool = False,
        strict: bool = False,
        field_manager: str | None = DEFAULT_FIELD_MANAGER,
    ) -> Stored:
        """:meth:`update` taking ownership of ``obj`` (``field_manager``: see ``create``)."""
        current = self.get_stored(resource, name, namespace)
        obj = self._prepare_body(resource, obj, namespace, strict=strict, previous=current.obj)
        metadata = obj["metadata"]
        if metadata.get("name", name) != name:
            raise APIError.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        _update_rules.check_put(resource, name, namespace, metadata, current.obj["metadata"])
        wanted_rv = metadata.get("resourceVersion")
        if wanted_rv and wanted_rv != current.obj["metadata"]["resourceVersion"]:
            raise APIError.conflict(
                resource.group,
                resource.plural,
                name,
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )
        old = current.obj
        if subresource == "status":
            new = current.copy()
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
        elif resource.has_status:
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        metadata = obj["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
        ):
            if field in old["metadata"]:
                metadata[field] = old["metadata"][field]
            else:
                metadata.pop(field, None)
        if resource.namespaced:
            metadata["namespace"] = old["metadata"].get("namespace", "")
        metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
        await self._admit(
            AdmissionRequest(
                "UPDATE",
                resource,
                obj,
                old,
                namespace if resource.namespaced else None,
                name,
                subresource,
                user,
                dry_run,
            )
        )
        if (resource.group, resource.plural) == ("", "pods") and subresource is None:
            immutable = _lifecycle.pod_update_problems(old, obj)
            if immutable:
                raise APIError.invalid(resource.kind, resource.group, name, immutable)
        if (resource.group, resource.plural) == _CRD_KEY:
            immutable = _crd.crd_update_problems(old, obj)
            if immutable:
                # Reported together with what else is wrong, as the real server does.
                problems = [*immutable, *_crd.crd_problems(obj)]
                raise APIError.invalid(resource.kind, resource.group, name, problems)
        self._validate(resource, obj, name, strict=strict, old=old)
        if (resource.group, resource.plural) == _CRD_KEY:
            obj["status"] = old.get("status", {}) if subresource != "status" else obj.get("status")
        deleting = bool(old["metadata"].get("deletionTimestamp"))
        finalizers = metadata.get("finalizers") or []
        if deleting:
            added = set(finalizers) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise APIError.invalid(
                    resource.kind,
                    resource.group,
                    name,
                    [
                        {
                            "reason": "FieldValueForbidden",
                            "field": "metadata.finalizers",
                            "message": "Forbidden: no new finalizers can be added if the object is "
                            "being deleted, found new finalizers " + json.dumps(sorted(added)),
                        }
                    ],
                )
            if not finalizers and not old["metadata"].get("deletionGracePeriodSeconds"):
                # A pod still in its grace period waits for its kubelet, finalizers or not.
                return self._commit(resource, "DELETED", obj, old, dry_run=dry_run)
        generation = _update_rules.next_generation(resource, obj, old)
        if generation is None:
            metadata.pop("generation", None)
        else:
            metadata["generation"] = generation
        if field_manager is not None:
            self._record_update(resource, obj, old, field_manager, subresource)
        elif not metadata.get("managedFields") and old["metadata"].get("managedFields"):
            metadata["managedFields"] = copy.deepcopy(old["metadata"]["managedFields"])
        if obj == old:
            return current
        return self._commit(resource, "MODIFIED", obj, old, dry_run=dry_run)

    async def patch(
        self,
        resource: str | ResourceType,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
        user: UserInfo = ADMIN_USER,
        dry_run: bool = False,
        field_manager: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Patch an object; ``patch_type`` is ``json``, ``merge``, ``strategic`` or ``apply``.

        ``apply`` needs a ``field_manager``, as on the real server, and ``force`` to take
        fields other managers own; other patches are recorded as ``Update`` operations of
        ``field_manager`` (default ``kube-emulator``).
        """
        stored = await self.patch_stored(
            self.resource(resource),
            name,
            namespace,
            copy.deepcopy(patch),
            patch_type=patch_type,
            subresource=subresource,
            user=user,
            dry_run=dry_run,
            field_manager=field_manager,
            force=force,
        )
        return stored.copy()

    async def patch_stored(
        self,
        resource: ResourceType,
        name: str,
        namespace: str | None,
        patch: Any,
        *,
        patch_type: str,
        subresource: str | None,
        user: UserInfo,
        dry_run: bool = False,
        strict: bool = False,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Stored:
        """:meth:`patch` taking ownership of ``patch``.

        Server-side apply (``apply``) creates a missing object, and otherwise merges the
        configuration (strategic merge for built-in kinds, JSON merge for custom resources)
        after removing the fields this ``field_manager`` applied before and no longer applies
        (unless another manager owns them too). Changing fields another manager owns is a 409
        unless ``force`` (see ``_managed_fields.py``).
        """
        if patch_type == "apply":
            return await self._apply(
                resource,
                name,
                namespace,
                patch,
                subresource=subresource,
                user=user,
                dry_run=dry_run,
                strict=strict,
                field_manager=field_manager,
                force=force,
            )
        if patch_type not in PATCH_TYPES:
            raise APIError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type!r}")
        builtin = resource.schema is None
        if patch_type == "strategic" and not builtin:
            raise APIError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml",
            )
        base = self.get_stored(resource, name, namespace).copy()
        if patch_type == "json":
            patched = apply_json_patch(base, patch)
        elif patch_type == "merge":
            patched = apply_merge_patch(base, patch)
        else:
            patched = apply_strategic_merge_patch(base, patch)
        return await self._update_patched(
            resource,
            name,
            namespace,
            patched,
            subresource=subresource,
            user=user,
            dry_run=dry_run,
            strict=strict,
            field_manager=field_manager or DEFAULT_FIELD_MANAGER,
        )

    async def _apply(
        self,
        resource: ResourceType,
        name: str,
        namespace: str | None,
        config: Any,
        *,
        subresource: str | None,
        user: UserInfo,
        dry_run: bool,
        strict: bool,
        field_manager: str | None,
        force: bool = False,
    ) -> Stored:
        if not field_manager:
            raise APIError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        if not isinstance(config, dict):
            raise APIError.bad_request("apply patch must be an object")
        if resource.virtual:
            raise APIError.method_not_allowed()
        metadata = config.setdefault("metadata", {})
        for field in ("resourceVersion", "managedFields"):
            metadata.pop(field, None)
        if not isinstance(metadata, dict):
            raise APIError.bad_request("metadata must be an object")
        by_key = resource.schema is None
        if by_key:
            # Decoded before its fields are counted: an unknown field is nobody's.
            _decode.decode(resource.api_version, resource.kind, config, strict=strict)
        merge = apply_strategic_merge_patch if by_key else apply_merge_patch
        current = self.store.of(resource).objects.get(self._key(resource, namespace, name))
        if current is None and subresource is not None:
            raise APIError.not_found(resource.group, resource.plural, name)
        if current is None:
            metadata.setdefault("name", name)
        live: Mapping[str, Any] = current.obj if current is not None else {}
        patched = _managed_fields.apply_config(
            live,
            config,
            manager=field_manager,
            api_version=resource.api_version,
            subresource=subresource,
            has_status=resource.has_status,
            by_key=by_key,
            force=force,
            now=now_rfc3339(),
            merge=merge,
        )
        if current is None:
            return await self.create_stored(
                resource,
                patched,
                namespace=namespace,
                user=user,
                dry_run=dry_run,
                strict=strict,
                field_manager=None,
            )
        return await self._update_patched(
            resource,
            name,
            namespace,
            patched,
            subresource=subresource,
            user=user,
            dry_run=dry_run,
            strict=strict,
            field_manager=None,
        )

    async def _update_patched(
        self,
        resource: ResourceType,
        name: str,
        namespace: str | None,
        patched: Any,
        *,
        subresource: str | None,
        user: UserInfo,
        dry_run: bool,
        strict: bool,
        field_manager: str | None,
    ) -> Stored:
        if not isinstance(patched, dict):
            raise APIError.bad_request("the patch produced something that is not an object")
        if isinstance(patched.get("metadata"), dict):
            current = self.get_stored(resource, name, namespace).obj["metadata"]
            _update_rules.check_patch(resource, name, patched["metadata"], current)
        return await self.update_stored(
            resource,
            name,
            namespace,
            patched,
            subresource=subresource,
            user=user,
            dry_run=dry_run,
            strict=strict,
            field_manager=field_manager,
        )

    async def delete(
        self,
        resource: str | ResourceType,
        name: str,
        *,
        namespace: str | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        user: UserInfo = ADMIN_USER,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object; with finalizers or a grace period it only gets a ``deletionTimestamp``.

        Pods bound to a node are deleted gracefully (``grace_period_seconds``, default the pod's
        ``terminationGracePeriodSeconds``; 0 deletes at once). ``propagation_policy`` is
        ``Background`` (default), ``Foreground`` or ``Orphan``, as in ``DeleteOptions``.
        Returns the object as last stored (with ``deletionTimestamp`` if it lingers).
        """
        stored = await self.delete_stored(
            self.resource(resource),
            name,
            namespace,
            preconditions=preconditions,
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            user=user,
            dry_run=dry_run,
        )
        return stored.copy()

    async def delete_stored(
        self,
        resource: ResourceType,
        name: str,
        namespace: str | None,
        *,
        preconditions: Mapping[str, Any] | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        user: UserInfo = ADMIN_USER,
        dry_run: bool = False,
    ) -> Stored:
        """:meth:`delete` returning the committed record."""
        current = self.get_stored(resource, name, namespace)
        meta = current.obj["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != meta.get(field):
                raise APIError.conflict(
                    resource.group,
                    resource.plural,
                    name,
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in object "
                    f"meta: {meta.get(field)}",
                )
        await self._admit(
            AdmissionRequest(
                "DELETE",
                resource,
                None,
                current.obj,
                namespace if resource.namespaced else None,
                name,
                None,
                user,
                dry_run,
            )
        )
        return self.delete_now(
            resource,
            current,
            grace_period_seconds,
            dry_run=dry_run,
            propagation_policy=propagation_policy,
        )

    def delete_now(
        self,
        resource: ResourceType,
        current: Stored,
        grace_period_seconds: int | None = None,
        *,
        dry_run: bool = False,
        propagation_policy: str | None = None,
    ) -> Stored:
        """Delete without admission (the server's own cascades).

        Honours finalizers, pod grace periods and the garbage collector's finalizers
        (``propagation_policy``); see :meth:`delete`.
        """
        obj = current.copy()
        metadata = obj["metadata"]
        is_namespace = (resource.group, resource.plural) == _NAMESPACE_KEY
        is_pod = (resource.group, resource.plural) == ("", "pods")
        grace = _lifecycle.pod_grace_period(current.obj, grace_period_seconds) if is_pod else 0
        finalizers = list(metadata.get("finalizers") or [])
        wanted = _gc.finalizer_for_policy(propagation_policy)
        if wanted is not None and wanted not in finalizers:
            # The other policy's finalizer goes: the latest DELETE decides, as upstream.
            finalizers = [f for f in finalizers if f not in (_gc.FOREGROUND, _gc.ORPHAN)]
            finalizers.append(wanted)
        if metadata.get("deletionTimestamp"):
            previous = int(metadata.get("deletionGracePeriodSeconds") or 0)
            shorter = grace_period_seconds is not None and grace < previous
            if not shorter and finalizers == list(metadata.get("finalizers") or []):
                return current
            if shorter:
                # A DELETE may only bring a pending deletion forward (0 forces it).
                self._start_grace(metadata, grace, dry_run)
                if grace == 0 and not finalizers:
                    return self._commit(resource, "DELETED", obj, current.obj, dry_run=dry_run)
            metadata["finalizers"] = finalizers
            return self._commit(resource, "MODIFIED", obj, current.obj, dry_run=dry_run)
        if finalizers or grace or is_namespace:
            self._start_grace(metadata, grace, dry_run)
            if finalizers:
                metadata["finalizers"] = finalizers
            if is_namespace:
                obj.setdefault("status", {})["phase"] = "Terminating"
            stored = self._commit(resource, "MODIFIED", obj, current.obj, dry_run=dry_run)
            if is_namespace and not dry_run:
                self._reaping.add(metadata["name"])
                asyncio.get_running_loop().call_soon(self._reap_namespace, metadata["name"])
            return stored
        return self._commit(resource, "DELETED", obj, current.obj, dry_run=dry_run)

    def _start_grace(self, metadata: dict[str, Any], grace: int, dry_run: bool) -> None:
        _update_rules.bump_on_deletion(metadata)
        metadata["deletionTimestamp"] = self._timestamp(grace)
        metadata["deletionGracePeriodSeconds"] = grace
        if grace and not dry_run and metadata.get("uid"):
            # Exact, unlike the timestamp's whole seconds: the kubelet ends the pod on time.
            self.grace_deadlines[metadata["uid"]] = self.clock() + grace

    def _timestamp(self, after: float = 0) -> str:
        """An RFC 3339 timestamp ``after`` seconds from now on :attr:`clock`."""
        return format_kube_time(self.clock() + after)

    def _reap_namespace(self, namespace: str) -> None:
        """Delete everything in a terminating namespace; then the namespace itself."""
        if namespace not in self._reaping:
            return
        remaining = 0
        for store in list(self.store.resources.values()):
            if not store.resource.namespaced:
                continue
            for key in [k for k in store.objects if k[0] == namespace]:
                stored = store.objects.get(key)
                if stored is None:
                    continue
                remaining += 1
                if not stored.obj["metadata"].get("deletionTimestamp"):
                    self.delete_now(store.resource, stored)
        left = sum(
            1
            for store in self.store.resources.values()
            if store.resource.namespaced
            for k in store.objects
            if k[0] == namespace
        )
        if left:
            return
        self._reaping.discard(namespace)
        ns_resource = self.resource("namespaces")
        stored = self.store.of(ns_resource).objects.get(("", namespace))
        if stored is not None and not stored.obj["metadata"].get("finalizers"):
            obj = stored.copy()
            obj.get("spec", {}).pop("finalizers", None)
            self._commit(ns_resource, "DELETED", obj, stored.obj, dry_run=False)
        del remaining

    # ------------------------------------------------------------------ reads

    async def get(
        self, resource: str | ResourceType, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        """The object, or :class:`APIError` 404."""
        stored = self.get_stored(self.resource(resource), name, namespace)
        return stored.copy()

    def select(
        self,
        resource: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Callable[[Mapping[str, Any]], bool] | None:
        """A predicate for selectors (``None`` when nothing is selected out)."""
        checks: list[Callable[[Mapping[str, Any]], bool]] = []
        if label_selector:
            matches = parse_label_selector(label_selector)
            checks.append(lambda obj: matches(obj["metadata"].get("labels") or {}))
        if field_selector:
            fields = FieldSelector.parse(field_selector, resource.group, resource.plural)
            checks.append(fields.matches)
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]
        return lambda obj: all(check(obj) for check in checks)

    async def list(
        self,
        resource: str | ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Objects of a resource, in (namespace, name) order, optionally filtered."""
        rtype = self.resource(resource)
        predicate = self.select(rtype, label_selector=label_selector, field_selector=field_selector)
        store = self.store.of(rtype)
        result = []
        for key in store.sorted_keys():
            if namespace and rtype.namespaced and key[0] != namespace:
                continue
            stored = store.objects[key]
            if predicate is None or predicate(stored.obj):
                result.append(stored.copy())
        return result
