"""What the emulator serves: one :class:`ResourceType` per REST resource, and the built-ins.

A resource type is plain data (group, version, plural, kind, scope, subresources, printer
columns, schema); the store and the REST layer look everything up here, so a CRD becomes a
served resource by registering one more :class:`ResourceType`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._printers import EVENT_PRINTER, EVENTS_V1_PRINTER, POD_PRINTER, Printer

__all__ = ["BUILTIN_RESOURCES", "PrinterColumn", "ResourceType"]

_ALL_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@attrs.frozen
class PrinterColumn:
    """One column of ``kubectl get``'s table, with a JSONPath-like path into the object."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""
    format: str = ""


@attrs.frozen(eq=False)
class ResourceType:
    """A REST resource the server serves.

    Attributes:
        group: API group, ``""`` for core.
        version: served (and storage) version.
        plural: the resource name in URLs (``pods``).
        kind: the object kind (``Pod``).
        namespaced: whether objects live in a namespace.
        singular: lower-case singular name (kubectl resolves it).
        short_names: kubectl short names (``po``).
        verbs: the verbs discovery advertises and the server allows.
        subresources: served subresources (``status``; others come from plug-ins).
        name_rule: ``"subdomain"``, ``"label"`` or ``"path"`` — the DNS rule for
            ``metadata.name``.
        schema: a CRD's structural ``openAPIV3Schema`` (validation and pruning), or ``None``.
        printer_columns: extra ``kubectl get`` columns after ``NAME``.
        printer: a built-in kind's computed table (all columns), instead of
            ``printer_columns``.
        categories: kubectl categories (``all``).
        virtual: create-only and never stored (TokenReview).
        status_resets_on_update: the main resource ignores ``status`` on writes.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _ALL_VERBS
    subresources: tuple[str, ...] = ()
    name_rule: str = "subdomain"
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    categories: tuple[str, ...] = ()
    virtual: bool = False
    printer: Printer | None = None

    @property
    def api_version(self) -> str:
        """``group/version`` or ``v1`` for core."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``plural.group`` (or ``plural``): how kubectl and error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        """Whether writes to the main resource ignore ``status`` (a status subresource)."""
        return "status" in self.subresources

    @property
    def list_kind(self) -> str:
        """The list kind (``PodList``)."""
        return f"{self.kind}List"

    def base_path(self, namespace: str | None) -> str:
        """The collection URL path for ``namespace`` (ignored for cluster-scoped)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


def _core(plural: str, kind: str, **kwargs: Any) -> ResourceType:
    return ResourceType(
        group="", version="v1", plural=plural, kind=kind, singular=kind.lower(), **kwargs
    )


_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        name_rule="label",
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        printer_columns=(PrinterColumn("Status", ".status.phase"), _AGE),
    ),
    _core(
        "pods",
        "Pod",
        namespaced=True,
        short_names=("po",),
        subresources=("status",),
        categories=("all",),
        printer=POD_PRINTER,
    ),
    _core(
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        printer_columns=(
            PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].status'),
            _AGE,
        ),
    ),
    _core(
        "secrets", "Secret", namespaced=True, printer_columns=(PrinterColumn("Type", ".type"), _AGE)
    ),
    _core("configmaps", "ConfigMap", namespaced=True, short_names=("cm",), printer_columns=(_AGE,)),
    _core(
        "serviceaccounts",
        "ServiceAccount",
        namespaced=True,
        short_names=("sa",),
        printer_columns=(_AGE,),
    ),
    _core(
        "events",
        "Event",
        namespaced=True,
        short_names=("ev",),
        name_rule="path",
        printer=EVENT_PRINTER,
    ),
    ResourceType(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        kind="Lease",
        namespaced=True,
        singular="lease",
        printer_columns=(PrinterColumn("Holder", ".spec.holderIdentity"), _AGE),
    ),
    ResourceType(
        group="events.k8s.io",
        version="v1",
        plural="events",
        kind="Event",
        namespaced=True,
        singular="event",
        short_names=("ev",),
        name_rule="path",
        printer=EVENTS_V1_PRINTER,
    ),
    ResourceType(
        group="apiextensions.k8s.io",
        version="v1",
        plural="customresourcedefinitions",
        kind="CustomResourceDefinition",
        namespaced=False,
        singular="customresourcedefinition",
        short_names=("crd", "crds"),
        subresources=("status",),
        printer_columns=(PrinterColumn("Created At", ".metadata.creationTimestamp"),),
    ),
)
