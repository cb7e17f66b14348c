"""``AzurePodIdentityException``: pods that get the node's own identity, unfiltered.

Meant for system pods (the controller itself, cluster add-ons) that must reach IMDS directly.
Matching is upstream's: a pod matches when **any one** listed label is on the pod with the same
value, values compared case-insensitively. Only exceptions in the pod's own namespace count;
the caller checks that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from podidentity.models._frozen import FrozenDict
from podidentity.models._names import is_label_key, is_label_value
from podidentity.models._resource import Resource
from podidentity.models._wire import Field, Str, StrMap, check_extra, join
from podidentity.models.meta import ObjectMeta, frozen_extra, frozen_str_map
from podidentity.models.problems import Problem, Severity

__all__ = ["AzurePodIdentityException", "ExceptionStatus"]


@attrs.frozen(kw_only=True)
class ExceptionStatus:
    """``status`` of an exception (declared by upstream; nothing fills it in)."""

    _fields: ClassVar[tuple[Field, ...]]

    status: str = ""
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "status")


ExceptionStatus._fields = (Field("status", "status", Str()),)


@attrs.frozen(kw_only=True)
class AzurePodIdentityException(Resource):
    """Pods whose labels match :attr:`pod_labels` bypass identity checks in the token proxy."""

    kind: ClassVar[str] = "AzurePodIdentityException"
    plural: ClassVar[str] = "azurepodidentityexceptions"
    singular: ClassVar[str] = "azurepodidentityexception"
    description: ClassVar[str] = (
        "AzurePodIdentityException contains the pod selectors for all pods that don't require "
        "NMI to process and request token on their behalf."
    )

    metadata: ObjectMeta
    pod_labels: FrozenDict[str, str] = attrs.field(default=FrozenDict(), converter=frozen_str_map)
    status: ExceptionStatus = attrs.field(factory=ExceptionStatus)
    spec_extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when any one of :attr:`pod_labels` is in ``labels`` (value case-insensitive)."""
        for key, value in self.pod_labels.items():
            actual = labels.get(key)
            if actual is not None and actual.casefold() == value.casefold():
                return True
        return False

    def _spec_problems(self) -> list[Problem]:
        if not self.pod_labels:
            return [
                Problem(
                    path="spec.podLabels",
                    message="is empty, so the exception matches no pod",
                    severity=Severity.WARNING,
                )
            ]
        found: list[Problem] = []
        for key, value in self.pod_labels.items():
            where = join("spec.podLabels", key)
            if not is_label_key(key):
                found.append(
                    Problem(path=where, message=f"{key!r} is not a valid label key; no pod has it")
                )
            if not is_label_value(value):
                found.append(
                    Problem(
                        path=where,
                        message=f"{value!r} is not a valid label value; no pod has it",
                    )
                )
        return found


AzurePodIdentityException._spec_fields = (
    Field("pod_labels", "podLabels", StrMap(), legacy=("PodLabels",)),
)
AzurePodIdentityException._status_type = ExceptionStatus
