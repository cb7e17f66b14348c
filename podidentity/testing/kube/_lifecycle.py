"""A pod's life as the API server rules it: grace periods, immutable spec, binding.

Pure functions over dicts, called by :mod:`._apiserver` (deletion, updates) and by the
``pods/binding`` subresource that :func:`install_binding` serves. What the scheduler and the
kubelet *do* lives in :mod:`._cluster`; what the server *allows* lives here, with the real
server's wording, so that clients meet the same refusals they meet in a cluster.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import APIError, Cause
from ._validation import field_cause, field_required

if TYPE_CHECKING:
    from ._apiserver import APIRequest, APIServer

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "POD_UPDATE_FORBIDDEN",
    "bind",
    "install_binding",
    "pod_grace_period",
    "pod_update_problems",
    "scheduled_condition",
]

#: ``spec.terminationGracePeriodSeconds`` when a pod does not say.
DEFAULT_GRACE_PERIOD = 30

#: The real server's refusal of a pod spec change (``ValidatePodUpdate``), word for word.
POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)

_Obj = Mapping[str, Any]


def pod_grace_period(pod: _Obj, requested: int | None) -> int:
    """The grace period a DELETE of ``pod`` gets, as the pod strategy decides it.

    ``requested`` is ``DeleteOptions.gracePeriodSeconds`` (``None``: the pod's
    ``spec.terminationGracePeriodSeconds``, default 30). A pod that is not bound to a node, or
    has already finished, goes at once: no kubelet has anything to stop. A negative period is
    raised to 1 second.
    """
    spec = pod.get("spec") or {}
    period = (
        requested
        if requested is not None
        else spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
    )
    if not spec.get("nodeName"):
        return 0
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    period = int(period if period is not None else DEFAULT_GRACE_PERIOD)
    return 1 if period < 0 else period


def _without_images(containers: Any) -> Any:
    if not isinstance(containers, list):
        return containers
    out = []
    for container in containers:
        if isinstance(container, dict):
            container = {k: v for k, v in container.items() if k != "image"}
        out.append(container)
    return out


def _tolerations_only_added(old: Any, new: Any) -> bool:
    old_list = old if isinstance(old, list) else []
    new_list = new if isinstance(new, list) else []
    return all(toleration in new_list for toleration in old_list)


def pod_update_problems(old: _Obj, new: _Obj) -> list[Cause]:
    """Why an update of a pod's spec is refused (``[]``: allowed).

    Only container and init-container images, ``activeDeadlineSeconds`` (set or lowered),
    additions to ``tolerations`` and a negative ``terminationGracePeriodSeconds`` raised to 1
    may change; ``nodeName`` is set through ``pods/binding`` only.
    """
    old_spec = dict(old.get("spec") or {})
    new_spec = dict(new.get("spec") or {})
    if old_spec == new_spec:
        return []
    problems: list[Cause] = []
    old_deadline, new_deadline = (
        old_spec.get("activeDeadlineSeconds"),
        new_spec.get("activeDeadlineSeconds"),
    )
    if new_deadline != old_deadline and (
        new_deadline is None or (old_deadline is not None and int(new_deadline) > int(old_deadline))
    ):
        problems.append(
            field_cause(
                "FieldValueInvalid",
                "spec.activeDeadlineSeconds",
                f"Invalid value: {json.dumps(new_deadline)}: must be less than or equal to "
                "previous value",
            )
        )
    tolerations_ok = _tolerations_only_added(
        old_spec.get("tolerations"), new_spec.get("tolerations")
    )
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    new_grace = new_spec.get("terminationGracePeriodSeconds")
    grace_ok = new_grace == old_grace or (
        isinstance(old_grace, int) and old_grace < 0 and new_grace == 1
    )
    munged_old, munged_new = copy.deepcopy(old_spec), copy.deepcopy(new_spec)
    for spec in (munged_old, munged_new):
        for key in ("containers", "initContainers"):
            if key in spec:
                spec[key] = _without_images(spec[key])
        spec.pop("activeDeadlineSeconds", None)
        if tolerations_ok:
            spec.pop("tolerations", None)
        if grace_ok:
            spec.pop("terminationGracePeriodSeconds", None)
    if munged_old != munged_new:
        changed = sorted(
            key
            for key in set(munged_old) | set(munged_new)
            if munged_old.get(key) != munged_new.get(key)
        )
        # The real server appends a Go diff of the two specs; the changed fields stand in.
        detail = "\n" + "\n".join(
            f"  spec.{key}: {json.dumps(munged_old.get(key))} -> {json.dumps(munged_new.get(key))}"
            for key in changed
        )
        problems.append(field_cause("FieldValueForbidden", "spec", POD_UPDATE_FORBIDDEN + detail))
    return problems


def scheduled_condition(now: str) -> dict[str, Any]:
    """``PodScheduled=True``, what a successful binding records."""
    return {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }


def _binding_problems(binding: _Obj) -> list[Cause]:
    target = binding.get("target")
    if not isinstance(target, Mapping):
        return [field_required("target")]
    problems: list[Cause] = []
    kind = target.get("kind")
    if kind not in (None, "", "Node"):
        problems.append(
            field_cause(
                "FieldValueNotSupported",
                "target.kind",
                f'Unsupported value: "{kind}": supported values: "Node", "<empty>"',
            )
        )
    if not target.get("name"):
        problems.append(field_required("target.name"))
    return problems


async def bind(
    api: APIServer,
    namespace: str,
    name: str,
    node: str,
    *,
    uid: str | None = None,
    annotations: Mapping[str, str] | None = None,
    now: str,
) -> dict[str, Any]:
    """Bind a pod to ``node`` as ``POST pods/NAME/binding`` does; returns the stored pod.

    Sets ``spec.nodeName``, copies the binding's annotations and records ``PodScheduled=True``
    in one write (one MODIFIED event), bypassing the spec immutability that refuses the same
    change through an update.

    Raises:
        APIError: 404 for a missing pod; 409 if it is already bound, being deleted, or its
            UID is not ``uid``.
    """
    pods = api.resource("pods")
    current = api.get_stored(pods, name, namespace)
    meta = current.obj["metadata"]
    if uid and uid != meta.get("uid"):
        raise APIError.conflict(
            "",
            "pods",
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{meta.get('uid')}",
        )
    bound = (current.obj.get("spec") or {}).get("nodeName")
    if bound:
        raise APIError.conflict(
            "", "pods/binding", name, f'pod {name} is already assigned to node "{bound}"'
        )
    if meta.get("deletionTimestamp"):
        raise APIError.conflict(
            "", "pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host"
        )
    pod = current.copy()
    pod.setdefault("spec", {})["nodeName"] = node
    if annotations:
        pod["metadata"].setdefault("annotations", {}).update(annotations)
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(scheduled_condition(now))
    status["conditions"] = conditions
    stored = api.commit(pods, "MODIFIED", pod, current.obj)
    return stored.copy()


def install_binding(api: APIServer, now: Any) -> None:
    """Serve ``POST /api/v1/namespaces/NS/pods/NAME/binding`` (``now()``: a timestamp).

    Also the older ``POST /api/v1/namespaces/NS/bindings`` (the pod named by the Binding's
    ``metadata.name``), which the real server still serves.
    """

    async def handle(request: APIRequest) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, Mapping):
            raise APIError.bad_request("the body of the request must be a Binding object")
        metadata = body.get("metadata") or {}
        name = request.name or str(metadata.get("name") or "")
        if not name:
            raise APIError.invalid("Binding", "", "", [field_required("metadata.name")])
        if metadata.get("name") and metadata["name"] != name:
            raise APIError.bad_request("name in URL does not match name in Binding object")
        problems = _binding_problems(body)
        if problems:
            raise APIError.invalid("Binding", "", name, problems)
        if request.query.get("dryRun") == "All":
            api.get_stored(api.resource("pods"), name, request.namespace)
        else:
            await bind(
                api,
                request.namespace or "",
                name,
                str(body["target"]["name"]),
                uid=metadata.get("uid"),
                annotations=metadata.get("annotations"),
                now=now(),
            )
        return 201, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    api.add_subresource("pods", "binding", "POST", handle)
    api.add_virtual_resource(
        "", "v1", "bindings", "Binding", namespaced=True, verbs=("create",), handler=handle
    )
