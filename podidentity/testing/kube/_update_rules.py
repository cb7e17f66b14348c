"""Update rules of the real API server: preconditions, unconditional updates, ``generation``.

* A PUT whose ``metadata.uid`` is not the stored object's is a storage precondition failure,
  409 ``Conflict`` (the generic store turns the body's uid into a precondition). A patch that
  changes the uid is a 422: ``metadata.uid`` is immutable.
* A PUT without ``metadata.resourceVersion`` is an unconditional update, which most built-in
  kinds allow (``AllowUnconditionalUpdate``: pods, config maps, secrets, nodes, ...) but Leases,
  CustomResourceDefinitions and every custom resource refuse with 422 ``must be specified for
  an update``.
* ``metadata.generation`` exists only on kinds whose strategy keeps it (custom resources,
  CRDs, pods since 1.33, apps, batch, PodDisruptionBudgets, HorizontalPodAutoscalers): 1 on
  create, bumped when the desired state changes, and bumped again when deletion starts
  (``deletionTimestamp`` set), as ``rest.BeforeDelete`` and ``markAsDeleting`` do.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from ._errors import APIError
from ._resources import ResourceType

__all__ = [
    "allows_unconditional_update",
    "bump_on_deletion",
    "check_patch",
    "check_put",
    "has_generation",
    "next_generation",
]

#: Built-in (group, plural) whose strategies refuse an update without a resourceVersion.
_CONDITIONAL_ONLY = frozenset(
    {
        ("coordination.k8s.io", "leases"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }
)
#: Built-in (group, plural) whose strategies set and bump ``metadata.generation``.
_WITH_GENERATION = frozenset(
    {
        ("", "pods"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
    }
)
#: etcd key prefixes that are not simply the plural (``/registry/minions/<node>``).
_KEY_PREFIX = {("", "nodes"): "minions", ("", "endpoints"): "services/endpoints"}


def _custom(resource: ResourceType) -> bool:
    return resource.schema is not None


def allows_unconditional_update(resource: ResourceType) -> bool:
    """Whether a PUT may leave out ``metadata.resourceVersion``."""
    return not _custom(resource) and (resource.group, resource.plural) not in _CONDITIONAL_ONLY


def has_generation(resource: ResourceType) -> bool:
    """Whether the server keeps ``metadata.generation`` for this kind."""
    return _custom(resource) or (resource.group, resource.plural) in _WITH_GENERATION


def _storage_key(resource: ResourceType, namespace: str | None, name: str) -> str:
    key = (resource.group, resource.plural)
    if key in _KEY_PREFIX:
        prefix = _KEY_PREFIX[key]
    elif _custom(resource) or resource.group == "apiextensions.k8s.io":
        prefix = f"{resource.group}/{resource.plural}"
    else:
        prefix = resource.plural
    scope = f"{namespace}/" if resource.namespaced and namespace else ""
    return f"/registry/{prefix}/{scope}{name}"


def check_put(
    resource: ResourceType,
    name: str,
    namespace: str | None,
    body: Mapping[str, Any],
    current: Mapping[str, Any],
) -> None:
    """Refuse a replacement the real server refuses (wrong uid: 409; no resourceVersion: 422).

    Args:
        resource: the resource written.
        name: the object's name.
        namespace: its namespace.
        body: the new object's ``metadata``.
        current: the stored object's ``metadata``.
    """
    uid = body.get("uid")
    if uid and uid != current.get("uid"):
        raise APIError.conflict(
            resource.group,
            resource.plural,
            name,
            "StorageError: invalid object, Code: 4, Key: "
            f"{_storage_key(resource, namespace, name)}, ResourceVersion: 0, "
            f"AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in "
            f"object meta: {current.get('uid', '')}",
        )
    if not body.get("resourceVersion") and not allows_unconditional_update(resource):
        # The real server names the resource, not the kind, in this one message.
        raise APIError.invalid(
            resource.plural,
            resource.group,
            name,
            [
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.resourceVersion",
                    "message": "Invalid value: 0x0: must be specified for an update",
                }
            ],
        )


def check_patch(
    resource: ResourceType, name: str, patched: Mapping[str, Any], current: Mapping[str, Any]
) -> None:
    """Refuse a patch that changes ``metadata.uid`` (422 field is immutable)."""
    uid = patched.get("uid")
    if uid != current.get("uid"):
        raise APIError.invalid(
            resource.kind,
            resource.group,
            name,
            [
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.uid",
                    "message": f'Invalid value: "{uid or ""}": field is immutable',
                }
            ],
        )


def _desired(resource: ResourceType, obj: Mapping[str, Any]) -> Any:
    skip = {"metadata", "status"} if resource.has_status else {"metadata"}
    part = {k: v for k, v in obj.items() if k not in skip}
    if (resource.group, resource.plural) == ("apps", "deployments"):
        # Annotations are copied to the ReplicaSets, so they count as desired state.
        part["annotations"] = (obj.get("metadata") or {}).get("annotations")
    if (resource.group, resource.plural) == ("", "pods"):
        return obj.get("spec")
    return part


def next_generation(
    resource: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any]
) -> int | None:
    """``metadata.generation`` after an update from ``old`` to ``obj`` (``None``: none kept)."""
    current = (old.get("metadata") or {}).get("generation")
    if not has_generation(resource):
        return int(current) if isinstance(current, int) else None
    generation = int(current) if isinstance(current, int) else 0
    if _desired(resource, obj) != _desired(resource, old):
        generation += 1
    return generation or None


def bump_on_deletion(metadata: MutableMapping[str, Any]) -> None:
    """Deletion starts (``deletionTimestamp`` is being set): a kept generation goes up by one."""
    generation = metadata.get("generation")
    if isinstance(generation, int) and generation > 0 and not metadata.get("deletionTimestamp"):
        metadata["generation"] = generation + 1
