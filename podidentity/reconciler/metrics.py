"""Prometheus metrics of one controller, in its own registry (no process-wide state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ControllerMetrics"]


class _Assignments(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "podidentity_assignments",
            "AzureAssignedIdentities by status.",
            labels=["status"],
        )
        for state, count in sorted(self._counts().items()):
            family.add_metric([state], count)
        yield family


class ControllerMetrics:
    """The controller's metrics; expose :attr:`registry` (``generate_latest(registry)``).

    Args:
        registry: where to register; a new ``CollectorRegistry`` when ``None``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            "podidentity_reconcile_duration_seconds",
            "Time to reconcile one machine.",
            registry=r,
        )
        self.reconcile_errors = Counter(
            "podidentity_reconcile_errors_total",
            "Reconciles that failed, by error class.",
            ["error"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "podidentity_queue_depth", "Keys waiting in the work queue.", registry=r
        )
        self.arm_latency = Histogram(
            "podidentity_arm_request_duration_seconds",
            "ARM request latency, by operation.",
            ["operation"],
            registry=r,
        )
        self.arm_errors = Counter(
            "podidentity_arm_errors_total",
            "ARM errors, by operation and error code.",
            ["operation", "code"],
            registry=r,
        )
        self.leader = Gauge("podidentity_leader", "1 while this replica is the leader.", registry=r)

    def watch_assignments(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report ``podidentity_assignments{status=...}`` from ``counts`` at scrape time."""
        self.registry.register(_Assignments(counts))

    def observe_arm(self, operation: str, status: int, code: str, seconds: float) -> None:
        """An :class:`~podidentity.azure.ArmClient` observer."""
        self.arm_latency.labels(operation).observe(seconds)
        if code or status >= 400 or status == 0:
            self.arm_errors.labels(operation, code or str(status)).inc()
