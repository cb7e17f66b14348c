"""Objects, resource versions, the event history and watch fan-out.

The store is the emulator's etcd plus watch cache. Every method runs on the serving loop and
none of them awaits, so each commit is atomic and watchers see events in exactly the order of
their ``resourceVersion``. Each committed object is serialised once, at write time: lists and
watch fan-out concatenate those bytes instead of re-encoding (see ``docs/benchmarks.md``).

A watcher has a bounded queue. A watcher that falls more than ``watch_queue_size`` events behind
is not allowed to hold writers back: its queue is dropped and its stream ends with a 410
``Expired`` ERROR event, which every client handles by re-listing (the same thing a real API
server does when a watcher cannot keep up with its watch cache).

Two resources may share their objects (:meth:`Store.share`): core/v1 ``events`` and
``events.k8s.io/v1`` ``events`` are one set of objects in two forms, as on the real server. A
commit through either converts the object to the storage form (what the real server keeps) and
from it to the other form, and records both under one resourceVersion. Keeping both forms,
rather than converting on every read, preserves the write-time serialisation above: gets,
lists, continue snapshots, watch replays and field selectors of each API work on its own form
with no per-read conversion.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from ._resources import ResourceType

__all__ = ["Event", "ResourceStore", "SharedStorage", "Store", "Stored", "Watcher", "encode"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

#: Object key inside one resource: (namespace or "", name).
Key = tuple[str, str]


def encode(value: Any) -> bytes:
    """Compact JSON bytes (what the server sends)."""
    return _ENCODER.encode(value).encode()


@attrs.define(slots=True)
class Stored:
    """A committed object; ``obj`` is never mutated after commit (copy before changing)."""

    obj: dict[str, Any]
    raw: bytes
    rv: int

    def copy(self) -> dict[str, Any]:
        """A private, mutable copy of ``obj`` (decoding ``raw`` is cheaper than a deep copy)."""
        return json.loads(self.raw)  # type: ignore[no-any-return]


@attrs.define(slots=True)
class Event:
    """One committed change: what watchers receive."""

    type: str
    rv: int
    obj: dict[str, Any]
    raw: bytes
    old: dict[str, Any] | None = None
    _line: bytes | None = None

    @property
    def line(self) -> bytes:
        """The watch-stream line (one JSON document and a newline), built once."""
        if self._line is None:
            self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.raw + b"}\n"
        return self._line


def _stopped_matching(event: Event, old: dict[str, Any]) -> Event:
    previous = {**old, "metadata": {**old["metadata"], "resourceVersion": str(event.rv)}}
    return Event("DELETED", event.rv, previous, encode(previous), old)


def _line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


#: Converts an object from one form of a shared resource to the other.
Conversion = Callable[[Mapping[str, Any]], dict[str, Any]]


@attrs.frozen
class SharedStorage:
    """Two resources serving one set of objects: ``storage``'s form is the stored one.

    Attributes:
        storage: (group, plural) of the resource whose form is canonical.
        view: (group, plural) of the resource served by conversion.
        to_view: storage form to view form.
        to_storage: view form to storage form.
    """

    storage: tuple[str, str]
    view: tuple[str, str]
    to_view: Conversion
    to_storage: Conversion


#: A watcher's filter: (object) -> bool.
Predicate = Callable[[Mapping[str, Any]], bool]


class Watcher:
    """One open watch: a bounded queue of stream lines plus a wake-up event."""

    def __init__(
        self,
        *,
        namespace: str | None,
        predicate: Predicate | None,
        max_queue: int,
    ) -> None:
        self.namespace = namespace
        self.predicate = predicate
        self.max_queue = max_queue
        self.queue: collections.deque[tuple[Event, str]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.bookmark_requested = False

    def _visible(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)

    def offer(self, event: Event) -> None:
        """Queue ``event`` if this watcher selects it (translating selector transitions)."""
        if self.closed or self.overflowed:
            return
        now = self._visible(event.obj)
        if event.type == "MODIFIED" and self.predicate is not None:
            before = self._visible(event.old)
            if now and not before:
                self._push(event, "ADDED")
            elif before and not now:
                # As the watch cache does: the object as this watcher last saw it (it no longer
                # matches), stamped with the resourceVersion of the change that hid it.
                assert event.old is not None
                self._push(_stopped_matching(event, event.old), "DELETED")
            elif now:
                self._push(event, "MODIFIED")
            return
        if now:
            self._push(event, event.type)

    def _push(self, event: Event, kind: str) -> None:
        if len(self.queue) >= self.max_queue:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.append((event, kind))
        self.wakeup.set()

    def close(self) -> None:
        """End the stream (``drop_watches``)."""
        self.closed = True
        self.wakeup.set()

    def drain(self) -> Iterator[tuple[Event, str]]:
        """Pop every queued item."""
        queue = self.queue
        while queue:
            yield queue.popleft()

    @staticmethod
    def line(event: Event, kind: str) -> bytes:
        """The stream line for a queued item."""
        return event.line if kind == event.type else _line(kind, event.raw)


class ResourceStore:
    """Objects and recent history of one resource (all its namespaces)."""

    def __init__(self, resource: ResourceType, *, history_size: int, window_start: int) -> None:
        self.resource = resource
        self.objects: dict[Key, Stored] = {}
        self.history: collections.deque[Event] = collections.deque()
        self.history_size = history_size
        #: every event with ``rv > window_start`` is still in ``history``.
        self.window_start = window_start
        self.watchers: set[Watcher] = set()
        self._sorted: list[Key] | None = None

    def sorted_keys(self) -> list[Key]:
        """Keys in etcd order (namespace, name), cached until an object is added or removed."""
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def record(self, event: Event) -> None:
        """Append to history (dropping the oldest beyond the window) and fan out."""
        history = self.history
        history.append(event)
        while len(history) > self.history_size:
            self.window_start = history.popleft().rv
        for watcher in self.watchers:
            watcher.offer(event)

    def events_after(self, rv: int) -> list[Event] | None:
        """Events with ``resourceVersion > rv``, or ``None`` if the window no longer has them."""
        if rv < self.window_start:
            return None
        found: list[Event] = []
        for event in reversed(self.history):
            if event.rv <= rv:
                break
            found.append(event)
        found.reverse()
        return found

    def snapshot(self, rv: int) -> tuple[Mapping[Key, Stored], list[Key]] | None:
        """The objects as they were at ``rv`` and their sorted keys (for continue pages).

        Built by undoing the history after ``rv``: the first later event of each key tells
        what the key held at ``rv`` (nothing, for ``ADDED``; its ``old`` object otherwise).
        ``None`` when the window no longer reaches back to ``rv``.
        """
        events = self.events_after(rv)
        if events is None:
            return None
        if not events:
            return self.objects, self.sorted_keys()
        before: dict[Key, dict[str, Any] | None] = {}
        for event in events:
            metadata = event.obj["metadata"]
            key = (metadata.get("namespace", "") or "", metadata["name"])
            if key not in before:
                before[key] = None if event.type == "ADDED" else event.old
        objects = dict(self.objects)
        for key, old in before.items():
            if old is None:
                objects.pop(key, None)
            else:
                objects[key] = Stored(old, encode(old), int(old["metadata"]["resourceVersion"]))
        return objects, sorted(objects)

    def expire(self, rv: int) -> None:
        """Forget history up to ``rv`` (resumes from before it get 410)."""
        self.history.clear()
        self.window_start = rv

    def invalidate_order(self) -> None:
        """An object was added or removed: rebuild the sorted key list on the next list."""
        self._sorted = None


class Store:
    """All resources' objects and the cluster-wide resourceVersion counter."""

    def __init__(self, *, history_size: int = 10_000, first_resource_version: int = 1000) -> None:
        self.history_size = history_size
        self.rv = first_resource_version
        self.resources: dict[tuple[str, str], ResourceStore] = {}
        self._shared: dict[tuple[str, str], SharedStorage] = {}

    def share(self, shared: SharedStorage) -> None:
        """Serve ``shared.view`` from the objects of ``shared.storage`` (both already added)."""
        self._shared[shared.storage] = shared
        self._shared[shared.view] = shared

    def normalized(self, resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` as the resource serves it once stored (converted to storage form and back)."""
        shared = self._shared.get((resource.group, resource.plural))
        if shared is None or shared.storage == (resource.group, resource.plural):
            return obj
        return shared.to_view(shared.to_storage(obj))

    def add_resource(self, resource: ResourceType) -> ResourceStore:
        """Start storing a resource (idempotent)."""
        key = (resource.group, resource.plural)
        existing = self.resources.get(key)
        if existing is not None:
            existing.resource = resource
            return existing
        store = ResourceStore(resource, history_size=self.history_size, window_start=self.rv)
        self.resources[key] = store
        return store

    def remove_resource(self, resource: ResourceType) -> None:
        """Stop storing a resource; its watchers are closed."""
        store = self.resources.pop((resource.group, resource.plural), None)
        if store is not None:
            for watcher in store.watchers:
                watcher.close()

    def of(self, resource: ResourceType) -> ResourceStore:
        """The store of one resource."""
        return self.resources[(resource.group, resource.plural)]

    def next_rv(self) -> int:
        """Advance and return the resourceVersion counter."""
        self.rv += 1
        return self.rv

    def commit(
        self,
        resource: ResourceType,
        kind: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
    ) -> Stored:
        """Store (ADDED/MODIFIED) or remove (DELETED) ``obj``, stamping a new resourceVersion.

        ``obj`` becomes owned by the store: callers must not mutate it afterwards.
        """
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        key = (resource.group, resource.plural)
        shared = self._shared.get(key)
        if shared is None:
            return self._record(self.of(resource), kind, obj, old, rv)
        stored_form = obj if key == shared.storage else shared.to_storage(obj)
        view_form = shared.to_view(stored_form)
        # Each form's old object is the one its own store holds, so its watchers see
        # selector transitions in their own form.
        storage = self._record(self.resources[shared.storage], kind, stored_form, None, rv)
        view = self._record(self.resources[shared.view], kind, view_form, None, rv)
        return storage if key == shared.storage else view

    @staticmethod
    def _record(
        store: ResourceStore, kind: str, obj: dict[str, Any], old: dict[str, Any] | None, rv: int
    ) -> Stored:
        metadata = obj["metadata"]
        raw = encode(obj)
        key = (metadata.get("namespace", "") or "", metadata["name"])
        current = store.objects.get(key)
        if old is None and current is not None:
            old = current.obj
        stored = Stored(obj, raw, rv)
        if kind == "DELETED":
            store.objects.pop(key, None)
            store.invalidate_order()
        else:
            if current is None:
                store.invalidate_order()
            store.objects[key] = stored
        store.record(Event(kind, rv, obj, raw, old))
        return stored

    def expire_all(self) -> None:
        """Forget all history: any resume from before now gets 410 Expired."""
        for store in self.resources.values():
            store.expire(self.rv)

    def watchers(self) -> Iterator[Watcher]:
        """Every open watcher."""
        for store in self.resources.values():
            yield from store.watchers
