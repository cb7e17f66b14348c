"""The node's observed state, from three informers: :class:`ClusterView`.

* pods with ``fieldSelector=spec.nodeName=<node>``, indexed by ``status.podIP``;
* ``AzureAssignedIdentity`` records with ``labelSelector=nodename=<node>``, indexed by pod;
* ``AzurePodIdentityException`` objects, indexed by namespace.

Every change wakes the requests waiting in :meth:`ClusterView.changed`, so a request waiting for
a pending assignment is answered the moment the record turns ``Assigned`` (no polling).
Assignment records are decoded into models once per resourceVersion, not per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from podidentity.errors import ValidationError
from podidentity.kube import (
    ASSIGNED_IDENTITIES,
    EXCEPTIONS,
    PODS,
    Informer,
    InformerEvent,
    KubeClient,
)
from podidentity.models import NODE_NAME_LABEL, AzureAssignedIdentity, AzurePodIdentityException
from podidentity.nmi.callers import PodInfo

__all__ = ["ClusterView"]

logger = logging.getLogger(__name__)


def _pod_ip(pod: Mapping[str, Any]) -> list[str]:
    ip = (pod.get("status") or {}).get("podIP")
    return [str(ip)] if ip else []


def _record_pod(record: Mapping[str, Any]) -> list[str]:
    spec = record.get("spec") or {}
    return [f"{spec.get('podNamespace', '')}/{spec.get('pod', '')}"]


def _namespace(obj: Mapping[str, Any]) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class ClusterView:
    """What one node's token proxy knows about its cluster (implements ``NodeView``).

    Args:
        client: the :class:`~podidentity.kube.KubeClient` to watch with.
        node_name: the node to watch.
    """

    def __init__(self, client: KubeClient, node_name: str) -> None:
        self._node = node_name
        self.pods = Informer(
            client, PODS, field_selector=f"spec.nodeName={node_name}", indexers={"ip": _pod_ip}
        )
        self.assigned = Informer(
            client,
            ASSIGNED_IDENTITIES,
            label_selector=f"{NODE_NAME_LABEL}={node_name}",
            indexers={"pod": _record_pod},
        )
        self.pod_exceptions = Informer(client, EXCEPTIONS, indexers={"namespace": _namespace})
        self._informers = (self.pods, self.assigned, self.pod_exceptions)
        self._decoded: dict[str, tuple[str, Any]] = {}
        self._changed = asyncio.Event()
        self._waker: asyncio.Task[None] | None = None
        for informer in self._informers:
            informer.add_handler(self._on_change)

    def __repr__(self) -> str:
        return f"ClusterView(node={self._node!r}, pods={len(self.pods)})"

    @property
    def node_name(self) -> str:
        """The node this view covers."""
        return self._node

    # -- NodeView --------------------------------------------------------------------------

    def pods_with_ip(self, ip: str) -> list[PodInfo]:
        """Every pod on the node with ``status.podIP == ip``."""
        return [PodInfo.from_dict(p) for p in self.pods.by_index("ip", ip)]

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod ``namespace/name`` if it is on this node."""
        found = self.pods.get_by_name(name, namespace)
        return PodInfo.from_dict(found) if found is not None else None

    def assignments(self, namespace: str, name: str) -> list[AzureAssignedIdentity]:
        """The pod's assignment records on this node (undecodable ones are skipped)."""
        records = self.assigned.by_index("pod", f"{namespace}/{name}")
        return [r for r in (self._decode(AzureAssignedIdentity, o) for o in records) if r]

    def exceptions(self, namespace: str) -> list[AzurePodIdentityException]:
        """The exceptions in ``namespace``."""
        found = self.pod_exceptions.by_index("namespace", namespace)
        return [e for e in (self._decode(AzurePodIdentityException, o) for o in found) if e]

    def _decode(self, kind: Any, obj: Mapping[str, Any]) -> Any:
        meta = obj.get("metadata") or {}
        key = f"{kind.plural}/{meta.get('namespace')}/{meta.get('name')}"
        version = _version(obj)
        cached = self._decoded.get(key)
        if cached is not None and cached[0] == version and version:
            return cached[1]
        try:
            model = kind.from_dict(obj)
        except ValidationError as err:
            logger.warning("ignoring %s %s: %s", kind.kind, key, err)
            model = None
        self._decoded[key] = (version, model)
        return model

    # -- change notification ---------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether every informer has listed once."""
        return all(i.has_synced for i in self._informers)

    async def wait_synced(self) -> None:
        """Wait until every informer has listed once."""
        for informer in self._informers:
            await informer.wait_synced()

    async def changed(self) -> None:
        """Wait for the next change of anything in the view."""
        await self._changed.wait()

    def _on_change(self, event: InformerEvent) -> None:
        if event.type == "DELETED":
            meta = event.obj.get("metadata") or {}
            for plural in (ASSIGNED_IDENTITIES.plural, EXCEPTIONS.plural):
                self._decoded.pop(f"{plural}/{meta.get('namespace')}/{meta.get('name')}", None)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers on the running loop."""
        for informer in self._informers:
            informer.start()
        # Listing sets "synced" without an event when the lists are empty: wake waiters then.
        self._waker = asyncio.ensure_future(self._wake_when_synced())

    async def _wake_when_synced(self) -> None:
        await self.wait_synced()
        self._notify()

    async def stop(self) -> None:
        """Stop the informers."""
        if self._waker is not None:
            self._waker.cancel()
        for informer in self._informers:
            await informer.aclose()
