"""``AzureIdentityBinding``: which pods may use an ``AzureIdentity``.

Matching rules (:meth:`AzureIdentityBinding.matches`), chosen to fail closed:

- the legacy ``selector`` matches when the pod's ``aadpodidbinding`` label equals it exactly;
- ``labelSelector`` (extension) matches with Kubernetes semantics;
- when both are declared a pod must satisfy **both**: adding a rule never widens access;
- a binding that declares neither matches no pod (upstream's empty selector matched every pod
  without the label, which granted identities by accident);
- ``serviceAccountNames`` (extension), when present, must contain the pod's service account;
  an empty list therefore admits no pod.

The binding's namespace must equal the pod's; that check belongs to the caller, which knows
both objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from podidentity.models._frozen import FrozenDict
from podidentity.models._names import (
    is_dns1123_subdomain,
    is_label_value,
    suggest_dns1123,
    suggest_label_value,
)
from podidentity.models._resource import Resource
from podidentity.models._wire import Field, Int, Nested, Str, StrList, join
from podidentity.models.identity import ReplicaStatus
from podidentity.models.meta import ObjectMeta, frozen_extra
from podidentity.models.problems import Problem, Severity
from podidentity.models.selectors import LabelSelector

__all__ = ["BINDING_LABEL", "AzureIdentityBinding"]

BINDING_LABEL = "aadpodidbinding"
"""The pod label that the legacy ``spec.selector`` is compared with."""


def _names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(kw_only=True)
class AzureIdentityBinding(Resource):
    """Binds pods (by label, and optionally by service account) to an ``AzureIdentity``.

    Attributes:
        azure_identity: name of the ``AzureIdentity`` in the binding's namespace.
        selector: legacy rule: the exact value of the pod label ``aadpodidbinding``.
        weight: declared by upstream, never used for selection; kept for round trips.
        label_selector: extension: a Kubernetes label selector over the pod's labels.
        service_account_names: extension: service accounts allowed to use the binding;
            ``None`` allows any.
    """

    kind: ClassVar[str] = "AzureIdentityBinding"
    plural: ClassVar[str] = "azureidentitybindings"
    singular: ClassVar[str] = "azureidentitybinding"
    description: ClassVar[str] = (
        "AzureIdentityBinding brings together the spec of matching pods and the identity "
        "which they can use."
    )

    metadata: ObjectMeta
    azure_identity: str = ""
    selector: str = ""
    weight: int | None = None
    label_selector: LabelSelector | None = None
    service_account_names: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    status: ReplicaStatus = attrs.field(factory=ReplicaStatus)
    spec_extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def matches(self, pod_labels: Mapping[str, str], *, service_account: str | None) -> bool:
        """True when a pod with these labels and service account may use the identity.

        Args:
            pod_labels: the pod's ``metadata.labels``.
            service_account: the pod's ``spec.serviceAccountName`` (Kubernetes fills in
                ``"default"``); ``None`` when unknown, which fails an allow-list.
        """
        if not self.selector and self.label_selector is None:
            return False
        if self.selector and pod_labels.get(BINDING_LABEL) != self.selector:
            return False
        if self.label_selector is not None and not self.label_selector.matches(pod_labels):
            return False
        names = self.service_account_names
        return names is None or (service_account is not None and service_account in names)

    def _spec_problems(self) -> list[Problem]:
        found: list[Problem] = []
        if not self.azure_identity:
            found.append(
                Problem(path="spec.azureIdentity", message="is required: name an AzureIdentity")
            )
        elif not is_dns1123_subdomain(self.azure_identity):
            found.append(
                Problem(
                    path="spec.azureIdentity",
                    message=f"{self.azure_identity!r} cannot be the name of an AzureIdentity "
                    "(DNS-1123: lowercase letters, digits, '-' and '.')",
                    suggestion=suggest_dns1123(self.azure_identity) or None,
                )
            )
        if not self.selector and self.label_selector is None:
            found.append(
                Problem(
                    path="spec.selector",
                    message="neither selector nor labelSelector is set, so no pod matches",
                )
            )
        if self.selector and not is_label_value(self.selector):
            found.append(
                Problem(
                    path="spec.selector",
                    message=f"{self.selector!r} is not a valid label value, so no pod can "
                    f"carry it in its {BINDING_LABEL!r} label and the binding matches nothing",
                    suggestion=suggest_label_value(self.selector) or None,
                )
            )
        if self.label_selector is not None and self.label_selector.matches_everything:
            found.append(
                Problem(
                    path="spec.labelSelector",
                    message="is empty and matches every pod in the namespace",
                    severity=Severity.WARNING,
                )
            )
        found += self._service_account_problems()
        return found

    def _service_account_problems(self) -> list[Problem]:
        names = self.service_account_names
        if names is None:
            return []
        if not names:
            return [
                Problem(
                    path="spec.serviceAccountNames",
                    message="is an empty list, so no pod may use this binding; remove the "
                    "field to allow any service account",
                    severity=Severity.WARNING,
                )
            ]
        return [
            Problem(
                path=join("spec.serviceAccountNames", index),
                message=f"{name!r} is not a valid service account name (DNS-1123)",
                suggestion=suggest_dns1123(name) or None,
            )
            for index, name in enumerate(names)
            if not is_dns1123_subdomain(name)
        ]


AzureIdentityBinding._spec_fields = (
    Field("azure_identity", "azureIdentity", Str(), legacy=("AzureIdentity",)),
    Field("selector", "selector", Str(), legacy=("Selector",)),
    Field(
        "weight",
        "weight",
        Int(int64=True),
        description="Weight is used to figure out which of the matching identities would be "
        "selected.",
    ),
    Field(
        "label_selector",
        "labelSelector",
        Nested(
            LabelSelector,
            "Extension: a Kubernetes label selector over the pod's labels; with selector, "
            "both must match.",
        ),
    ),
    Field(
        "service_account_names",
        "serviceAccountNames",
        StrList(),
        description="Extension: service accounts allowed to use this binding; absent allows "
        "any, empty allows none.",
    ),
)
AzureIdentityBinding._status_type = ReplicaStatus
