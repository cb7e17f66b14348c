"""Owner references and garbage collection, as the API server and the controller manager do them.

Two halves:

* **Validation** (:func:`owner_reference_problems`), the API server's: every reference names
  ``apiVersion``, ``kind``, ``name`` and ``uid``; at most one is the ``controller``; Events
  cannot own anything. Refused with 422 in the real server's words.
* **Collection** (:class:`GarbageCollector`), the controller's: it keeps an owner -> dependents
  index up to date on every commit (synchronously, from dicts the store already holds, so a
  write costs a few dictionary operations) and does its work on the serving loop, one action at
  a time:

  - an owner that is gone: a dependent whose owners are all gone is deleted (in the background;
    a dependent that still has another owner only loses the dangling reference);
  - ``orphan`` finalizer (``propagationPolicy=Orphan``): the references to the owner are
    removed from its dependents, then the finalizer;
  - ``foregroundDeletion`` finalizer (``propagationPolicy=Foreground``): the dependents are
    deleted (in the foreground too), and the finalizer is removed once no dependent with
    ``blockOwnerDeletion: true`` is left.

  A namespaced owner is looked for in its dependent's namespace; a cluster-scoped owner
  anywhere. A new object whose owners are all absent is collected, as the real collector does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import APIError, Cause
from ._validation import field_invalid

if TYPE_CHECKING:
    from ._apiserver import APIServer
    from ._resources import ResourceType

__all__ = [
    "FOREGROUND",
    "ORPHAN",
    "GarbageCollector",
    "finalizer_for_policy",
    "owner_reference_problems",
]

_log = logging.getLogger(__name__)

#: The finalizer ``propagationPolicy=Foreground`` puts on the owner.
FOREGROUND = "foregroundDeletion"
#: The finalizer ``propagationPolicy=Orphan`` puts on the owner.
ORPHAN = "orphan"

_PATH = "metadata.ownerReferences"
_BANNED_OWNERS = {("v1", "Event"), ("events.k8s.io/v1", "Event")}

#: (group, plural), namespace ("" for cluster scope), name
ObjectKey = tuple[tuple[str, str], str, str]


def owner_reference_problems(metadata: Mapping[str, Any]) -> list[Cause]:
    """What the real server's ``ValidateOwnerReferences`` says about ``metadata``."""
    refs = metadata.get("ownerReferences")
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [field_invalid(_PATH, refs, "must be a list")]
    problems: list[Cause] = []
    controller = ""
    for ref in refs:
        if not isinstance(ref, Mapping):
            problems.append(field_invalid(_PATH, ref, "must be an object"))
            continue
        api_version = str(ref.get("apiVersion") or "")
        version = api_version.rsplit("/", 1)[-1]
        if not version:
            problems.append(
                field_invalid(f"{_PATH}.apiVersion", api_version, "version must not be empty")
            )
        kind = str(ref.get("kind") or "")
        if not kind:
            problems.append(field_invalid(f"{_PATH}.kind", kind, "kind must not be empty"))
        if not ref.get("name"):
            problems.append(
                field_invalid(f"{_PATH}.name", str(ref.get("name") or ""), "name must not be empty")
            )
        if not ref.get("uid"):
            problems.append(
                field_invalid(f"{_PATH}.uid", str(ref.get("uid") or ""), "uid must not be empty")
            )
        if (api_version, kind) in _BANNED_OWNERS:
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            problems.append(
                field_invalid(
                    _PATH,
                    dict(ref),
                    f"{group}/{version}, Kind={kind} is disallowed from being an owner",
                )
            )
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name')}"
            if controller:
                problems.append(
                    field_invalid(
                        _PATH,
                        refs,
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {controller} and {current}",
                    )
                )
            else:
                controller = current
    return problems


def finalizer_for_policy(policy: str | None) -> str | None:
    """The finalizer a DELETE with ``propagationPolicy`` puts on the owner (``None``: none)."""
    return {"Foreground": FOREGROUND, "Orphan": ORPHAN}.get(policy or "")


