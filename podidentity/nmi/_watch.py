"""The node's observed state: pods on the node, their assignment records, exceptions.

A bridge until the shared informer of ``podidentity.kube`` is available: three list+watch loops
(``kubernetes.aio``, raw JSON so no model decoding on the hot path) keep :class:`ClusterView`
up to date and wake waiters on every change, so a request waiting for a pending assignment is
answered the moment the record turns ``Assigned`` (no polling).

* pods with ``fieldSelector=spec.nodeName=<node>``, indexed by ``status.podIP``;
* ``AzureAssignedIdentity`` records with ``labelSelector=nodename=<node>``, by pod;
* ``AzurePodIdentityException`` objects, by namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes.aio import client as kclient

from podidentity.errors import ValidationError
from podidentity.models import (
    GROUP,
    NODE_NAME_LABEL,
    VERSION,
    AzureAssignedIdentity,
    AzurePodIdentityException,
)
from podidentity.nmi.callers import PodInfo

__all__ = ["ClusterView"]

logger = logging.getLogger(__name__)

_WATCH_SECONDS = 240
_RETRY_SECONDS = 1.0

Lister = Callable[..., Awaitable[Any]]


class ClusterView:
    """What one node's token proxy knows about its cluster (implements ``NodeView``).

    Args:
        api: a ``kubernetes.aio`` API client (owned by the caller).
        node_name: the node to watch.
    """

    def __init__(self, api: kclient.ApiClient, node_name: str) -> None:
        self._api = api
        self._node = node_name
        self._pods: dict[str, PodInfo] = {}
        self._by_ip: dict[str, set[str]] = {}
        self._assigned: dict[str, dict[str, AzureAssignedIdentity]] = {}
        self._exceptions: dict[str, dict[str, AzurePodIdentityException]] = {}
        self._changed = asyncio.Event()
        self._synced = {
            "pods": asyncio.Event(),
            "assigned": asyncio.Event(),
            "exceptions": asyncio.Event(),
        }
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"ClusterView(node={self._node!r}, pods={len(self._pods)})"

    @property
    def node_name(self) -> str:
        """The node this view covers."""
        return self._node

    # -- NodeView --------------------------------------------------------------------------

    def pods_with_ip(self, ip: str) -> list[PodInfo]:
        """Every pod on the node with ``status.podIP == ip``."""
        return [self._pods[k] for k in sorted(self._by_ip.get(ip, ()))]

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod ``namespace/name`` if it is on this node."""
        return self._pods.get(f"{namespace}/{name}")

    def assignments(self, namespace: str, name: str) -> list[AzureAssignedIdentity]:
        """The pod's assignment records on this node."""
        return list(self._assigned.get(f"{namespace}/{name}", {}).values())

    def exceptions(self, namespace: str) -> list[AzurePodIdentityException]:
        """The exceptions in ``namespace``."""
        return list(self._exceptions.get(namespace, {}).values())

    # -- change notification ---------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether every watch has listed once."""
        return all(e.is_set() for e in self._synced.values())

    async def wait_synced(self) -> None:
        """Wait until every watch has listed once."""
        for event in self._synced.values():
            await event.wait()

    async def changed(self) -> None:
        """Wait for the next change of anything in the view."""
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watches on the running loop."""
        core = kclient.CoreV1Api(self._api)
        custom = kclient.CustomObjectsApi(self._api)

        async def pods(**kw: Any) -> Any:
            return await core.list_pod_for_all_namespaces_without_preload_content(
                field_selector=f"spec.nodeName={self._node}", **kw
            )

        async def assigned(**kw: Any) -> Any:
            return await custom.list_cluster_custom_object_without_preload_content(
                GROUP,
                VERSION,
                AzureAssignedIdentity.plural,
                label_selector=f"{NODE_NAME_LABEL}={self._node}",
                **kw,
            )

        async def exceptions(**kw: Any) -> Any:
            return await custom.list_cluster_custom_object_without_preload_content(
                GROUP, VERSION, AzurePodIdentityException.plural, **kw
            )

        self._tasks = [
            asyncio.ensure_future(self._loop("pods", pods, self._set_pods, self._pod_event)),
            asyncio.ensure_future(
                self._loop("assigned", assigned, self._set_assigned, self._assigned_event)
            ),
            asyncio.ensure_future(
                self._loop("exceptions", exceptions, self._set_exceptions, self._exception_event)
            ),
        ]

    async def stop(self) -> None:
        """Stop the watches."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _loop(
        self,
        what: str,
        lister: Lister,
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
    ) -> None:
        while True:
            try:
                body = await _read_json(await lister())
                replace(list(body.get("items") or []))
                self._notify()
                self._synced[what].set()
                version = str((body.get("metadata") or {}).get("resourceVersion") or "")
                while True:
                    version = await self._watch(what, lister, apply, version)
            except asyncio.CancelledError:
                raise
            except _Expired:
                logger.debug("watch of %s on %s expired; listing again", what, self._node)
            except Exception as err:  # a watch must survive any API trouble
                logger.warning("watch of %s on %s failed (%s); retrying", what, self._node, err)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _watch(
        self, what: str, lister: Lister, apply: Callable[[str, dict[str, Any]], None], version: str
    ) -> str:
        response = await lister(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=_WATCH_SECONDS,
            _request_timeout=_WATCH_SECONDS + 30,
        )
        try:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise RuntimeError(f"watch answered {response.status}")
            while True:
                line = await response.content.readline()
                if not line:
                    return version
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                apply(str(kind), obj)
                self._notify()
        finally:
            response.release()

    # -- applying lists and events ---------------------------------------------------------

    def _set_pods(self, items: list[dict[str, Any]]) -> None:
        self._pods.clear()
        self._by_ip.clear()
        for item in items:
            self._pod_event("ADDED", item)

    def _pod_event(self, kind: str, obj: dict[str, Any]) -> None:
        pod = PodInfo.from_dict(obj)
        old = self._pods.pop(pod.key, None)
        if old is not None and old.ip:
            holders = self._by_ip.get(old.ip, set())
            holders.discard(pod.key)
            if not holders:
                self._by_ip.pop(old.ip, None)
        if kind == "DELETED" or (pod.node_name and pod.node_name != self._node):
            return
        self._pods[pod.key] = pod
        if pod.ip:
            self._by_ip.setdefault(pod.ip, set()).add(pod.key)

    def _set_assigned(self, items: list[dict[str, Any]]) -> None:
        self._assigned.clear()
        for item in items:
            self._assigned_event("ADDED", item)

    def _assigned_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        uid = f"{meta.get('namespace')}/{meta.get('name')}"
        for records in self._assigned.values():
            records.pop(uid, None)
        if kind == "DELETED":
            return
        try:
            record = AzureAssignedIdentity.from_dict(obj)
        except ValidationError as err:
            logger.warning("ignoring AzureAssignedIdentity %s: %s", uid, err)
            return
        key = f"{record.pod_namespace}/{record.pod}"
        self._assigned.setdefault(key, {})[uid] = record

    def _set_exceptions(self, items: list[dict[str, Any]]) -> None:
        self._exceptions.clear()
        for item in items:
            self._exception_event("ADDED", item)

    def _exception_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        self._exceptions.get(namespace, {}).pop(name, None)
        if kind == "DELETED":
            return
        try:
            exception = AzurePodIdentityException.from_dict(obj)
        except ValidationError as err:
            logger.warning("ignoring AzurePodIdentityException %s/%s: %s", namespace, name, err)
            return
        self._exceptions.setdefault(namespace, {})[name] = exception


class _Expired(Exception):
    """The watch's resourceVersion is too old: list again."""


async def _read_json(response: Any) -> dict[str, Any]:
    try:
        if response.status != 200:
            raise RuntimeError(f"list answered {response.status}")
        body: dict[str, Any] = json.loads(await response.read())
        return body
    finally:
        with contextlib.suppress(Exception):
            response.release()
