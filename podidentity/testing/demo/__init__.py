"""``podidentity demo``: the aad-pod-identity tutorial, end to end, in a fresh sandbox.

:func:`run_demo` starts a :class:`~podidentity.testing.Sandbox` with its default world
(:func:`~podidentity.testing.default_world.populate_default_world`: a VM node and a scale-set
node, a vault with a secret, two user-assigned identities) and the real components — the
reconciler (controller), one token proxy per node, the Key Vault helper — then walks through
the seed article:

1. create an ``AzureIdentity``, an ``AzureIdentityBinding`` and a labelled pod;
2. watch the controller assign the identity (``AzureAssignedIdentity`` ``Assigned``, the
   identity on the node's scale set or VM in ARM);
3. the pod gets a token through its node's token proxy with unmodified azure-identity
   ``ManagedIdentityCredential``, and reads the secret with
   :func:`podidentity.keyvault.get_secret`;

then shows the seed's four glitches fixed, each refused and checked at the controller (no
decision, no ``AzureAssignedIdentity``) and at the token proxy (no token): a pod in another
namespace, a forged ``aadpodidbinding`` label on a pod with the wrong service account, a binding
with a label selector (only the matching pod gets the identity), and a pod asking for an
identity it was not given. Each step is timed; the report says which behaved as expected.
Nothing prints or returns a token or a secret value.
"""

from __future__ import annotations

import logging
import time

from podidentity.testing.demo._cluster import Misbehaved
from podidentity.testing.demo._report import (
    DemoObserver,
    DemoOptions,
    DemoReport,
    StepResult,
    StepStatus,
)
from podidentity.testing.demo._steps import STEPS, Scenario, Step

__all__ = ["DemoObserver", "DemoOptions", "DemoReport", "StepResult", "StepStatus", "run_demo"]

logger = logging.getLogger(__name__)


class _Quiet:
    def step_started(self, number: int, total: int, title: str, expected: str) -> None:
        pass

    def step_detail(self, text: str) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        pass


def _run_step(scenario: Scenario, step: Step, number: int, details: list[str]) -> StepResult:
    started = time.perf_counter()
    status: StepStatus = "ok"
    try:
        outcome = step.run(scenario)
    except Misbehaved as err:
        status, outcome = "failed", str(err)
    except Exception as err:  # anything else is a failure of this step, reported as such
        logger.debug("demo step %s raised", step.key, exc_info=True)
        status, outcome = "failed", f"{type(err).__name__}: {err or 'no message'}"
    return StepResult(
        number=number,
        key=step.key,
        title=step.title,
        expected=step.expected,
        status=status,
        outcome=outcome,
        seconds=time.perf_counter() - started,
        details=tuple(details),
    )


def run_demo(
    options: DemoOptions | None = None, *, observer: DemoObserver | None = None
) -> DemoReport:
    """Run every step of the demo in a fresh sandbox, and stop it.

    A step that fails is reported with what happened instead; the other glitches still run,
    but a failed walkthrough step (the sandbox, the identity, the binding, the pod, its
    assignment, its token) skips the steps after it, which build on it.

    Args:
        options: how the world behaves (:class:`DemoOptions`: realistic, quick).
        observer: told about each step as it runs.

    Returns:
        One result per step; :attr:`DemoReport.ok` is true when each behaved as expected.
    """
    options = options or DemoOptions()
    observer = observer or _Quiet()
    started = time.perf_counter()
    details: list[str] = []

    def say(text: str) -> None:
        details.append(text)
        observer.step_detail(text)

    scenario = Scenario(options, say)
    results: list[StepResult] = []
    blocked_by: StepResult | None = None
    try:
        for number, step in enumerate(STEPS, 1):
            if blocked_by is not None:
                result = StepResult(
                    number=number,
                    key=step.key,
                    title=step.title,
                    expected=step.expected,
                    status="skipped",
                    outcome=f"skipped: step {blocked_by.number} failed",
                    seconds=0.0,
                )
            else:
                observer.step_started(number, len(STEPS), step.title, step.expected)
                details.clear()
                result = _run_step(scenario, step, number, details)
                if not result.ok and step.critical:
                    blocked_by = result
            results.append(result)
            observer.step_finished(result)
    finally:
        scenario.close()
    return DemoReport(options=options, steps=tuple(results), seconds=time.perf_counter() - started)