def _refs(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return [r for r in refs if isinstance(r, Mapping) and r.get("uid")]


class GarbageCollector:
    """The garbage collector of one :class:`~podidentity.testing.kube._apiserver.APIServer`."""

    def __init__(self, api: APIServer) -> None:
        self._api = api
        #: uid -> the object's key (every object, so owners can be found by uid)
        self._by_uid: dict[str, ObjectKey] = {}
        #: owner uid -> keys of objects that name it
        self._dependents: dict[str, set[ObjectKey]] = {}
        #: dependent key -> the owner uids it names
        self._owners_of: dict[ObjectKey, set[str]] = {}
        self._pending = 0
        self._queue: asyncio.Queue[tuple[str, ObjectKey, str]] | None = None
        self._worker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ index (sync)

    def committed(self, kind: str, resource: ResourceType, obj: Mapping[str, Any]) -> None:
        """Update the indexes after a commit and queue what the collector must do."""
        meta = obj["metadata"]
        uid = meta.get("uid")
        if not uid:
            return
        key: ObjectKey = (
            (resource.group, resource.plural),
            meta.get("namespace", "") or "",
            meta["name"],
        )
        refs = _refs(obj) if meta.get("ownerReferences") else []
        previous = self._by_uid.get(uid)
        if kind == "DELETED":
            self._by_uid.pop(uid, None)
            for owner_uid in self._owners_of.pop(key, ()):
                self._unlink(owner_uid, key)
            if uid in self._dependents:
                self._enqueue("owner-gone", key, uid)
            for ref in refs:
                # A dependent that blocked a foreground deletion may have been the last one.
                owner = self._by_uid.get(str(ref["uid"]))
                if owner is not None:
                    self._enqueue("foreground", owner, str(ref["uid"]))
            return
        self._by_uid[uid] = key
        if refs or key in self._owners_of:
            # Most objects have no owners: they pay for the uid index only.
            if previous is None and refs:
                self._enqueue("new-dependent", key, uid)
            owners = {str(ref["uid"]) for ref in refs}
            for dropped in self._owners_of.get(key, set()) - owners:
                self._unlink(dropped, key)
            if owners:
                self._owners_of[key] = owners
            else:
                self._owners_of.pop(key, None)
            for owner_uid in owners:
                self._dependents.setdefault(owner_uid, set()).add(key)
        if meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or ()
            if ORPHAN in finalizers:
                self._enqueue("orphan", key, uid)
            if FOREGROUND in finalizers:
                self._enqueue("foreground", key, uid)

    def _unlink(self, owner_uid: str, key: ObjectKey) -> None:
        linked = self._dependents.get(owner_uid)
        if linked is not None:
            linked.discard(key)

    def _enqueue(self, action: str, key: ObjectKey, uid: str) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        self._pending += 1
        self._queue.put_nowait((action, key, uid))

    @property
    def idle(self) -> bool:
        """Nothing is queued or running."""
        return self._pending == 0

    async def join(self) -> None:
        """Wait until every queued action has been handled."""
        if self._queue is not None:
            await self._queue.join()

    # ------------------------------------------------------------------ actions (async)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            action, key, uid = await queue.get()
            try:
                if action == "owner-gone":
                    await self._owner_gone(uid)
                elif action == "new-dependent":
                    await self._check_dependent(key)
                elif action == "orphan":
                    await self._orphan(key, uid)
                elif action == "foreground":
                    await self._foreground(key, uid)
            except APIError as err:
                # Changed or gone meanwhile: a later commit brings the object back here.
                _log.debug("garbage collector: %s of %s: %s", action, key, err)
            except Exception:
                _log.exception("garbage collector: %s of %s failed", action, key)
            finally:
                self._pending -= 1
                queue.task_done()

    def _stored(self, key: ObjectKey) -> dict[str, Any] | None:
        store = self._api.store.resources.get(key[0])
        if store is None:
            return None
        stored = store.objects.get((key[1], key[2]))
        return None if stored is None else stored.obj

    def _owner(self, dependent: ObjectKey, ref: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live owner ``ref`` names, seen from ``dependent`` (``None``: absent)."""
        key = self._by_uid.get(str(ref["uid"]))
        if key is None or key[2] != ref.get("name"):
            return None
        if key[1] and key[1] != dependent[1]:
            # A namespaced owner can only own objects of its own namespace.
            return None
        return self._stored(key)

    def _resource(self, key: ObjectKey) -> ResourceType:
        return self._api.store.resources[key[0]].resource

    async def _delete(self, key: ObjectKey, uid: str, policy: str) -> None:
        await self._api.delete_stored(
            self._resource(key),
            key[2],
            key[1] or None,
            preconditions={"uid": uid},
            propagation_policy=policy,
        )

    async def _set_refs(self, key: ObjectKey, refs: list[Mapping[str, Any]]) -> None:
        await self._api.patch(
            self._resource(key),
            key[2],
            {"metadata": {"ownerReferences": refs or None}},
            namespace=key[1] or None,
        )

    async def _collect(self, key: ObjectKey, waiting_policy: str | None = None) -> None:
        """Delete a dependent whose owners are absent, or drop its dangling references."""
        obj = self._stored(key)
        if obj is None:
            return
        meta = obj["metadata"]
        refs = _refs(obj)
        solid, waiting, dangling = [], [], []
        for ref in refs:
            owner = self._owner(key, ref)
            if owner is None:
                dangling.append(ref)
            elif FOREGROUND in (owner["metadata"].get("finalizers") or ()) and owner[
                "metadata"
            ].get("deletionTimestamp"):
                waiting.append(ref)
            else:
                solid.append(ref)
        if solid:
            if dangling or waiting:
                await self._set_refs(key, solid)
            return
        if not refs or meta.get("deletionTimestamp"):
            return
        policy = waiting_policy or ("Foreground" if waiting else "Background")
        await self._delete(key, str(meta["uid"]), policy)

    async def _owner_gone(self, uid: str) -> None:
        for key in sorted(self._dependents.pop(uid, set())):
            await self._collect(key)

    async def _check_dependent(self, key: ObjectKey) -> None:
        obj = self._stored(key)
        if obj is not None and all(self._owner(key, ref) is None for ref in _refs(obj)):
            await self._collect(key)

    async def _orphan(self, key: ObjectKey, uid: str) -> None:
        owner = self._stored(key)
        if owner is None or owner["metadata"].get("uid") != uid:
            return
        for dependent in sorted(self._dependents.get(uid, set())):
            obj = self._stored(dependent)
            if obj is None:
                continue
            refs = _refs(obj)
            kept = [r for r in refs if r["uid"] != uid]
            if len(kept) != len(refs):
                await self._set_refs(dependent, kept)
        self._dependents.pop(uid, None)
        await self._remove_finalizer(key, uid, ORPHAN)

    async def _foreground(self, key: ObjectKey, uid: str) -> None:
        owner = self._stored(key)
        if owner is None or owner["metadata"].get("uid") != uid:
            return
        meta = owner["metadata"]
        if not meta.get("deletionTimestamp") or FOREGROUND not in (meta.get("finalizers") or ()):
            return
        blocking = False
        for dependent in sorted(self._dependents.get(uid, set())):
            obj = self._stored(dependent)
            if obj is None:
                continue
            mine = [r for r in _refs(obj) if r["uid"] == uid]
            if not mine:
                continue
            if any(r.get("blockOwnerDeletion") is True for r in mine):
                blocking = True
            if not obj["metadata"].get("deletionTimestamp"):
                await self._collect(dependent, waiting_policy="Foreground")
        if not blocking:
            await self._remove_finalizer(key, uid, FOREGROUND)

    async def _remove_finalizer(self, key: ObjectKey, uid: str, finalizer: str) -> None:
        obj = self._stored(key)
        if obj is None or obj["metadata"].get("uid") != uid:
            return
        finalizers = list(obj["metadata"].get("finalizers") or ())
        if finalizer not in finalizers:
            return
        finalizers.remove(finalizer)
        await self._api.patch(
            self._resource(key),
            key[2],
            [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
            ],
            namespace=key[1] or None,
            patch_type="json",
        )
