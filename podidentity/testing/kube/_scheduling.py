"""What the scheduler and the kubelet decide about a pod, as pure functions over dicts.

The emulator has no scheduler or kubelet processes; :mod:`._cluster` calls these functions when
pods and nodes change and writes the results. Keeping the decisions here makes them testable
without a server and keeps the wire shapes (conditions, container statuses) in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "accepted_status",
    "choose_node",
    "is_node_ready",
    "node_internal_ip",
    "pending_status",
    "running_status",
    "sandbox_status",
    "terminated_status",
    "unschedulable_message",
    "why_not",
]

Obj = Mapping[str, Any]


def is_node_ready(node: Obj) -> bool:
    """Whether the node's ``Ready`` condition is ``True``."""
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_internal_ip(node: Obj) -> str | None:
    """The node's first ``InternalIP``, if it has one."""
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return None


def why_not(pod: Obj, node: Obj) -> str | None:
    """Why the scheduler would not place the pod on the node; ``None`` if it fits.

    The reasons are the scheduler's own phrases, which it counts per node in the
    ``PodScheduled`` condition message.
    """
    if not is_node_ready(node):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    if node.get("spec", {}).get("unschedulable"):
        return "node(s) were unschedulable"
    selector = pod.get("spec", {}).get("nodeSelector") or {}
    labels = node.get("metadata", {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def unschedulable_message(pod: Obj, nodes: Iterable[Obj]) -> str:
    """The ``PodScheduled=False`` message: ``0/N nodes are available: ...``."""
    counts: dict[str, int] = {}
    total = 0
    for node in nodes:
        total += 1
        reason = why_not(pod, node)
        if reason is not None:
            counts[reason] = counts.get(reason, 0) + 1
    if total == 0:
        return "no nodes available to schedule pods"
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
    return (
        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


def choose_node(pod: Obj, nodes: Iterable[Obj], pods_per_node: Mapping[str, int]) -> Obj | None:
    """The node the scheduler binds the pod to: the fitting node with the fewest pods.

    Ties go to the node name that sorts first, so placement is deterministic in tests.
    """
    fitting = [node for node in nodes if why_not(pod, node) is None]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda n: (pods_per_node.get(n["metadata"]["name"], 0), n["metadata"]["name"]),
    )


def _condition(kind: str, status: str, now: str, **extra: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now,
        **extra,
    }


def pending_status(message: str, *, now: str) -> dict[str, Any]:
    """A pod the scheduler could not place yet."""
    return {
        "phase": "Pending",
        "conditions": [
            _condition("PodScheduled", "False", now, reason="Unschedulable", message=message)
        ],
        "qosClass": "BestEffort",
    }


def _container_id(pod_uid: str, name: str) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}".encode()).hexdigest()
    return f"containerd://{digest}"


def running_status(pod: Obj, *, pod_ip: str, host_ip: str, now: str) -> dict[str, Any]:
    """The status the kubelet reports once the pod's containers run and are ready.

    Args:
        pod: the pod (its containers name the statuses).
        pod_ip: ``status.podIP`` (the node's address for ``hostNetwork`` pods).
        host_ip: ``status.hostIP``, the node's InternalIP.
        now: the RFC 3339 timestamp used for every transition.
    """
    spec = pod.get("spec", {})
    uid = str(pod.get("metadata", {}).get("uid", ""))

    def statuses(key: str, *, finished: bool) -> list[dict[str, Any]]:
        out = []
        for container in spec.get(key) or []:
            image = container.get("image", "")
            container_id = _container_id(uid, container["name"])
            state: dict[str, Any] = {"running": {"startedAt": now}}
            if finished:
                # Init containers have run to completion before the app containers start.
                state = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": now,
                        "finishedAt": now,
                        "containerID": container_id,
                    }
                }
            out.append(
                {
                    "name": container["name"],
                    "image": image,
                    "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                    "containerID": container_id,
                    "ready": not finished,
                    "started": not finished,
                    "restartCount": 0,
                    "state": state,
                    "lastState": {},
                }
            )
        return out

    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [
            _condition("PodReadyToStartContainers", "True", now),
            _condition("Initialized", "True", now),
            _condition("Ready", "True", now),
            _condition("ContainersReady", "True", now),
            _condition("PodScheduled", "True", now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": statuses("containers", finished=False),
        "qosClass": "BestEffort",
    }
    init = statuses("initContainers", finished=True)
    if init:
        status["initContainerStatuses"] = init
    return status


def _waiting(pod: Obj, reason: str) -> list[dict[str, Any]]:
    return [
        {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {"waiting": {"reason": reason}},
            "lastState": {},
        }
        for container in (pod.get("spec", {}).get("containers") or [])
    ]


def _not_ready(pod: Obj, kind: str, now: str) -> dict[str, Any]:
    names = " ".join(c["name"] for c in pod.get("spec", {}).get("containers") or [])
    return _condition(
        kind,
        "False",
        now,
        reason="ContainersNotReady",
        message=f"containers with unready status: [{names}]",
    )


def accepted_status(pod: Obj, *, host_ip: str, now: str) -> dict[str, Any]:
    """The kubelet's first status for a pod it admitted: the node's address, no pod IP yet.

    Containers wait in ``ContainerCreating`` while the sandbox (and its network) is set up.
    """
    status = dict(pod.get("status") or {})
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"),
        _condition("PodScheduled", "True", now),
    )
    status.update(
        {
            "phase": "Pending",
            "conditions": [
                _condition("PodReadyToStartContainers", "False", now),
                _condition("Initialized", "True", now),
                _not_ready(pod, "Ready", now),
                _not_ready(pod, "ContainersReady", now),
                scheduled,
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": now,
            "containerStatuses": _waiting(pod, "ContainerCreating"),
            "qosClass": "BestEffort",
        }
    )
    return status


def sandbox_status(pod: Obj, *, pod_ip: str, now: str) -> dict[str, Any]:
    """The status once the pod's sandbox has its network: ``podIP`` set, containers starting."""
    status = dict(pod.get("status") or {})
    conditions = [
        _condition("PodReadyToStartContainers", "True", now)
        if c.get("type") == "PodReadyToStartContainers"
        else c
        for c in status.get("conditions") or []
    ]
    status.update({"conditions": conditions, "podIP": pod_ip, "podIPs": [{"ip": pod_ip}]})
    return status


def terminated_status(pod: Obj, *, now: str) -> dict[str, Any]:
    """The kubelet's last status for a pod whose grace period ran out: killed, ``Failed``.

    Containers that did not stop on SIGTERM are killed with SIGKILL (exit code 137) at the end
    of the grace period, and the kubelet reports the pod's terminal phase before it deletes it.
    """
    status = dict(pod.get("status") or {})
    conditions = []
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Ready", "ContainersReady", "PodReadyToStartContainers"):
            condition = _condition(condition["type"], "False", now)
            if condition["type"] != "PodReadyToStartContainers":
                condition["reason"] = "PodCompleted"
        conditions.append(condition)
    statuses = []
    for container in status.get("containerStatuses") or []:
        started = (container.get("state") or {}).get("running", {}).get("startedAt", now)
        terminated = {
            "exitCode": 137,
            "reason": "Error",
            "startedAt": started,
            "finishedAt": now,
        }
        if container.get("containerID"):
            terminated["containerID"] = container["containerID"]
        statuses.append(
            {**container, "ready": False, "started": False, "state": {"terminated": terminated}}
        )
    status.update({"phase": "Failed", "conditions": conditions, "containerStatuses": statuses})
    return status
