"""ARM's and Compute's request limits, enforced by default.

Two layers throttle a call to ``management.azure.com``, as in Azure:

- **ARM, per subscription**: read and write budgets that refill over time. Every answer
  reports what is left in ``x-ms-ratelimit-remaining-subscription-reads`` /
  ``-writes``; beyond the budget ARM answers ``429 SubscriptionRequestsThrottled`` with
  ``Retry-After``.
- **Compute, per subscription and operation group**: ``GET``s count against
  ``LowCostGet3Min``/``LowCostGet30Min``, VM writes against ``PutVM3Min``/``PutVM30Min``, scale
  set writes against ``PutVMScaleSet3Min``/``PutVMScaleSet30Min``. Every Compute answer
  reports them in ``x-ms-ratelimit-remaining-resource``
  (``Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199``); beyond one, Compute
  answers ``429 OperationNotAllowed`` whose ``details`` name the group (``TooManyRequests``).

The figures are Azure's documented (ARM: 250 reads and 200 writes of burst, refilling at 25 and
10 per second) or commonly observed (Compute's groups) defaults; tests that need unlimited rates
set ``ArmService.limits = None``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import attrs

from podidentity.testing._ratelimit import RateLimit, SlidingWindow

__all__ = ["ArmLimits", "ArmThrottle", "ComputeGroup"]

ComputeGroup = tuple[str, RateLimit]


def _default_compute_groups() -> Mapping[str, tuple[ComputeGroup, ...]]:
    return {
        "get": (
            ("LowCostGet3Min", RateLimit(4000, 180.0)),
            ("LowCostGet30Min", RateLimit(32000, 1800.0)),
        ),
        "virtualMachines": (
            ("PutVM3Min", RateLimit(240, 180.0)),
            ("PutVM30Min", RateLimit(1200, 1800.0)),
        ),
        "virtualMachineScaleSets": (
            ("PutVMScaleSet3Min", RateLimit(60, 180.0)),
            ("PutVMScaleSet30Min", RateLimit(300, 1800.0)),
        ),
    }


@attrs.frozen
class ArmLimits:
    """The budgets ARM and Compute enforce.

    Attributes:
        subscription_reads: ARM's read budget per subscription (250, refilling at 25/s).
        subscription_writes: ARM's write budget per subscription (200, refilling at 10/s).
        compute: Compute's operation groups, by ``"get"`` (every GET) or the resource kind
            written (``"virtualMachines"``, ``"virtualMachineScaleSets"``): ``(name, limit)``.
    """

    subscription_reads: RateLimit = attrs.field(factory=lambda: RateLimit(250, 10.0))
    subscription_writes: RateLimit = attrs.field(factory=lambda: RateLimit(200, 20.0))
    compute: Mapping[str, tuple[ComputeGroup, ...]] = attrs.field(
        factory=_default_compute_groups, hash=False
    )


class ArmThrottle:
    """Counts requests per subscription (and per Compute group) for one :class:`ArmLimits`."""

    def __init__(self, limits: ArmLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], SlidingWindow] = {}

    def _window(self, subscription: str, name: str, limit: RateLimit) -> SlidingWindow:
        key = (subscription.lower(), name)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = limit.window(self._clock)
            return window

    def subscription(self, subscription: str, *, write: bool) -> tuple[str, SlidingWindow]:
        """The subscription budget a request counts against: (``reads``/``writes``, window)."""
        if write:
            return "writes", self._window(subscription, "writes", self.limits.subscription_writes)
        return "reads", self._window(subscription, "reads", self.limits.subscription_reads)

    def compute_groups(self, subscription: str, group: str) -> list[tuple[str, SlidingWindow]]:
        """Compute's operation-group windows for ``group`` (``get`` or a resource kind)."""
        return [
            (name, self._window(subscription, name, limit))
            for name, limit in self.limits.compute.get(group, ())
        ]
