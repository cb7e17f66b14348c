"""Kubernetes I/O for podidentity's engines: JSON client, informers, leader election.

Everything here is asyncio and talks through the official ``kubernetes.aio`` ``ApiClient``
(its configuration loaders, auth, TLS); objects are plain JSON ``dict`` so hot paths never pay
for the generated models.

API:

- :func:`load_api_client` ``(kubeconfig=None, *, context=None, in_cluster=None)`` → a
  ``kubernetes.aio`` ``ApiClient`` from a kubeconfig or the pod's service account.
- :class:`KubeClient` ``(api_client)``: ``get``, ``list``, ``create``, ``replace``, ``patch``
  (``merge``/``json``/``strategic``/``apply``, optional ``subresource="status"``),
  ``delete`` (optional ``uid`` precondition) and ``watch`` (an async iterator of events) on
  any :class:`ApiResource`; errors are :class:`podidentity.errors.KubeError` subclasses.
- :class:`ApiResource` and the constants :data:`PODS`, :data:`NODES`, :data:`EVENTS`,
  :data:`LEASES`, :data:`IDENTITIES`, :data:`BINDINGS`, :data:`EXCEPTIONS`,
  :data:`ASSIGNED_IDENTITIES`.
- :class:`Informer` ``(client, resource, *, namespace=None, label_selector="",
  field_selector="", indexers=None, ...)``: list + watch cache. ``async with informer:`` (or
  ``start()`` / ``await run()`` / ``stop()``); ``await wait_synced()``; ``get(key)``,
  ``get_by_name(name, namespace)``, ``items()``, ``by_index(index, value)``,
  ``index_keys(index, value)``, ``add_indexer(name, func)``, ``add_handler(callback)`` where
  the callback receives an :class:`InformerEvent` (``type``, ``obj``, ``old``, ``key``).
  Resumes from the last resourceVersion (bookmarks included), lists again on ``410 Gone``
  and reports what changed meanwhile, backs off on other errors. Keys are
  :func:`object_key` (``namespace/name``).

  Example, the pods of one node::

      informer = Informer(client, PODS, field_selector=f"spec.nodeName={node}",
                          indexers={"ip": lambda pod: [pod.get("status", {}).get("podIP", "")]})
      async with informer:
          await informer.wait_synced()
          callers = informer.by_index("ip", "10.244.0.7")

"""

from __future__ import annotations

from podidentity.kube._client import KubeClient, PatchType, kube_error
from podidentity.kube._resources import (
    ASSIGNED_IDENTITIES,
    BINDINGS,
    EVENTS,
    EXCEPTIONS,
    IDENTITIES,
    LEASES,
    NODES,
    PODS,
    ApiResource,
)
from podidentity.kube.config import load_api_client
from podidentity.kube.informer import EventType, IndexFunc, Informer, InformerEvent, object_key

__all__ = [
    "ASSIGNED_IDENTITIES",
    "BINDINGS",
    "EVENTS",
    "EXCEPTIONS",
    "IDENTITIES",
    "LEASES",
    "NODES",
    "PODS",
    "ApiResource",
    "EventType",
    "IndexFunc",
    "Informer",
    "InformerEvent",
    "KubeClient",
    "PatchType",
    "kube_error",
    "load_api_client",
    "object_key",
]
