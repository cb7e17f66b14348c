"""``AzureIdentity``: which Azure identity a pod may use, and how to get its tokens."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from podidentity.models._frozen import FrozenDict
from podidentity.models._names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_guid,
    is_placeholder,
    is_user_assigned_identity_id,
    suggest_dns1123,
)
from podidentity.models._resource import Resource
from podidentity.models._wire import (
    EnumCodec,
    Field,
    Int,
    Nested,
    Str,
    StrList,
    check_extra,
    join,
)
from podidentity.models.meta import ObjectMeta, frozen_extra
from podidentity.models.problems import Problem, Severity

__all__ = [
    "BEHAVIOR_ANNOTATION",
    "DEFAULT_AD_ENDPOINT",
    "AzureIdentity",
    "IdentityType",
    "ReplicaStatus",
    "SecretReference",
]

DEFAULT_AD_ENDPOINT = "https://login.microsoftonline.com/"
"""Azure AD authority used when ``spec.adEndpoint`` is empty (public cloud)."""

BEHAVIOR_ANNOTATION = "aadpodidentity.k8s.io/Behavior"
"""Upstream's annotation; the value ``namespaced`` limited one identity to its namespace."""


class IdentityType(enum.IntEnum):
    """How the identity gets its tokens (``spec.type``)."""

    USER_ASSIGNED_MSI = 0
    """A user-assigned managed identity, assigned to the node's VM or scale set."""
    SERVICE_PRINCIPAL = 1
    """A service principal with a client secret read from a Kubernetes Secret."""
    SERVICE_PRINCIPAL_CERTIFICATE = 2
    """A service principal with a PKCS#12 certificate (keys ``certificate``, ``password``)."""
    FEDERATED_WORKLOAD_IDENTITY = 3
    """New: exchange the pod's service-account token for an Azure AD token. Needs client and
    tenant IDs and a federated credential on the app; nothing is assigned to the VM."""


_TYPE_RULE = "expected 0, 1, 2 or 3"
_SP_TYPES = (IdentityType.SERVICE_PRINCIPAL, IdentityType.SERVICE_PRINCIPAL_CERTIFICATE)


def _identity_type(value: IdentityType | int) -> IdentityType:
    return IdentityType(value)


@attrs.frozen(kw_only=True)
class SecretReference:
    """Names the Kubernetes Secret that holds a service principal's secret or certificate."""

    _fields: ClassVar[tuple[Field, ...]]

    name: str = ""
    namespace: str = ""
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "")


SecretReference._fields = (
    Field(
        "name",
        "name",
        Str(),
        description="Name is unique within a namespace to reference a secret resource.",
    ),
    Field(
        "namespace",
        "namespace",
        Str(),
        description="Namespace defines the space within which the secret name must be unique.",
    ),
)


@attrs.frozen(kw_only=True)
class ReplicaStatus:
    """``status`` of identities and bindings (upstream declared it; nothing fills it in)."""

    _fields: ClassVar[tuple[Field, ...]]

    available_replicas: int | None = None
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "status")


ReplicaStatus._fields = (Field("available_replicas", "availableReplicas", Int()),)


@attrs.frozen(kw_only=True)
class AzureIdentity(Resource):
    """An Azure identity that pods may be bound to.

    Which fields matter depends on :attr:`type`: a user-assigned identity needs
    ``resource_id`` and ``client_id``; a service principal ``tenant_id``, ``client_id`` and
    ``client_password``; a federated workload identity ``tenant_id`` and ``client_id``.
    :meth:`problems` says what is missing.
    """

    kind: ClassVar[str] = "AzureIdentity"
    plural: ClassVar[str] = "azureidentities"
    singular: ClassVar[str] = "azureidentity"
    description: ClassVar[str] = (
        "AzureIdentity is the specification of the identity data structure."
    )

    metadata: ObjectMeta
    type: IdentityType = attrs.field(
        default=IdentityType.USER_ASSIGNED_MSI, converter=_identity_type
    )
    resource_id: str = ""
    client_id: str = ""
    client_password: SecretReference | None = None
    tenant_id: str = ""
    auxiliary_tenant_ids: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    ad_resource_id: str = ""
    ad_endpoint: str = ""
    replicas: int | None = None
    status: ReplicaStatus = attrs.field(factory=ReplicaStatus)
    spec_extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    @property
    def authority(self) -> str:
        """The Azure AD authority host to use: ``ad_endpoint`` or the public cloud's."""
        return self.ad_endpoint or DEFAULT_AD_ENDPOINT

    @property
    def is_namespaced(self) -> bool:
        """True when upstream's ``Behavior: namespaced`` annotation limits it to its namespace."""
        return self.metadata.annotations.get(BEHAVIOR_ANNOTATION, "").lower() == "namespaced"

    def _spec_problems(self) -> list[Problem]:
        found: list[Problem] = []
        kind = self.type
        needs_resource = kind is IdentityType.USER_ASSIGNED_MSI
        needs_tenant = kind is not IdentityType.USER_ASSIGNED_MSI
        if needs_resource:
            found += _required(self.resource_id, "spec.resourceID", "a user-assigned identity")
        elif self.resource_id:
            found.append(_ignored("spec.resourceID", kind))
        found += _required(self.client_id, "spec.clientID", f"type {kind.value}")
        if needs_tenant:
            found += _required(self.tenant_id, "spec.tenantID", f"type {kind.value}")
        if self.resource_id:
            found += _check_resource_id(self.resource_id)
        if self.client_id:
            found += _check_guid(self.client_id, "spec.clientID", "the identity's client ID")
        if self.tenant_id:
            found += _check_tenant(self.tenant_id, "spec.tenantID")
        for index, tenant in enumerate(self.auxiliary_tenant_ids):
            found += _check_tenant(tenant, join("spec.auxiliaryTenantIDs", index))
        found += self._secret_problems()
        if self.ad_endpoint and not self.ad_endpoint.lower().startswith("https://"):
            found.append(
                Problem(
                    path="spec.adEndpoint",
                    message=f"{self.ad_endpoint!r} is not an https URL; Azure AD only "
                    "answers over https",
                    suggestion=DEFAULT_AD_ENDPOINT,
                )
            )
        if self.replicas is not None and self.replicas < 0:
            found.append(Problem(path="spec.replicas", message="may not be negative"))
        behavior = self.metadata.annotations.get(BEHAVIOR_ANNOTATION)
        if behavior is not None and behavior.lower() != "namespaced":
            found.append(
                Problem(
                    path=f"metadata.annotations.{BEHAVIOR_ANNOTATION}",
                    message=f"{behavior!r} has no effect; the only value is 'namespaced'",
                    severity=Severity.WARNING,
                    suggestion="namespaced",
                )
            )
        return found

    def _secret_problems(self) -> list[Problem]:
        ref = self.client_password
        if self.type not in _SP_TYPES:
            if ref is not None:
                return [_ignored("spec.clientPassword", self.type)]
            return []
        what = "client secret" if self.type is IdentityType.SERVICE_PRINCIPAL else "certificate"
        if ref is None:
            return [
                Problem(
                    path="spec.clientPassword",
                    message=f"a service principal (type {self.type.value}) needs a reference "
                    f"to the Secret holding its {what}: {{name: ..., namespace: ...}}",
                )
            ]
        found: list[Problem] = []
        if not ref.name:
            found.append(Problem(path="spec.clientPassword.name", message="is required"))
        elif not is_dns1123_subdomain(ref.name):
            found.append(
                Problem(
                    path="spec.clientPassword.name",
                    message=f"{ref.name!r} is not a valid Secret name (DNS-1123)",
                    suggestion=suggest_dns1123(ref.name) or None,
                )
            )
        if not ref.namespace:
            found.append(
                Problem(
                    path="spec.clientPassword.namespace",
                    message="is required: the Secret is looked up in this namespace",
                    suggestion=self.metadata.namespace or None,
                )
            )
        elif not is_dns1123_label(ref.namespace):
            found.append(
                Problem(
                    path="spec.clientPassword.namespace",
                    message=f"{ref.namespace!r} is not a valid namespace (DNS-1123 label)",
                )
            )
        return found


