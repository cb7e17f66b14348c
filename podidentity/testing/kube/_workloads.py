"""``apps/v1`` Deployments, ReplicaSets, DaemonSets and ``policy/v1`` PodDisruptionBudgets.

Stored, defaulted and validated as a real server does, with their ``kubectl get`` columns, so
``kubectl apply --dry-run=server -f deploy/`` checks real manifests. No controller runs: a
Deployment never gets ReplicaSets or pods, and ``status`` stays what its writers put there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._printers import Printer, since
from ._resources import ResourceType

__all__ = ["WORKLOAD_RESOURCES", "builtin_defaults", "pod_spec_defaults"]

_NONE = "<none>"


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """The defaults the API server sets on a pod template's spec (``SetDefaults_PodSpec``)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        if isinstance(container, dict):
            image = str(container.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or ():
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _template_defaults(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template_spec = template.setdefault("spec", {})
        if isinstance(template_spec, dict):
            pod_spec_defaults(template_spec)


def builtin_defaults(group: str, plural: str, obj: dict[str, Any]) -> None:
    """Defaults of the kinds in this module, in place (``SetDefaults_Deployment``, ...)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if (group, plural) == ("apps", "deployments"):
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _template_defaults(spec)
    elif (group, plural) == ("apps", "replicasets"):
        spec.setdefault("replicas", 1)
        _template_defaults(spec)
    elif (group, plural) == ("apps", "daemonsets"):
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        _template_defaults(spec)


# -------------------------------------------------------------------------------- printers


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, Mapping) else None
    return obj


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: ``app=web,tier in (a,b)`` or ``<none>``."""
    if not selector:
        return _NONE
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or ():
        key, op = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(expression.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or _NONE


def _containers(obj: Mapping[str, Any]) -> tuple[str, str]:
    containers = _get(obj, "spec", "template", "spec", "containers") or []
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


def _deployment_row(obj: Mapping[str, Any]) -> list[Any]:
    status = obj.get("status") or {}
    names, images = _containers(obj)
    return [
        _get(obj, "metadata", "name") or "",
        f"{int(status.get('readyReplicas') or 0)}/{int(_get(obj, 'spec', 'replicas') or 0)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        since(_get(obj, "metadata", "creationTimestamp")),
        names,
        images,
        format_selector(_get(obj, "spec", "selector")),
    ]


def _replica_set_row(obj: Mapping[str, Any]) -> list[Any]:
    status = obj.get("status") or {}
    names, images = _containers(obj)
    return [
        _get(obj, "metadata", "name") or "",
        int(_get(obj, "spec", "replicas") or 0),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        since(_get(obj, "metadata", "creationTimestamp")),
        names,
        images,
        format_selector(_get(obj, "spec", "selector")),
    ]


def _daemon_set_row(obj: Mapping[str, Any]) -> list[Any]:
    status = obj.get("status") or {}
    names, images = _containers(obj)
    node_selector = _get(obj, "spec", "template", "spec", "nodeSelector") or {}
    return [
        _get(obj, "metadata", "name") or "",
        int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0),
        int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or _NONE,
        since(_get(obj, "metadata", "creationTimestamp")),
        names,
        images,
        format_selector(_get(obj, "spec", "selector")),
    ]


def _pdb_row(obj: Mapping[str, Any]) -> list[Any]:
    spec = obj.get("spec") or {}
    return [
        _get(obj, "metadata", "name") or "",
        str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
        str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
        int(_get(obj, "status", "disruptionsAllowed") or 0),
        since(_get(obj, "metadata", "creationTimestamp")),
    ]


_WIDE = (("Containers", 1, ""), ("Images", 1, ""), ("Selector", 1, ""))
DEPLOYMENT_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Ready", 0, ""),
        ("Up-to-date", 0, ""),
        ("Available", 0, ""),
        ("Age", 0, ""),
        *_WIDE,
    ),
    row=_deployment_row,
)
REPLICA_SET_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Desired", 0, ""),
        ("Current", 0, ""),
        ("Ready", 0, ""),
        ("Age", 0, ""),
        *_WIDE,
    ),
    row=_replica_set_row,
)
DAEMON_SET_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Desired", 0, ""),
        ("Current", 0, ""),
        ("Ready", 0, ""),
        ("Up-to-date", 0, ""),
        ("Available", 0, ""),
        ("Node Selector", 0, ""),
        ("Age", 0, ""),
        *_WIDE,
    ),
    row=_daemon_set_row,
)
PDB_PRINTER = Printer(
    columns=(
        ("Name", 0, "name"),
        ("Min Available", 0, ""),
        ("Max Unavailable", 0, ""),
        ("Allowed Disruptions", 0, ""),
        ("Age", 0, ""),
    ),
    row=_pdb_row,
)


def _apps(plural: str, kind: str, short: str, printer: Printer) -> ResourceType:
    return ResourceType(
        group="apps",
        version="v1",
        plural=plural,
        kind=kind,
        namespaced=True,
        singular=kind.lower(),
        short_names=(short,),
        subresources=("status",),
        categories=("all",),
        printer=printer,
    )


WORKLOAD_RESOURCES: tuple[ResourceType, ...] = (
    _apps("deployments", "Deployment", "deploy", DEPLOYMENT_PRINTER),
    _apps("replicasets", "ReplicaSet", "rs", REPLICA_SET_PRINTER),
    _apps("daemonsets", "DaemonSet", "ds", DAEMON_SET_PRINTER),
    ResourceType(
        group="policy",
        version="v1",
        plural="poddisruptionbudgets",
        kind="PodDisruptionBudget",
        namespaced=True,
        singular="poddisruptionbudget",
        short_names=("pdb",),
        subresources=("status",),
        printer=PDB_PRINTER,
    ),
)
