"""``podidentity sandbox``: a local cluster on emulated Azure, for kubectl, SDKs and your code.

podidentity sandbox --state-dir ./sb                         # runs until Ctrl-C / SIGTERM
kubectl --kubeconfig ./sb/kubeconfig get nodes
eval "$(podidentity sandbox env my-pod --state-dir ./sb --export)"   # act as a pod

The sandbox is a :class:`~podidentity.testing.Sandbox` with the default world
(:func:`~podidentity.testing.populate_default_world`): two nodes, two user-assigned identities,
a federated identity, a vault with a secret, the controller and a token proxy per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx

from podidentity.cli._sandbox_control import ControlServer
from podidentity.cli._sandbox_state import (
    AZURE_CA,
    KUBECONFIG,
    KUBERNETES_CA,
    STATE_FILE,
    StateError,
    azure_environment,
    describe,
    read_state,
    write_files,
    write_state,
)

__all__ = ["sandbox"]

logger = logging.getLogger(__name__)

_STATE_DIR_ENV = "PODIDENTITY_SANDBOX_STATE_DIR"


def _progress(message: str) -> None:
    click.echo(f"... {message}", err=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM ask for a clean stop instead of killing the process."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _prepare_state_dir(state_dir: Path | None) -> tuple[Path, bool]:
    """The directory to use, and whether this run created it (then it is removed at exit)."""
    if state_dir is None:
        return Path(tempfile.mkdtemp(prefix="podidentity-sandbox-")), True
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.ClickException(f"cannot create the state directory {state_dir}: {err}") from err
    with contextlib.suppress(StateError):
        running = read_state(state_dir)
        raise click.ClickException(
            f"a sandbox already runs in {state_dir} (pid {running['pid']}); stop it first "
            "(Ctrl-C, or kill -TERM <pid>) or pick another --state-dir"
        )
    return state_dir, False


def _summary(state: dict[str, Any], state_dir: Path) -> str:
    kubeconfig = state["kubernetes"]["kubeconfig"]
    lines = [
        f"ready: kubeconfig {kubeconfig}, state {state_dir / STATE_FILE}",
        f"  Kubernetes API   {state['kubernetes']['server']}  (export KUBECONFIG={kubeconfig})",
        f"  Azure tenant     {state['azure']['tenantId']}, subscription "
        f"{state['azure']['subscriptionId']}",
    ]
    for node in state["nodes"]:
        lines.append(f"  node             {node['name']} ({node['machine']})")
    for identity in state["identities"]:
        lines.append(f"  identity         {identity['name']}  clientID {identity['clientId']}")
    for identity in state["federatedIdentities"]:
        lines.append(
            f"  federated        {identity['name']}  clientID {identity['clientId']}  "
            f"for {identity['subject']}"
        )
    for vault in state["vaults"]:
        lines.append(f"  vault            {vault['url']}  secrets: {', '.join(vault['secrets'])}")
    lines.append(
        f'  act as a pod     eval "$(podidentity sandbox env POD --export --state-dir '
        f'{shlex.quote(str(state_dir))})"'
    )
    lines.append("  stop             Ctrl-C (or SIGTERM)")
    return "\n".join(lines)


def _run(
    state_dir: Path | None,
    operation_duration: float,
    propagation_delay: float,
    pending_timeout: float | None,
    throttling: bool,
) -> None:
    from podidentity.nmi import TokenProxySettings
    from podidentity.testing import Sandbox, populate_default_world

    proxy_settings = TokenProxySettings()
    if pending_timeout is not None:
        proxy_settings = TokenProxySettings(pending_timeout=pending_timeout)

    directory, created = _prepare_state_dir(state_dir)
    click.echo(f"state directory: {directory}", err=True)
    stop = threading.Event()
    with _stop_on_signals(stop):
        world_sandbox = Sandbox(
            operation_duration=operation_duration,
            propagation_delay=propagation_delay,
            throttling=throttling,
        )
        control: ControlServer | None = None
        state: dict[str, Any] | None = None
        try:
            _progress("starting the Kubernetes and Azure emulators")
            world_sandbox.start()
            _progress("adding nodes, identities and a vault; starting the controller and proxies")
            world = populate_default_world(world_sandbox, token_proxy_settings=proxy_settings)
            _progress("waiting for the controller's first sync")
            asyncio.run(asyncio.wait_for(world.controller.wait_synced(), 120))
            write_files(world_sandbox, directory)
            control = ControlServer(
                world_sandbox, azure_environment(world_sandbox, directory)
            ).start()
            state = describe(world_sandbox, world, directory, control_url=control.url)
            write_state(directory, state)
            if not stop.is_set():  # a signal during start-up skips straight to stopping
                click.echo(_summary(state, directory))
                stop.wait()
            click.echo("stopping the sandbox", err=True)
        except (Exception, KeyboardInterrupt) as err:
            raise click.ClickException(f"the sandbox failed: {err}") from err
        finally:
            if state is not None:
                # Readers (`sandbox env`) learn at once that nothing answers any more.
                write_state(directory, {**state, "state": "stopped", "control": None})
            if control is not None:
                control.stop()
            world_sandbox.stop()
            _clean(directory, created)
    click.echo("stopped", err=True)


def _clean(directory: Path, created: bool) -> None:
    """Remove what points at the stopped servers; a directory this run made goes entirely."""
    if created:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for name in (KUBECONFIG, KUBERNETES_CA, AZURE_CA):
        (directory / name).unlink(missing_ok=True)


@click.group(invoke_without_command=True)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar=_STATE_DIR_ENV,
    show_envvar=True,
    help="Where to write kubeconfig and sandbox.json [default: a new temporary directory, "
    "removed at exit].",
)
@click.option(
    "--operation-duration",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds an ARM identity write takes, as in Azure (0: immediate).",
)
@click.option(
    "--propagation-delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds IMDS lags behind a completed identity write, as in Azure (0: immediate).",
)
@click.option(
    "--pending-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a token proxy holds a pod's request while no identity is assigned to it, "
    "before refusing [default: the token proxy's, 60].",
)
@click.option(
    "--throttling/--no-throttling",
    default=True,
    show_default=True,
    help="Enforce Azure's request limits (IMDS, ARM, Key Vault).",
)
@click.pass_context
def sandbox(
    ctx: click.Context,
    state_dir: Path | None,
    operation_duration: float,
    propagation_delay: float,
    pending_timeout: float | None,
    throttling: bool,
) -> None:
    r"""Run a local Kubernetes cluster on emulated Azure until Ctrl-C or SIGTERM.

    The cluster has two nodes (one VM, one scale-set instance), the podidentity controller and
    a token proxy per node; Azure has two user-assigned identities, a federated identity and a
    vault with a secret. The state directory gets:

    \b
      kubeconfig      admin access, for kubectl and Kubernetes clients
      sandbox.json    every address, the tenant, identities, vaults (no secret values)
      *-ca.pem        the CAs of the emulated Kubernetes API and Azure

    On a clean stop, sandbox.json says "stopped" and the kubeconfig and CA copies are removed
    (a temporary directory made by this run is removed entirely). Act as a pod from any
    process with `podidentity sandbox env POD`.
    """
    if ctx.invoked_subcommand is None:
        _run(state_dir, operation_duration, propagation_delay, pending_timeout, throttling)


@sandbox.command("env")
@click.argument("pod")
@click.option(
    "-n", "--namespace", default="default", show_default=True, help="The pod's namespace."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    envvar=_STATE_DIR_ENV,
    show_envvar=True,
    help="The state directory of the running `podidentity sandbox`.",
)
@click.option(
    "--export", "export", is_flag=True, help="Prefix each line with `export `, for a shell's eval."
)
def env(pod: str, namespace: str, state_dir: Path, export: bool) -> None:
    r"""Print the environment with which a process on this machine acts as pod POD.

    One KEY=VALUE line each (values quoted for a POSIX shell where needed). A process started
    with them sends its IMDS token requests (azure-identity's ManagedIdentityCredential, through
    AZURE_POD_IDENTITY_AUTHORITY_HOST) to the token proxy of the pod's node, arriving from the
    pod's IP, and its other Azure calls (Azure AD, ARM, Key Vault) to the emulated Azure
    (HTTPS_PROXY and the CA bundle). The pod must be Running.

    \b
      eval "$(podidentity sandbox env my-pod --state-dir ./sb --export)"
      env $(podidentity sandbox env my-pod --state-dir ./sb) python app.py
    """
    try:
        state = read_state(state_dir)
    except StateError as err:
        raise click.ClickException(str(err)) from err
    url = f"{state['control']}/v1/namespaces/{namespace}/pods/{pod}/env"
    try:
        # trust_env=False: this process may itself have been given a pod's HTTPS_PROXY.
        with httpx.Client(trust_env=False, timeout=60) as http:
            answer = http.post(url)
    except httpx.HTTPError as err:
        raise click.ClickException(
            f"the sandbox in {state_dir} does not answer at {state['control']} ({err}); "
            "is `podidentity sandbox` still running?"
        ) from err
    body = answer.json()
    if answer.status_code != 200:
        raise click.ClickException(body.get("error", answer.text))
    where = body["pod"]
    click.echo(
        f"# acting as pod {where['namespace']}/{where['name']} "
        f"(IP {where['ip']} on node {where['node']})",
        err=True,
    )
    prefix = "export " if export else ""
    for key, value in sorted(body["environment"].items()):
        click.echo(f"{prefix}{key}={shlex.quote(value)}")
