"""Validation of the built-in kinds the emulator serves, in the real API server's words.

Each check mirrors a rule of ``k8s.io/kubernetes/pkg/apis/*/validation`` for the kinds podidentity
and its tests touch: pods and pod templates (container names, images, ``restartPolicy``,
volume mounts), Secrets and ConfigMaps (keys, size, ``immutable``), Leases, both Event APIs,
``apps/v1`` Deployments, ReplicaSets and DaemonSets (selectors, template labels, strategies,
immutable selector) and ``policy/v1`` PodDisruptionBudgets. Names, labels, annotations and
finalizers are checked for every kind by ``_validation.metadata_problems``. Each problem is a
``Cause`` (``field``, ``reason``, ``message``) that the caller turns into one 422 ``Invalid``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from podidentity.models._names import is_dns1123_label

from ._errors import Cause
from ._validation import (
    field_cause,
    field_invalid,
    field_required,
    qualified_name_problems,
)

__all__ = ["builtin_problems", "builtin_update_problems"]

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_PERCENT = re.compile(r"[0-9]+%\Z")
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)
_SECRET_LIMIT = 1024 * 1024
_IMMUTABLE = "field is immutable"

Problems = list[Cause]


def _not_supported(path: str, value: Any, supported: tuple[str, ...]) -> Cause:
    listed = ", ".join(json.dumps(s) for s in supported)
    return field_cause(
        "FieldValueNotSupported",
        path,
        f"Unsupported value: {json.dumps(value)}: supported values: {listed}",
    )


def _forbidden(path: str, detail: str) -> Cause:
    return field_cause("FieldValueForbidden", path, f"Forbidden: {detail}")


def _duplicate(path: str, value: Any) -> Cause:
    return field_cause("FieldValueDuplicate", path, f"Duplicate value: {json.dumps(value)}")


def _at_least_zero(problems: Problems, path: str, value: Any) -> None:
    if isinstance(value, int) and value < 0:
        problems.append(field_invalid(path, value, "must be greater than or equal to 0"))


# ---------------------------------------------------------------------------------- pod spec


def _containers(spec: Mapping[str, Any], key: str, path: str, volumes: set[str]) -> Problems:
    problems: Problems = []
    seen: set[str] = set()
    for index, container in enumerate(spec.get(key) or ()):
        where = f"{path}.{key}[{index}]"
        name = container.get("name")
        if not name:
            problems.append(field_required(f"{where}.name"))
        else:
            if len(name) > 63:
                problems.append(
                    field_invalid(f"{where}.name", name, "must be no more than 63 characters")
                )
            if not is_dns1123_label(name, limit=None):
                problems.append(field_invalid(f"{where}.name", name, _LABEL_MSG))
            if name in seen:
                problems.append(_duplicate(f"{where}.name", name))
            seen.add(name)
        if not container.get("image"):
            problems.append(field_required(f"{where}.image"))
        for m_index, mount in enumerate(container.get("volumeMounts") or ()):
            mount_name = mount.get("name")
            if mount_name and mount_name not in volumes:
                problems.append(
                    field_cause(
                        "FieldValueNotFound",
                        f"{where}.volumeMounts[{m_index}].name",
                        f"Not found: {json.dumps(mount_name)}",
                    )
                )
        for p_index, port in enumerate(container.get("ports") or ()):
            number = port.get("containerPort")
            if isinstance(number, int) and not 1 <= number <= 65535:
                problems.append(
                    field_invalid(
                        f"{where}.ports[{p_index}].containerPort",
                        number,
                        "must be between 1 and 65535, inclusive",
                    )
                )
    return problems


def pod_spec_problems(
    spec: Mapping[str, Any], path: str, restart_policies: tuple[str, ...] | None = None
) -> Problems:
    """``ValidatePodSpec`` for ``spec`` at ``path`` (``spec`` or ``spec.template.spec``)."""
    problems: Problems = []
    volumes: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or ()):
        name = volume.get("name") or ""
        where = f"{path}.volumes[{index}].name"
        if not name:
            problems.append(field_required(where))
        elif not is_dns1123_label(name):
            problems.append(field_invalid(where, name, _LABEL_MSG))
        elif name in volumes:
            problems.append(_duplicate(where, name))
        volumes.add(name)
    if not spec.get("containers"):
        problems.append(field_required(f"{path}.containers"))
    problems.extend(_containers(spec, "initContainers", path, volumes))
    problems.extend(_containers(spec, "containers", path, volumes))
    policy = spec.get("restartPolicy")
    allowed = restart_policies or ("Always", "OnFailure", "Never")
    if policy is None and restart_policies is not None:
        problems.append(field_required(f"{path}.restartPolicy"))
    elif policy is not None and policy not in allowed:
        problems.append(_not_supported(f"{path}.restartPolicy", policy, allowed))
    dns = spec.get("dnsPolicy")
    dns_allowed = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
    if dns is not None and dns not in dns_allowed:
        problems.append(_not_supported(f"{path}.dnsPolicy", dns, dns_allowed))
    _at_least_zero(
        problems, f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds")
    )
    return problems


def _pod(obj: Mapping[str, Any]) -> Problems:
    return pod_spec_problems(obj.get("spec") or {}, "spec")


# ---------------------------------------------------------------------- secrets, configmaps


def _keys(data: Any, path: str) -> Problems:
    problems: Problems = []
    for key in data or {}:
        where = f"{path}[{key}]"
        if len(key) > 253:
            problems.append(field_invalid(where, key, "must be no more than 253 characters"))
        if not _CONFIG_KEY.match(key):
            problems.append(field_invalid(where, key, _CONFIG_KEY_MSG))
        if key in (".", ".."):
            problems.append(field_invalid(where, key, f"must not be '{key}'"))
    return problems


def _secret(obj: Mapping[str, Any]) -> Problems:
    problems = _keys(obj.get("data"), "data")
    size = sum(len(v) * 3 // 4 for v in (obj.get("data") or {}).values() if isinstance(v, str))
    if size > _SECRET_LIMIT:
        problems.append(
            field_cause(
                "FieldValueTooLong", "data", f"Too long: must have at most {_SECRET_LIMIT} bytes"
            )
        )
    return problems


def _config_map(obj: Mapping[str, Any]) -> Problems:
    problems = _keys(obj.get("data"), "data") + _keys(obj.get("binaryData"), "binaryData")
    for key in set(obj.get("data") or {}) & set(obj.get("binaryData") or {}):
        problems.append(_duplicate(f"data[{key}]", key))
    return problems


def _immutable_data(obj: Mapping[str, Any], old: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    if obj.get("type") != old.get("type") and "type" in old:
        problems.append(field_invalid("type", obj.get("type"), _IMMUTABLE))
    if old.get("immutable"):
        if not obj.get("immutable"):
            problems.append(_forbidden("immutable", "field is immutable when `immutable` is set"))
        for key in ("data", "binaryData"):
            if (obj.get(key) or {}) != (old.get(key) or {}):
                problems.append(_forbidden(key, "field is immutable when `immutable` is set"))
    return problems


# -------------------------------------------------------------------------------------- lease


def _lease(obj: Mapping[str, Any]) -> Problems:
    spec = obj.get("spec") or {}
    problems: Problems = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        problems.append(
            field_invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
        )
    _at_least_zero(problems, "spec.leaseTransitions", spec.get("leaseTransitions"))
    strategy = spec.get("strategy")
    if strategy and strategy != "OldestEmulationVersion":
        problems.append(_not_supported("spec.strategy", strategy, ("OldestEmulationVersion",)))
    if spec.get("preferredHolder") and not strategy:
        problems.append(
            _forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
        )
    return problems


# ------------------------------------------------------------------------------------- events

_REPORTING_LIMIT = 128
_NOTE_LIMIT = 1024


def _event_common(obj: Mapping[str, Any], core: bool) -> Problems:
    """``legacyValidateEvent``, with field names as the request's API spells them."""
    problems: Problems = []
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    involved_key = "involvedObject" if core else "regarding"
    involved = obj.get(involved_key) or {}
    involved_ns = involved.get("namespace") or ""
    # The field is reported as involvedObject.namespace by both APIs (validation runs on the
    # internal type), as on the real server.
    mismatch = field_invalid(
        "involvedObject.namespace", involved_ns, "does not match event.namespace"
    )
    if not obj.get("eventTime"):
        if involved_ns:
            if namespace != involved_ns:
                problems.append(mismatch)
        elif namespace not in ("", "default"):
            problems.append(mismatch)
        return problems
    if not involved_ns and namespace not in ("default", "kube-system"):
        problems.append(mismatch)
    controller_key = "reportingComponent" if core else "reportingController"
    controller = obj.get(controller_key) or ""
    if not controller:
        problems.append(field_required(controller_key))
    problems.extend(qualified_name_problems(controller, controller_key) if controller else [])
    for key, limit in (
        ("reportingInstance", _REPORTING_LIMIT),
        ("action", _REPORTING_LIMIT),
        ("reason", _REPORTING_LIMIT),
    ):
        value = obj.get(key) or ""
        if not value:
            problems.append(field_required(key))
        elif len(value) > limit:
            problems.append(field_invalid(key, "", f"can have at most {limit} characters"))
    note_key = "message" if core else "note"
    if len(obj.get(note_key) or "") > _NOTE_LIMIT:
        problems.append(field_invalid(note_key, "", f"can have at most {_NOTE_LIMIT} characters"))
    return problems


