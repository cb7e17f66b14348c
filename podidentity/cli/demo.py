"""``podidentity demo``: the whole pod identity flow and the seed's four glitches, in seconds.

Runs :func:`podidentity.testing.demo.run_demo` in a fresh local sandbox, prints each step as it
runs with its timing, then a summary table; exits 0 only when every step behaved as expected.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from podidentity.testing.demo import DemoReport, StepResult

__all__ = ["demo"]

_MARK = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}


class _Progress:
    """Prints each step as it runs (to stdout, or to stderr when stdout carries JSON)."""

    def __init__(self, *, err: bool) -> None:
        self._err = err

    def _echo(self, text: str, **style: Any) -> None:
        click.echo(click.style(text, **style) if style else text, err=self._err)

    def step_started(self, number: int, total: int, title: str, expected: str) -> None:
        self._echo(f"[{number:>2}/{total}] {title} (expected: {expected})", bold=True)

    def step_detail(self, text: str) -> None:
        self._echo(f"        {text}")

    def step_finished(self, result: StepResult) -> None:
        if result.status == "skipped":
            self._echo(f"[{result.number:>2}] {result.title}: skipped", fg="yellow")
            return
        color = "green" if result.ok else "red"
        self._echo(
            f"        -> {_MARK[result.status]}: {result.outcome} ({result.seconds:.2f} s)",
            fg=color,
        )


def _table(report: DemoReport) -> list[str]:
    rows = [("#", "step", "expected", "result", "time")]
    for step in report.steps:
        result = step.outcome if step.ok else _MARK[step.status]
        rows.append((str(step.number), step.title, step.expected, result, f"{step.seconds:.2f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for index, row in enumerate(rows):
        middle = [cell.ljust(width) for cell, width in zip(row[1:4], widths[1:4], strict=True)]
        cells = [row[0].rjust(widths[0]), *middle, row[4].rjust(widths[4])]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _summary(report: DemoReport) -> None:
    click.echo()
    for line in _table(report):
        click.echo(line)
    click.echo()
    if report.ok:
        total = len(report.steps)
        click.secho(
            f"{total}/{total} steps behaved as expected ({report.seconds:.1f} s). "
            "No token or secret value was printed.",
            fg="green",
        )
        return
    _explain_failures(report)


def _explain_failures(report: DemoReport) -> None:
    for step in report.failures:
        click.secho(
            f"Step {step.number} ({step.title}) did not behave as expected: expected "
            f"{step.expected}, but {step.outcome}",
            fg="red",
            err=True,
        )
    if not report.ok:
        passed = sum(step.ok for step in report.steps)
        click.secho(f"{passed}/{len(report.steps)} steps behaved as expected.", fg="red", err=True)


def _quiet_components(ctx: click.Context) -> None:
    """Keep the components' own logs out of the narration unless a log level was asked for.

    The demo says what each component did; their INFO lines (and azure-identity's warning on
    every refusal the demo provokes on purpose) would bury it. ``--log-level`` brings them back.
    """
    parent = ctx.parent
    source = parent.get_parameter_source("log_level") if parent is not None else None
    if source in (None, click.core.ParameterSource.DEFAULT):
        for name in ("podidentity", "azure"):
            logging.getLogger(name).setLevel(logging.ERROR)


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as one JSON document on stdout (progress goes to stderr).",
)
@click.option(
    "--operation-duration",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds an ARM identity write takes in the emulated Azure (real Azure: tens).",
)
@click.option(
    "--propagation-delay",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds the node's IMDS lags behind a completed identity write.",
)
@click.option(
    "--pending-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds a token proxy waits for a pod's assignment before answering 'not yet'.",
)
@click.option(
    "--unsafe-cluster-wide-bindings",
    is_flag=True,
    help="Run the controller with upstream's cluster-wide bindings, to watch glitch 1 come "
    "back and the demo fail.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="The longest any step waits for something to happen.",
)
def demo(
    as_json: bool,
    operation_duration: float,
    propagation_delay: float,
    pending_timeout: float,
    unsafe_cluster_wide_bindings: bool,
    timeout: float,
) -> None:
    """Walk through aad-pod-identity's tutorial in a local sandbox, then its glitches fixed.

    Starts emulated Kubernetes and Azure on 127.0.0.1 with the real controller, a token proxy
    per node and the Key Vault helper. Creates an AzureIdentity, an AzureIdentityBinding and
    a labelled pod; the controller assigns the identity; the pod gets a token through its
    node's token proxy and reads a Key Vault secret. Then four pods try what upstream let
    them (another namespace, a forged label, a label selector, another pod's identity) and
    are refused. Exits 0 only when every step behaved as expected. Never prints a token or a
    secret value.
    """
    # Imported here: the emulators are heavy, and no other command (mic, nmi) needs them.
    from podidentity.reconciler import ControllerSettings
    from podidentity.testing.demo import DemoOptions, run_demo

    options = DemoOptions(
        operation_duration=operation_duration,
        propagation_delay=propagation_delay,
        pending_timeout=pending_timeout,
        controller=ControllerSettings(cluster_wide_bindings=unsafe_cluster_wide_bindings),
        timeout=timeout,
    )
    _quiet_components(click.get_current_context())
    if not as_json:
        click.echo(
            "podidentity demo: aad-pod-identity's tutorial in a local sandbox, with the real "
            "controller, token proxies and Key Vault helper."
        )
        click.echo(f"Realism: {options.describe()}.")
        click.echo()
    else:
        click.echo(f"Realism: {options.describe()}.", err=True)
    report = run_demo(options, observer=_Progress(err=as_json))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        _explain_failures(report)
    else:
        _summary(report)
    if not report.ok:
        raise SystemExit(1)
