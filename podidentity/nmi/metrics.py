"""Prometheus metrics of one token proxy (names under ``podidentity_nmi_``).

Each :class:`~podidentity.nmi.TokenProxy` has its own registry, so several proxies in one
process (the sandbox runs one per node) never collide; the runner serves it on the probe port.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProxyMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ProxyMetrics:
    """The proxy's collectors, registered in :attr:`registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "podidentity_nmi_requests",
            "Requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "podidentity_nmi_refusals",
            "Requests refused or failed, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "podidentity_nmi_request_duration_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "podidentity_nmi_token_fetch_duration_seconds",
            "Time to fetch a token upstream (with retries), by identity type.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "podidentity_nmi_token_cache_hits",
            "Tokens served from the cache.",
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "podidentity_nmi_token_cache_misses",
            "Token requests that waited for an upstream fetch.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.cache_entries = Gauge(
            "podidentity_nmi_token_cache_entries", "Tokens in the cache.", registry=self.registry
        )

    def answered(self, route: str, status: int, seconds: float) -> None:
        """Count one answer and its duration (label children cached: this is the hot path)."""
        key = (route, str(status))
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, key[1]),
                self.request_seconds.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
