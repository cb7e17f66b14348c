"""An informer: a list + watch cache of one resource, with indexes and event handlers.

Like client-go's shared informer, minus the sharing: :meth:`Informer.run` lists the collection
(in pages), then watches from the list's resourceVersion; a stream that ends is resumed from the
last resourceVersion seen (events or bookmarks); a ``410 Gone`` on resume means the server's
window moved on, so it lists again and tells the handlers what changed in between
(``ADDED``/``MODIFIED``/``DELETED`` computed from the difference). Other errors back off
exponentially and retry; the informer never gives up until :meth:`Informer.stop`.

Objects are the API server's JSON, decoded into plain ``dict``: treat them as read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs

from podidentity.errors import KubeError, KubeGoneError
from podidentity.kube._client import KubeClient
from podidentity.kube._resources import ApiResource

__all__ = ["EventType", "IndexFunc", "Informer", "InformerEvent", "object_key"]

_log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
"""The type of an :class:`InformerEvent`, as in a watch event."""
IndexFunc = Callable[[Mapping[str, Any]], Iterable[str]]
"""Maps an object to the values it is indexed under (none, one or several)."""


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's key)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


@attrs.frozen
class InformerEvent:
    """A change the informer's cache went through.

    Attributes:
        type: ``ADDED``, ``MODIFIED`` or ``DELETED``.
        obj: the object after the change (for ``DELETED``, its last known state).
        old: the object before the change (``None`` for ``ADDED``).
        key: :func:`object_key` of the object.
    """

    type: EventType
    obj: Mapping[str, Any]
    old: Mapping[str, Any] | None
    key: str


Handler = Callable[[InformerEvent], None]


class Informer:
    """Keeps a local copy of one resource in sync with the API server.

    Args:
        client: the :class:`~podidentity.kube.KubeClient` to list and watch with.
        resource: which resource (``podidentity.kube.PODS``, ``ASSIGNED_IDENTITIES``, ...).
        namespace: watch one namespace; ``None`` watches all.
        label_selector: server-side label filter (kubectl syntax).
        field_selector: server-side field filter (``spec.nodeName=node-1``).
        indexers: named index functions; query them with :meth:`by_index`.
        page_size: objects per list page.
        watch_timeout: seconds the server keeps one watch open before the informer resumes.
        min_backoff: first delay after an error; doubles up to ``max_backoff``.
        max_backoff: longest delay between retries.
        sleep: awaitable sleep (inject one in tests).
    """

    def __init__(
        self,
        client: KubeClient,
        resource: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        indexers: Mapping[str, IndexFunc] | None = None,
        page_size: int = 500,
        watch_timeout: int = 300,
        min_backoff: float = 0.05,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._items: dict[str, Mapping[str, Any]] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        self._indexed: dict[str, dict[str, tuple[str, ...]]] = {}
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resource_version = ""
        self.lists = 0
        """How many times the informer has listed (1 + relists after 410 or errors)."""
        self.watches = 0
        """How many watch streams it has opened."""

    def __repr__(self) -> str:
        return f"Informer({self.resource.plural}, items={len(self._items)})"

    # -- configuration -------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call ``handler`` for every change from now on, after the cache is updated.

        Handlers run on the event loop, inline: they must be quick and must not block (put a
        key on a queue). An exception in a handler is logged and does not stop the informer.
        Objects already in the cache are replayed as ``ADDED`` events first.
        """
        self._handlers.append(handler)
        for key, obj in list(self._items.items()):
            self._call(handler, InformerEvent("ADDED", obj, None, key))

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add a named index (objects already cached are indexed at once)."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = func
        self._indexes[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    # -- reading the cache ---------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first full list is in the cache."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Return once the first list is in the cache (wrap in ``asyncio.wait_for`` to bound)."""
        await self._synced.wait()

    def get(self, key: str) -> Mapping[str, Any] | None:
        """The cached object with this :func:`object_key`, or ``None``."""
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Mapping[str, Any] | None:
        """The cached object ``namespace/name`` (``name`` alone for cluster-scoped kinds)."""
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def keys(self) -> list[str]:
        """Every cached key."""
        return list(self._items)

    def items(self) -> list[Mapping[str, Any]]:
        """Every cached object."""
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(list(self._items.values()))

    def index_keys(self, index: str, value: str) -> set[str]:
        """Keys of the objects indexed under ``value`` in ``index`` (a copy)."""
        return set(self._indexes[index].get(value, ()))

    def by_index(self, index: str, value: str) -> list[Mapping[str, Any]]:
        """The objects indexed under ``value`` in ``index``."""
        return [self._items[key] for key in self._indexes[index].get(value, ())]

    # -- running -------------------------------------------------------------------------------

    async def __aenter__(self) -> Informer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a background task on the current loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"informer-{self.resource.plural}"
            )
        return self._task

    async def aclose(self) -> None:
        """Stop and wait for the background task."""
        self.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def stop(self) -> None:
        """Ask :meth:`run` to return (call from the informer's event loop)."""
        self._stopping.set()

    async def run(self) -> None:
        """List, then watch and resume, until :meth:`stop`."""
        self._stopping.clear()
        worker = asyncio.ensure_future(self._loop())
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (worker, stopper):
                task.cancel()
            for task in (worker, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _loop(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                failures = 0
            except KubeGoneError:
                _log.info(
                    "%s: resourceVersion %s expired, listing again",
                    self.resource.plural,
                    self.resource_version,
                )
                need_list = True
            except (KubeError, ValueError) as err:  # ValueError: a body that is not JSON
                failures += 1
                delay = min(self.max_backoff, self.min_backoff * 2 ** min(failures - 1, 20))
                delay *= 0.5 + random.random()  # noqa: S311 - jitter, not cryptography
                _log.warning("%s: %s; retrying in %.2fs", self.resource.plural, err, delay)
                need_list = need_list or not self.resource_version
                await self._sleep(delay)

    async def _list(self) -> None:
        items: list[Mapping[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            page = await self.client.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_=token,
            )
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            token = meta.get("continue") or None
            if not token:
                break
        self.lists += 1
        self._replace(items)
        self.resource_version = version
        self._synced.set()

    async def _watch(self) -> None:
        self.watches += 1
        async for event in self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.watch_timeout,
        ):
            kind = event["type"]
            obj = event.get("object") or {}
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if kind in ("ADDED", "MODIFIED"):
                self._upsert(obj)
            elif kind == "DELETED":
                self._remove(object_key(obj), obj)
            if version:
                self.resource_version = version

    # -- cache updates -------------------------------------------------------------------------

    def _replace(self, items: list[Mapping[str, Any]]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key, self._items[key])
        for obj in fresh.values():
            self._upsert(obj)

    def _upsert(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None and _version(old) == _version(obj) and _version(obj):
            return  # a relist returned what we already have: nothing changed
        self._items[key] = obj
        for name in self._indexers:
            self._index_one(name, key, obj)
        self._emit(InformerEvent("ADDED" if old is None else "MODIFIED", obj, old, key))

    def _remove(self, key: str, last: Mapping[str, Any]) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        for name, values in self._indexed.pop(key, {}).items():
            bucket = self._indexes[name]
            for value in values:
                keys = bucket.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del bucket[value]
        self._emit(InformerEvent("DELETED", last or old, old, key))

    def _index_one(self, name: str, key: str, obj: Mapping[str, Any]) -> None:
        bucket = self._indexes[name]
        previous = self._indexed.setdefault(key, {}).get(name, ())
        values = tuple(dict.fromkeys(self._indexers[name](obj)))
        if values == previous:
            return
        for value in previous:
            keys = bucket.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del bucket[value]
        for value in values:
            bucket.setdefault(value, set()).add(key)
        self._indexed[key][name] = values

    def _emit(self, event: InformerEvent) -> None:
        for handler in self._handlers:
            self._call(handler, event)

    def _call(self, handler: Handler, event: InformerEvent) -> None:
        try:
            handler(event)
        except Exception:
            _log.exception(
                "%s: event handler failed on %s %s", self.resource.plural, event.type, event.key
            )


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