def _core_event(obj: Mapping[str, Any]) -> Problems:
    return _event_common(obj, core=True)


def _events_v1_event(obj: Mapping[str, Any]) -> Problems:
    """``ValidateEventCreate`` for events.k8s.io/v1: the strict rules of the new API."""
    problems = _event_common(obj, core=False)
    if not obj.get("eventTime"):
        problems.append(field_required("eventTime"))
    event_type = obj.get("type") or ""
    if event_type not in ("Normal", "Warning"):
        problems.append(field_invalid("type", "", f"has invalid value: {event_type}"))
    for key in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"):
        if obj.get(key):
            problems.append(field_invalid(key, "", "needs to be unset"))
    source = obj.get("deprecatedSource") or {}
    if source.get("component") or source.get("host"):
        problems.append(field_invalid("deprecatedSource", "", "needs to be unset"))
    series = obj.get("series")
    if isinstance(series, Mapping):
        if int(series.get("count") or 0) < 2:
            problems.append(field_invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            problems.append(field_required("series.lastObservedTime"))
    return problems


_EVENT_IMMUTABLE = (
    "action",
    "eventTime",
    "reason",
    "regarding",
    "related",
    "reportingController",
    "reportingInstance",
    "type",
)


def _events_v1_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> Problems:
    return [
        field_invalid(key, obj.get(key), _IMMUTABLE)
        for key in _EVENT_IMMUTABLE
        if obj.get(key) != old.get(key)
    ]


# ---------------------------------------------------------------------------- label selectors


def go_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.LabelSelector.String()``, how the server prints a selector in an error."""
    if selector is None:
        return "nil"
    labels = selector.get("matchLabels") or {}
    pairs = "".join(f"{k}: {labels[k]}," for k in sorted(labels))
    expressions = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in selector.get("matchExpressions") or ()
    )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{pairs}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )


def _go_map(labels: Mapping[str, Any]) -> str:
    inner = ", ".join(f"{json.dumps(k)}:{json.dumps(labels[k])}" for k in sorted(labels))
    return f"map[string]string{{{inner}}}"


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a ``LabelSelector`` object selects ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, op = expression.get("key", ""), expression.get("operator", "")
        values = expression.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_syntax(selector: Mapping[str, Any], path: str) -> Problems:
    problems: Problems = []
    for index, expression in enumerate(selector.get("matchExpressions") or ()):
        where = f"{path}.matchExpressions[{index}]"
        op = expression.get("operator")
        values = expression.get("values") or []
        if op in ("In", "NotIn") and not values:
            problems.append(
                field_required(
                    f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                )
            )
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append(
                _forbidden(
                    f"{where}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.append(field_invalid(f"{where}.operator", op, "not a valid selector operator"))
        problems.extend(qualified_name_problems(str(expression.get("key", "")), f"{where}.key"))
    return problems


# ------------------------------------------------------------------------------------ apps/v1


def _workload(obj: Mapping[str, Any], kind: str) -> Problems:
    """Selector, template and replicas of a Deployment, ReplicaSet or DaemonSet."""
    spec = obj.get("spec") or {}
    problems: Problems = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, Mapping):
        problems.append(field_required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(
            field_cause(
                "FieldValueInvalid",
                "spec.selector",
                f"Invalid value: {go_label_selector(selector)}: empty selector is invalid for "
                f"{kind}",
            )
        )
    else:
        problems.extend(_selector_syntax(selector, "spec.selector"))
        if not selector_matches(selector, labels):
            problems.append(
                field_cause(
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template "
                    "`labels`",
                )
            )
    if "replicas" in spec:
        _at_least_zero(problems, "spec.replicas", spec.get("replicas"))
    _at_least_zero(problems, "spec.minReadySeconds", spec.get("minReadySeconds"))
    _at_least_zero(problems, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    if not template:
        problems.append(field_required("spec.template"))
    else:
        problems.extend(
            pod_spec_problems(template.get("spec") or {}, "spec.template.spec", ("Always",))
        )
    return problems


def _int_or_percent(problems: Problems, path: str, value: Any) -> int | None:
    """``ValidatePositiveIntOrPercent`` (and at most 100%); the value as a number."""
    if isinstance(value, int):
        _at_least_zero(problems, path, value)
        return value
    if isinstance(value, str):
        if not _PERCENT.match(value):
            problems.append(field_invalid(path, value, _PERCENT_MSG))
            return None
        if int(value[:-1]) > 100:
            problems.append(field_invalid(path, value, "must not be greater than 100%"))
        return int(value[:-1])
    return None


def _deployment(obj: Mapping[str, Any]) -> Problems:
    problems = _workload(obj, "deployment")
    spec = obj.get("spec") or {}
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind not in ("Recreate", "RollingUpdate"):
        problems.append(_not_supported("spec.strategy.type", kind, ("Recreate", "RollingUpdate")))
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate" and rolling is not None:
        problems.append(
            _forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )
        )
    if kind == "RollingUpdate" and isinstance(rolling, Mapping):
        base = "spec.strategy.rollingUpdate"
        unavailable = _int_or_percent(
            problems, f"{base}.maxUnavailable", rolling.get("maxUnavailable")
        )
        surge = _int_or_percent(problems, f"{base}.maxSurge", rolling.get("maxSurge"))
        if unavailable == 0 and surge == 0:
            problems.append(
                field_invalid(
                    f"{base}.maxUnavailable",
                    rolling.get("maxUnavailable"),
                    "may not be 0 when `maxSurge` is 0",
                )
            )
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= int(spec.get("minReadySeconds") or 0):
        problems.append(
            field_invalid(
                "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
            )
        )
    return problems


def _daemon_set(obj: Mapping[str, Any]) -> Problems:
    problems = _workload(obj, "daemonset")
    strategy = (obj.get("spec") or {}).get("updateStrategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind not in ("OnDelete", "RollingUpdate"):
        problems.append(
            _not_supported("spec.updateStrategy.type", kind, ("OnDelete", "RollingUpdate"))
        )
    return problems


def _replica_set(obj: Mapping[str, Any]) -> Problems:
    return _workload(obj, "replicaset")


def _selector_immutable(obj: Mapping[str, Any], old: Mapping[str, Any]) -> Problems:
    new_selector = (obj.get("spec") or {}).get("selector")
    old_selector = (old.get("spec") or {}).get("selector")
    if new_selector == old_selector:
        return []
    return [
        field_cause(
            "FieldValueInvalid",
            "spec.selector",
            f"Invalid value: {go_label_selector(new_selector)}: {_IMMUTABLE}",
        )
    ]


# ----------------------------------------------------------------------------------- policy/v1


def _pdb(obj: Mapping[str, Any]) -> Problems:
    spec = obj.get("spec") or {}
    problems: Problems = []
    if "minAvailable" in spec and "maxUnavailable" in spec:
        problems.append(
            field_cause(
                "FieldValueInvalid",
                "spec",
                "Invalid value: policy.PodDisruptionBudgetSpec"
                f"{json.dumps(spec, sort_keys=True)}: minAvailable and maxUnavailable cannot "
                "be both set",
            )
        )
    for key in ("minAvailable", "maxUnavailable"):
        if key in spec:
            _int_or_percent(problems, f"spec.{key}", spec[key])
    selector = spec.get("selector")
    if isinstance(selector, Mapping):
        problems.extend(_selector_syntax(selector, "spec.selector"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        problems.append(
            _not_supported(
                "spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget")
            )
        )
    return problems


# -------------------------------------------------------------------------------------- table

Check = Callable[[Mapping[str, Any]], Problems]
UpdateCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Problems]

_CREATE: Mapping[tuple[str, str], Check] = {
    ("", "pods"): _pod,
    ("", "secrets"): _secret,
    ("", "configmaps"): _config_map,
    ("", "events"): _core_event,
    ("events.k8s.io", "events"): _events_v1_event,
    ("coordination.k8s.io", "leases"): _lease,
    ("apps", "deployments"): _deployment,
    ("apps", "replicasets"): _replica_set,
    ("apps", "daemonsets"): _daemon_set,
    ("policy", "poddisruptionbudgets"): _pdb,
}
_UPDATE: Mapping[tuple[str, str], UpdateCheck] = {
    ("", "secrets"): _immutable_data,
    ("", "configmaps"): _immutable_data,
    ("events.k8s.io", "events"): _events_v1_update,
    ("apps", "deployments"): _selector_immutable,
    ("apps", "replicasets"): _selector_immutable,
    ("apps", "daemonsets"): _selector_immutable,
}


def builtin_problems(
    group: str, plural: str, obj: Mapping[str, Any], *, updating: bool = False
) -> Problems:
    """What the real server's validation of this kind finds wrong with ``obj``.

    ``updating``: an events.k8s.io/v1 update is held only to the legacy rules (and its
    immutable fields), not to the create-only "needs to be unset" rules.
    """
    if updating and (group, plural) == ("events.k8s.io", "events"):
        return _event_common(obj, core=False)
    check = _CREATE.get((group, plural))
    return check(obj) if check is not None else []


def builtin_update_problems(
    group: str, plural: str, obj: Mapping[str, Any], old: Mapping[str, Any]
) -> Problems:
    """What the real server's update validation (immutable fields) finds wrong."""
    check = _UPDATE.get((group, plural))
    return check(obj, old) if check is not None else []
