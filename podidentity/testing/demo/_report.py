"""What the demo reports: its options, one result per step, and the observer of its progress."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import attrs

from podidentity.errors import ConfigError
from podidentity.reconciler import ControllerSettings

__all__ = ["DemoObserver", "DemoOptions", "DemoReport", "StepResult", "StepStatus"]

StepStatus = Literal["ok", "failed", "skipped"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigError(f"DemoOptions.{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class DemoOptions:
    """How the demo's world behaves: as real as Azure, only quicker.

    Nothing is made instant: ARM identity writes are still long-running operations polled with
    ``Retry-After`` (which Azure never sets below 1 s), IMDS still learns an identity after the
    write completes, and Azure's request limits still apply.

    Attributes:
        operation_duration: seconds an ARM identity write takes (Azure: tens of seconds;
            the sandbox's default 2).
        propagation_delay: seconds the node's IMDS lags behind a completed write (the
            sandbox's default 5).
        throttling: enforce Azure's request limits.
        pending_timeout: seconds a token proxy waits for a pod's assignment before answering
            "not yet" (the proxy's default 60): every refusal of a pod with no identity takes
            this long.
        controller: the reconciler's settings; the secure defaults unless changed (a test
            turns ``cluster_wide_bindings`` on to watch the demo catch it).
        timeout: the longest any step waits for something to happen before it fails.
    """

    operation_duration: float = attrs.field(default=0.5, validator=_positive)
    propagation_delay: float = attrs.field(default=0.5, validator=_positive)
    throttling: bool = True
    pending_timeout: float = attrs.field(default=1.0, validator=_positive)
    controller: ControllerSettings = attrs.field(factory=ControllerSettings)
    timeout: float = attrs.field(default=60.0, validator=_positive)

    def describe(self) -> str:
        """One sentence on the realism settings, for the demo's header."""
        return (
            f"ARM identity writes take {self.operation_duration:g} s (polled with Retry-After), "
            f"IMDS lags {self.propagation_delay:g} s behind them, Azure throttling is "
            f'{"on" if self.throttling else "off"}; token proxies answer "not yet" after '
            f"{self.pending_timeout:g} s (pending_timeout)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready data."""
        return {
            "operation_duration": self.operation_duration,
            "propagation_delay": self.propagation_delay,
            "throttling": self.throttling,
            "pending_timeout": self.pending_timeout,
            "cluster_wide_bindings": self.controller.cluster_wide_bindings,
            "timeout": self.timeout,
        }


@attrs.frozen(kw_only=True)
class StepResult:
    """How one step of the demo went.

    Attributes:
        number: 1-based position in the demo.
        key: a stable short name (``other-namespace``).
        title: what the step does, for people.
        expected: what should happen.
        status: ``ok`` (behaved as expected), ``failed``, or ``skipped`` (an earlier step it
            depends on failed).
        outcome: what happened, in a few words (why it failed, for a failure).
        seconds: how long the step took.
        details: what the step printed as it ran (never a token or a secret value).
    """

    number: int
    key: str
    title: str
    expected: str
    status: StepStatus
    outcome: str
    seconds: float
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the step behaved as expected."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "number": self.number,
            "key": self.key,
            "title": self.title,
            "expected": self.expected,
            "status": self.status,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "details": list(self.details),
        }


@attrs.frozen(kw_only=True)
class DemoReport:
    """Every step's result, in order.

    Attributes:
        options: the options the demo ran with.
        steps: one result per step.
        seconds: the whole run, start to stop of the sandbox.
    """

    options: DemoOptions
    steps: tuple[StepResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every step behaved as expected."""
        return all(step.ok for step in self.steps)

    @property
    def failures(self) -> tuple[StepResult, ...]:
        """The steps that did not behave as expected (skipped steps are not failures)."""
        return tuple(step for step in self.steps if step.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "options": self.options.to_dict(),
            "steps": [step.to_dict() for step in self.steps],
        }


class DemoObserver(Protocol):
    """Told about each step as it runs (the command line prints progress with it)."""

    def step_started(self, number: int, total: int, title: str, expected: str) -> None:
        """A step begins."""

    def step_detail(self, text: str) -> None:
        """The running step has something to say (never a token or a secret value)."""

    def step_finished(self, result: StepResult) -> None:
        """A step ended (or was skipped)."""