AzureIdentity._spec_fields = (
    Field(
        "type",
        "type",
        EnumCodec(IdentityType, _TYPE_RULE),
        legacy=("Type",),
        always=True,
        description="0 user-assigned MSI, 1 service principal (secret), 2 service principal "
        "(certificate), 3 federated workload identity.",
    ),
    Field(
        "resource_id",
        "resourceID",
        Str(),
        legacy=("ResourceID",),
        description="User assigned MSI resource id.",
    ),
    Field(
        "client_id",
        "clientID",
        Str(),
        legacy=("ClientID",),
        description="Both User Assigned MSI and SP can use this field.",
    ),
    Field(
        "client_password",
        "clientPassword",
        Nested(SecretReference),
        legacy=("ClientPassword",),
        description="Used for service principal",
    ),
    Field(
        "tenant_id",
        "tenantID",
        Str(),
        legacy=("TenantID",),
        description="Service principal primary tenant id.",
    ),
    Field(
        "auxiliary_tenant_ids",
        "auxiliaryTenantIDs",
        StrList(nullable=True),
        description="Service principal auxiliary tenant ids",
    ),
    Field(
        "ad_resource_id",
        "adResourceID",
        Str(),
        description="For service principal. Option param for specifying the  AD details.",
    ),
    Field("ad_endpoint", "adEndpoint", Str()),
    Field("replicas", "replicas", Int(nullable=True)),
)
AzureIdentity._status_type = ReplicaStatus


def _required(value: str, path: str, what: str) -> list[Problem]:
    if value:
        return []
    return [Problem(path=path, message=f"is required for {what}")]


def _ignored(path: str, kind: IdentityType) -> Problem:
    return Problem(
        path=path,
        message=f"is ignored for type {kind.value} ({kind.name})",
        severity=Severity.WARNING,
    )


def _placeholder(value: str, path: str, what: str) -> Problem:
    return Problem(path=path, message=f"{value!r} is a placeholder; put {what} here")


def _check_guid(value: str, path: str, what: str) -> list[Problem]:
    if is_guid(value):
        return []
    if is_placeholder(value):
        return [_placeholder(value, path, f"{what} (a GUID)")]
    return [Problem(path=path, message=f"{value!r} is not a GUID; expected {what}")]


def _check_tenant(value: str, path: str) -> list[Problem]:
    if is_guid(value):
        return []
    if is_placeholder(value):
        return [_placeholder(value, path, "the Azure AD tenant ID (a GUID)")]
    if "." in value and is_dns1123_subdomain(value.lower()):
        return [
            Problem(
                path=path,
                message=f"{value!r} is a domain name; Azure AD accepts it, but the tenant's "
                "GUID does not change when domains do",
                severity=Severity.WARNING,
            )
        ]
    return [Problem(path=path, message=f"{value!r} is not a GUID; expected the tenant ID")]


def _check_resource_id(value: str) -> list[Problem]:
    if is_user_assigned_identity_id(value):
        return []
    path = "spec.resourceID"
    shape = (
        "/subscriptions/<subscription-guid>/resourcegroups/<group>/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
    )
    if is_placeholder(value):
        return [_placeholder(value, path, f"the identity's ARM resource ID ({shape})")]
    return [
        Problem(
            path=path,
            message=f"{value!r} is not the ARM ID of a user-assigned identity; expected {shape}",
        )
    ]
