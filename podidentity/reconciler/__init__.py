"""The reconciler (MIC): from pods and bindings to identities assigned on the nodes.

The pure core (:class:`Snapshot`, :class:`Plan` and its parts) decides; the controller carries
decisions out against Kubernetes and ARM. See ``docs/reconciler.md``.
"""

from __future__ import annotations

from podidentity.reconciler._views import PREEXISTING_ANNOTATION, AssignedView, PodView
from podidentity.reconciler.controller import Controller
from podidentity.reconciler.health import probe_app
from podidentity.reconciler.metrics import ControllerMetrics
from podidentity.reconciler.plan import (
    POD_LABEL,
    POD_NAMESPACE_LABEL,
    AssignedDelete,
    AssignedUpdate,
    Desired,
    MachineChange,
    Plan,
    Skipped,
    StatusChange,
)
from podidentity.reconciler.queue import TokenBucket, WorkQueue
from podidentity.reconciler.runner import ControllerRunner
from podidentity.reconciler.settings import ControllerSettings
from podidentity.reconciler.snapshot import PlanRules, Snapshot

__all__ = [
    "POD_LABEL",
    "POD_NAMESPACE_LABEL",
    "PREEXISTING_ANNOTATION",
    "AssignedDelete",
    "AssignedUpdate",
    "AssignedView",
    "Controller",
    "ControllerMetrics",
    "ControllerRunner",
    "ControllerSettings",
    "Desired",
    "MachineChange",
    "Plan",
    "PlanRules",
    "PodView",
    "Skipped",
    "Snapshot",
    "StatusChange",
    "TokenBucket",
    "WorkQueue",
    "probe_app",
]
